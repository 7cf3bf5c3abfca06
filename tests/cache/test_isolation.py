"""Tenants, system prompts and models never see each other's answers (randomized, seeded).

Twelve tenants (namespaces, some the prefix of another: ``t1``, ``t10``, ``t11``) store answers
to the same and to paraphrased questions, under several (some nearly identical) system prompts
and models. Every answer names the tenant, system prompt, model and question it was written for;
every lookup that hits must return one written for its own tenant + system prompt + model (and
question). Exact repeats must always hit, and paraphrases must hit often enough to matter.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache_plugins import CacheCore, ConfigurationError
from semcache_plugins._settings import validate_namespace

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


# -- invalidation never crosses tenants ------------------------------------------------------

# Tenant names that a TAG filter on the raw name confuses: case variants (TAG matching folds
# case), commas (TAG separators), wildcards and query syntax, whitespace, unicode, empty.
AWKWARD_TENANTS = [
    "acme",
    "ACME",
    "Acme",
    "a,b",
    "b",
    "a",
    "*",
    "a*",
    "|",
    "a|b",
    "{x}",
    "x y",
    "",
    "ünïcödé",
    "ÜNÏCÖDÉ",
    "ß",
    "SS",
    "t-1",
    "t.1",
    "t@1",
    "(t)",
    "$t",
]
tenant_names = st.one_of(st.sampled_from(AWKWARD_TENANTS), st.text(max_size=10))


def _valid(tenant: str) -> bool:
    try:
        validate_namespace(tenant)
    except ConfigurationError:
        return False
    return True


@given(tenants=st.lists(tenant_names, min_size=2, max_size=6, unique=True), data=st.data())
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_invalidating_one_tenant_leaves_every_other_tenant_served(
    core: CacheCore, tenants: list[str], data: st.DataObject
) -> None:
    model = f"model-{uuid.uuid4().hex[:8]}"  # a fresh scope per example
    question = [{"role": "user", "content": "How do I reset my password?"}]
    paraphrase = [{"role": "user", "content": "How can I reset my password?"}]
    valid = [tenant for tenant in tenants if _valid(tenant)]
    for tenant in tenants:
        if tenant in valid:
            assert core.store(question, {"tenant": tenant}, model, namespace=tenant)
            continue
        # a name the settings refuse is refused per call too, before anything is written
        with pytest.raises(ConfigurationError, match="namespace"):
            core.store(question, {"tenant": tenant}, model, namespace=tenant)
        with pytest.raises(ConfigurationError, match="namespace"):
            core.lookup(question, model, namespace=tenant)
        with pytest.raises(ConfigurationError, match="namespace"):
            core.invalidate(namespace=tenant)
    if not valid:
        return
    victim = data.draw(st.sampled_from(valid), label="victim")
    assert core.invalidate(namespace=victim) == 1
    assert core.lookup(question, model, namespace=victim) is None
    assert core.lookup(paraphrase, model, namespace=victim) is None
    for tenant in valid:
        if tenant != victim:  # controls: every other tenant still hits, with its own answer
            hit = core.lookup(question, model, namespace=tenant)
            assert hit is not None and hit.response == {"tenant": tenant}, (victim, tenant)
            near = core.lookup(paraphrase, model, namespace=tenant)
            assert near is None or near.response == {"tenant": tenant}
    for tenant in valid:
        if tenant != victim:
            assert core.invalidate(namespace=tenant) == 1  # each finds exactly its own entry


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"namespace": ""},
        {"namespace": "*"},
        {"namespace": "a,b"},
        {"model": ""},
        {"model": "   "},
        {"system_prompt": ""},
        {"system_prompt": "  \n"},
        {"system_prompt": [3]},
    ],
)
async def test_empty_or_pattern_filters_are_errors_never_everything(
    core: CacheCore, filters: dict[str, Any]
) -> None:
    tenants = ["acme", "ACME", "other"]
    for tenant in tenants:
        assert core.store(ask_reset(), {"tenant": tenant}, "m", namespace=tenant)
    with pytest.raises(ConfigurationError):
        core.invalidate(**filters)
    with pytest.raises(ConfigurationError):
        await core.ainvalidate(**filters)
    for tenant in tenants:  # nothing was removed
        hit = core.lookup(ask_reset(), "m", namespace=tenant)
        assert hit is not None and hit.response == {"tenant": tenant}


def ask_reset() -> list[dict[str, str]]:
    return [{"role": "user", "content": "How do I reset my password?"}]


async def test_system_prompt_and_model_invalidation_stay_exact(core: CacheCore) -> None:
    """system_prompt=[] means "requests without a system prompt"; model names are exact."""
    plain = ask_reset()
    with_system = [{"role": "system", "content": "Be brief."}, *plain]
    for tenant in ("acme", "ACME"):
        for model in ("gpt-4o", "GPT-4O"):
            assert core.store(plain, "plain", model, namespace=tenant)
            assert core.store(with_system, "brief", model, namespace=tenant)
    assert await core.ainvalidate(model="gpt-4o", namespace="acme") == 2
    assert core.invalidate(system_prompt=[], namespace="ACME") == 2
    assert core.lookup(plain, "gpt-4o", namespace="acme") is None
    assert core.lookup(with_system, "gpt-4o", namespace="acme") is None
    assert core.lookup(plain, "GPT-4O", namespace="ACME") is None
    assert core.lookup(plain, "gpt-4o", namespace="ACME") is None
    for model, tenant, request, answer in [
        ("GPT-4O", "acme", plain, "plain"),
        ("GPT-4O", "acme", with_system, "brief"),
        ("gpt-4o", "ACME", with_system, "brief"),
        ("GPT-4O", "ACME", with_system, "brief"),
    ]:
        hit = core.lookup(request, model, namespace=tenant)
        assert hit is not None and hit.response == answer, (model, tenant)
