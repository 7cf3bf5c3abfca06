"""Templated and long (RAG) prompts (#12): the shared part must be identical, the differing part
decides. Pure splitting first, then CacheCore against real Redis and the real model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from semcache_plugins import CacheCore, Embedder
from semcache_plugins._cache._scope import LONG_TEXT_CHARS, plan_request, split_pinned

PARAMS = {"temperature": 0}
TOPICS = ["tents", "stoves", "boots", "jackets", "backpacks", "lamps", "maps", "ropes"]


def long_context(words: int = 3000, *, variant: str = "Denver") -> str:
    """A deterministic policy document of about ``words`` words."""
    sentences = []
    i = 0
    while sum(len(s.split()) for s in sentences) < words:
        topic = TOPICS[i % len(TOPICS)]
        sentences.append(
            f"Section {i + 1}: orders of {topic} placed before {i % 12 + 1} pm ship from the "
            f"{variant} warehouse within {i % 5 + 1} business days, and store staff can check "
            f"the stock of {topic} in aisle {i % 30 + 1}."
        )
        i += 1
    return "Context: " + " ".join(sentences)


SHORT_CONTEXT = (
    "Context: Acme Outdoor Gear sells tents, sleeping bags and stoves online and in twelve "
    "stores. Orders ship from our warehouse in Denver within two business days. Standard "
    "shipping is free on orders over fifty dollars; express shipping costs extra and arrives "
    "in one or two days. Items may be returned within thirty days of delivery for a full "
    "refund to the original payment method, provided they are unused and in their original "
    "packaging. Sale items can be exchanged but not refunded. Every tent and stove carries a "
    "two-year warranty against defects in materials and workmanship; the warranty does not "
    "cover wear, misuse or damage from fire. We never sell customer data, and we use cookies "
    "only to keep items in your basket and to measure site traffic. Members of the Acme club "
    "earn points on every purchase and get early access to seasonal sales. Gift cards never "
    "expire and can be used online or in any store."
)
QUESTIONS = [
    "What is the refund policy?",
    "What is the shipping policy?",
    "What is the warranty policy?",
    "What is the privacy policy?",
    "What is the gift card policy?",
]
PARAPHRASES = ["What's your refund policy?", "How does the refund policy work?"]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def rag(context: str, question: str) -> str:
    return f"{context}\n\nQuestion: {question}"


# -- pure: what is pinned and what is embedded -------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "Translate to French: I love apples",
        "x" * 900,
        "Hi,\n\nHow do I reset my password?",
        "A" * 300 + ".\n\nHow do I reset my password?",
    ],
)
def test_short_prose_is_embedded_whole_and_pins_nothing(text: str) -> None:
    assert split_pinned(text) == ("", "")
    plan = plan_request(ask(text), model="m", namespace="n")
    assert plan.tail is None and plan.embed_text == plan.text


def test_long_text_pins_its_context_and_embeds_its_question() -> None:
    text = rag(long_context(), "What is the refund policy?\nAnswer:")
    pinned, tail = split_pinned(text)
    assert len(text) > LONG_TEXT_CHARS
    assert tail == "Question: What is the refund policy?\nAnswer:"
    assert pinned.startswith("Context: Section 1:")
    plan = plan_request(ask(text), model="m", namespace="n")
    assert plan.embed_text == "Question: What is the refund policy? Answer:"
    why = "Why is the warehouse closed?"
    other = plan_request(ask(rag(long_context(), why)), model="m", namespace="n")
    assert other.scope == plan.scope  # same context, same scope: the question is compared
    moved = plan_request(ask(rag(long_context(variant="Austin"), why)), model="m", namespace="n")
    assert moved.scope != plan.scope  # another context is never even found


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Fix:\n```python\nif x:\n    y()\n```", "Fix:\n```python\nif x:\ny()\n```"),
        ("Fix:\n```python\nif x:\n    y()\n```", "Fix:\n```python\nif x:\n  y()\n```"),
        ("def f(x):\n    return x\nWhy?", "def f(x):\n        return x\nWhy?"),
    ],
)
def test_code_whitespace_is_pinned(a: str, b: str) -> None:
    plan_a, plan_b = (plan_request(ask(t), model="m", namespace="n") for t in (a, b))
    assert split_pinned(a)[0] and plan_a.scope != plan_b.scope


# -- CacheCore with real Redis ------------------------------------------------------------------


@pytest.fixture
def core(redis_url: str, index_prefix: str, embedder: Embedder) -> Iterator[CacheCore]:
    # A generous lookup budget: a long text costs ~0.3 s to embed on a loaded CI machine, and a
    # timed-out lookup is a (correct) miss that would break the hits these tests assert.
    with CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=30.0
    ) as c:
        yield c


def serve(core: CacheCore, text: str) -> str | None:
    """Look up; on a miss store the question's own answer. Returns the served answer or None."""
    hit = core.lookup(ask(text), "m", PARAMS)
    if hit is None:
        core.store(ask(text), f"answer to: {text[-80:]}", model="m", params=PARAMS)
        return None
    return str(hit.response)


