"""Tenants, system prompts and models never see each other's answers (randomized, seeded).

Twelve tenants (namespaces, some the prefix of another: ``t1``, ``t10``, ``t11``) store answers
to the same and to paraphrased questions, under several (some nearly identical) system prompts
and models. Every answer names the tenant, system prompt, model and question it was written for;
every lookup that hits must return one written for its own tenant + system prompt + model (and
question). Exact repeats must always hit, and paraphrases must hit often enough to matter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from semcache_plugins import CacheCore

SEED = 20240611
TENANTS = [f"t{i}" for i in range(12)]
SYSTEMS = [
    "You are a support agent for Acme.",
    "You are a support agent for Acme Corp.",
    "You are a pirate. Answer in pirate speak.",
]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"]
# Question families: every member of a family asks the same thing.
FAMILIES = [
    [
        "How do I reset my password?",
        "I forgot my password, how can I reset it?",
        "How can I reset my password?",
    ],
    [
        "What are your opening hours?",
        "When are you open?",
        "What time do you open?",
    ],
    [
        "How do I cancel my subscription?",
        "How can I cancel my subscription?",
        "I want to cancel my subscription, how do I do that?",
    ],
    [
        "Do you ship to Canada?",
        "Can you ship to Canada?",
        "Is shipping to Canada available?",
    ],
    [
        "How do I change my email address?",
        "How can I update my email address?",
        "I need to change the email on my account.",
    ],
    [
        "What is your refund policy?",
        "How do refunds work?",
        "Can I get a refund?",
    ],
]
STORES_PER_TENANT = 10
LOOKUPS = 360


@dataclass(frozen=True)
class Slot:
    """Who asked what: the whole scope of one request."""

    tenant: str
    system: int
    model: str
    family: int

    def answer(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "system": self.system,
            "model": self.model,
            "family": self.family,
        }


def messages(slot: Slot, variant: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEMS[slot.system]},
        {"role": "user", "content": FAMILIES[slot.family][variant]},
    ]


def random_slot(rng: random.Random, tenant: str | None = None) -> Slot:
    return Slot(
        tenant or rng.choice(TENANTS),
        rng.randrange(len(SYSTEMS)),
        rng.choice(MODELS),
        rng.randrange(len(FAMILIES)),
    )


async def test_no_cross_tenant_system_or_model_hits(core: CacheCore) -> None:
    rng = random.Random(SEED)
    stored: dict[Slot, set[int]] = {}  # slot -> variants stored under it
    popular = [random_slot(rng) for _ in range(4)]  # stored by many tenants: the overlap
    for tenant in TENANTS:
        slots = {Slot(tenant, s.system, s.model, s.family) for s in rng.sample(popular, 2)}
        while len(slots) < STORES_PER_TENANT:
            slots.add(random_slot(rng, tenant))
        for slot in slots:
            variant = rng.randrange(3)
            assert core.store(messages(slot, variant), slot.answer(), slot.model, namespace=tenant)
            stored.setdefault(slot, set()).add(variant)

    exact = semantic = expected_exact = 0
    stored_slots = list(stored)
    for i in range(LOOKUPS):
        # Half the lookups ask a stored question (maybe reworded) under another scope part.
        if i % 2:
            base = rng.choice(stored_slots)
            slot = Slot(
                rng.choice([base.tenant, rng.choice(TENANTS)]),
                rng.choice([base.system, rng.randrange(len(SYSTEMS))]),
                rng.choice([base.model, rng.choice(MODELS)]),
                base.family,
            )
        else:
            slot = random_slot(rng)
        variant = rng.randrange(3)
        ask = messages(slot, variant)
        if i % 3 == 0:
            hit = await core.alookup(ask, slot.model, namespace=slot.tenant)
        else:
            hit = core.lookup(ask, slot.model, namespace=slot.tenant)
        if variant in stored.get(slot, ()):
            expected_exact += 1
            assert hit is not None and hit.tier == "exact", (slot, variant)
        if hit is None:
            continue
        assert hit.response == slot.answer(), (slot, variant, hit)  # same tenant/system/model
        exact += hit.tier == "exact"
        semantic += hit.tier == "semantic"
    assert expected_exact >= 20 and exact == expected_exact
    assert semantic >= 20, f"only {semantic} paraphrase hits"
    # A namespace that is another's prefix shares nothing with it.
    for tenant, other in (("t1", "t10"), ("t1", "t11")):
        for slot in stored:
            if slot.tenant == other:
                for variant in stored[slot]:
                    leaked = core.lookup(messages(slot, variant), slot.model, namespace=tenant)
                    assert leaked is None or leaked.response["tenant"] == tenant