@pytest.mark.parametrize("context", [SHORT_CONTEXT, long_context()], ids=["200w", "3000w"])
def test_rag_questions_over_one_context(core: CacheCore, context: str) -> None:
    for question in QUESTIONS:  # each is a different question: never served another's answer
        assert serve(core, rag(context, question)) is None, question
    for paraphrase in PARAPHRASES:
        hit = core.lookup(ask(rag(context, paraphrase)), "m", PARAMS)
        assert hit is not None and hit.tier == "semantic", paraphrase
        assert hit.response == f"answer to: {rag(context, QUESTIONS[0])[-80:]}"


def test_long_prompt_exact_repeat_paraphrase_and_other_context(core: CacheCore) -> None:
    text = rag(long_context(), "What is the refund policy?")
    core.store(ask(text), "refunds", model="m", params=PARAMS)
    exact = core.lookup(ask(text), "m", PARAMS)
    assert exact is not None and exact.tier == "exact"
    para = core.lookup(ask(rag(long_context(), "What's your refund policy?")), "m", PARAMS)
    assert para is not None and para.tier == "semantic" and para.response == "refunds"
    shipping = rag(long_context(), "What is the shipping policy?")
    assert core.lookup(ask(shipping), "m", PARAMS) is None
    other = rag(long_context(variant="Austin"), "What is the refund policy?")
    assert core.lookup(ask(other), "m", PARAMS) is None


def test_long_prompt_without_a_short_tail_is_stored_for_exact_repeats(core: CacheCore) -> None:
    text = "Summarize: " + " ".join(f"word{i}" for i in range(2000))  # no sentence to split at
    assert core.store(ask(text), "summary", model="m", params=PARAMS)
    hit = core.lookup(ask(text), "m", PARAMS)
    assert hit is not None and hit.tier == "exact"
    assert core.lookup(ask(text + " word2000"), "m", PARAMS) is None


TEMPLATES = [
    # (stored, misses, hits)
    (  # one line, in the model window: the guards judge the differing sentence
        f"{SHORT_CONTEXT} Question: {QUESTIONS[0]}",
        [f"{SHORT_CONTEXT} Question: {q}" for q in QUESTIONS[1:]],
        [f"{SHORT_CONTEXT} Question: {q}" for q in PARAPHRASES],
    ),
    (
        "Translate to French: I love apples.",
        ["Translate to French: I love oranges.", "Translate to German: I love apples."],
        ["Translate into French: I love apples."],
    ),
    (
        "Summarize the following text in one sentence. The city council approved the new bike "
        "lanes on Main Street after a long debate. Work starts in May and ends in August.",
        [
            "Summarize the following text in one sentence. The city council rejected the new "
            "bike lanes on Main Street after a long debate. Work starts in May and ends in "
            "August.",
            "Summarize the following text in three sentences. The city council approved the new "
            "bike lanes on Main Street after a long debate. Work starts in May and ends in "
            "August.",
        ],
        [
            "Summarize the following text in one sentence: The city council approved the new "
            "bike lanes on Main Street after a long debate. Work starts in May and ends in "
            "August.",
        ],
    ),
    (
        "You are the support assistant of Acme Bank. Be brief and polite. Customer: Jane Doe. "
        "Account type: savings. Message: How do I order a new debit card?",
        [
            "You are the support assistant of Acme Bank. Be brief and polite. Customer: Jane "
            "Doe. Account type: savings. Message: How do I close my account?",
            "You are the support assistant of Acme Bank. Be brief and polite. Customer: Jane "
            "Doe. Account type: checking. Message: How do I order a new debit card?",
            "You are the support assistant of Acme Bank. Be brief and polite. Customer: John "
            "Roe. Account type: savings. Message: How do I order a new debit card?",
        ],
        [
            "You are the support assistant of Acme Bank. Be brief and polite. Customer: Jane "
            "Doe. Account type: savings. Message: How can I order a new debit card?",
        ],
    ),
]


@pytest.mark.parametrize(("stored", "misses", "hits"), TEMPLATES)
def test_templated_prompts(
    core: CacheCore, stored: str, misses: list[str], hits: list[str]
) -> None:
    core.store(ask(stored), "stored answer", model="m", params=PARAMS)
    for text in misses:
        assert core.lookup(ask(text), "m", PARAMS) is None, text
    for text in hits:
        hit = core.lookup(ask(text), "m", PARAMS)
        assert hit is not None and hit.response == "stored answer", text


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("Who won the first world war?", "Who won the second world war?"),
        ("What is the first step?", "What is the second step?"),
        ("Find the cheapest flight to Paris", "Find the most expensive flight to Paris"),
        ("How do I log in to my account?", "How do I log out of my account?"),
        ("Fix:\n```python\nif x:\n    y()\n```", "Fix:\n```python\nif x:\ny()\n```"),
    ],
)
def test_closed_class_and_code_examples_miss_through_the_core(
    core: CacheCore, stored: str, asked: str
) -> None:
    core.store(ask(stored), "stored answer", model="m", params=PARAMS)
    assert core.lookup(ask(asked), "m", PARAMS) is None
    assert core.lookup(ask(stored), "m", PARAMS) is not None


async def test_async_driver_agrees_on_long_prompts(core: CacheCore) -> None:
    text = rag(long_context(), "What is the refund policy?")
    await core.astore(ask(text), "refunds", model="m", params=PARAMS)
    para = await core.alookup(ask(rag(long_context(), "What's your refund policy?")), "m", PARAMS)
    assert para is not None and para.response == "refunds"
    other = rag(long_context(), "What is the warranty policy?")
    assert await core.alookup(ask(other), "m", PARAMS) is None
