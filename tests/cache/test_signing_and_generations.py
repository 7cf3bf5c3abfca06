"""Signatures cover what is served, and invalidation generations stop replays and races.

Each attack is run against the real Redis and model as someone with write access to Redis
would: rewrite a field of a stored hash, or write an old hash back verbatim. With a
``signing_key`` none of them is served; controls show the same requests still hit when
nothing was tampered with (a cache that refuses everything fails them), and, where it
helps, that the attack does work on a cache without a key (so the test can fail).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402

from semcache_plugins import CacheCore, Embedder  # noqa: E402
from semcache_plugins._cache._flows import store_flow  # noqa: E402
from semcache_plugins._cache._scope import system_prompt_hash  # noqa: E402
from semcache_plugins._cli._cache import drop_index  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

LITELLM_MODEL = "openai/gpt-4o-mini"

SIGNING_KEY = "k" * 32
SYSTEM = "You are a support agent for Acme."
QUESTION = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"
OTHER = "What are your opening hours?"


def ask(text: str, system: str = SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


@pytest.fixture(params=[True, False], ids=["signed", "unsigned"])
async def any_core(
    request: pytest.FixtureRequest, redis_url: str, index_prefix: str, embedder: Embedder
) -> AsyncIterator[CacheCore]:
    key = SIGNING_KEY if request.param else None
    core = CacheCore(
        redis_url=redis_url,
        index_prefix=index_prefix,
        embedder=embedder,
        lookup_timeout=10.0,
        signing_key=key,
    )
    yield core
    await core.aclose()


@pytest.fixture
async def signed(redis_url: str, index_prefix: str, embedder: Embedder) -> AsyncIterator[CacheCore]:
    core = CacheCore(
        redis_url=redis_url,
        index_prefix=index_prefix,
        embedder=embedder,
        lookup_timeout=10.0,
        signing_key=SIGNING_KEY,
    )
    yield core
    await core.aclose()


def key_of(core: CacheCore, entry_id: str) -> str:
    return core.layout.key(entry_id)


# -- tampering with a stored entry -----------------------------------------------------------


def test_rewritten_vector_never_answers_another_question(
    any_core: CacheCore, redis_client: redis.Redis
) -> None:
    core = any_core
    entry = core.store(ask(QUESTION), "reset answer", "m")
    assert entry
    # the attacker points the entry at another question: similarity 1.0 to OTHER
    other_vector = core.embedder.embed([OTHER])[0]
    redis_client.hset(key_of(core, entry), "embedding", core.layout.vector_bytes(other_vector))
    hit = core.lookup(ask(OTHER), "m")
    if core.settings.signing_key:
        assert hit is None
    else:  # the attack works without a key: what signing is for
        assert hit is not None and hit.response == "reset answer"


def test_flipped_tool_call_flag_never_serves_paraphrases(
    any_core: CacheCore, redis_client: redis.Redis
) -> None:
    core = any_core
    entry = core.store(ask(QUESTION), {"tool_calls": ["lookup"]}, "m", exact_only=True)
    assert entry
    assert core.lookup(ask(PARAPHRASE), "m") is None  # tool-call answers: exact repeats only
    assert core.lookup(ask(QUESTION), "m") is not None  # control
    redis_client.hset(key_of(core, entry), "tools", "0")
    hit = core.lookup(ask(PARAPHRASE), "m")
    if core.settings.signing_key:
        assert hit is None
        assert core.lookup(ask(QUESTION), "m") is None  # a tampered record is not served at all
    else:
        assert hit is not None


@pytest.mark.parametrize(
    ("tag", "filters"),
    [
        ("system", {"system_prompt": SYSTEM}),
        ("model", {"model": "m"}),
        ("ns", {"namespace": "default"}),
    ],
)
def test_rewritten_tags_cannot_hide_an_entry_from_invalidation(
    any_core: CacheCore, redis_client: redis.Redis, tag: str, filters: dict[str, str]
) -> None:
    """An entry is served only while its tags are its request's: whatever invalidation would
    not find (tags rewritten to another scope's) is not served, signed or not."""
    core = any_core
    entry = core.store(ask(QUESTION), "reset answer", "m")
    assert entry and core.lookup(ask(QUESTION), "m") is not None
    foreign = {"system": system_prompt_hash("Other"), "model": "0" * 32, "ns": "f" * 32}
    redis_client.hset(key_of(core, entry), tag, foreign[tag])
    core.invalidate(**filters)
    assert redis_client.exists(key_of(core, entry))  # the invalidation did miss it ...
    assert core.lookup(ask(QUESTION), "m") is None  # ... but it is never served
    assert core.lookup(ask(PARAPHRASE), "m") is None


@pytest.mark.parametrize("field", ["payload", "prompt", "scope", "created_at", "gen", "vec"])
def test_any_rewritten_field_of_a_signed_entry_is_a_miss(
    signed: CacheCore, redis_client: redis.Redis, field: str
) -> None:
    entry = signed.store(ask(QUESTION), "reset answer", "m")
    assert entry
    other = signed.store(ask(OTHER), "hours answer", "m2")  # another scope, text and vector
    assert other
    value = redis_client.hget(key_of(signed, other), field)
    if field == "created_at":
        value = b"%.6f" % (time.time() + 3600)  # young forever: defeats max_age
    elif field == "gen":
        value = b"f" * 24
    assert value is not None and value != redis_client.hget(key_of(signed, entry), field)
    redis_client.hset(key_of(signed, entry), field, value)
    assert signed.lookup(ask(QUESTION), "m") is None
    assert signed.lookup(ask(PARAPHRASE), "m") is None
    hit = signed.lookup(ask(OTHER), "m2")  # control: the untouched entry still hits
    assert hit is not None and hit.response == "hours answer"


def test_entry_past_its_signed_expiry_is_never_served(
    any_core: CacheCore, redis_client: redis.Redis
) -> None:
    """Redis still holds it (its TTL was removed, say): the record's own expiry decides."""
    core = any_core
    plan = core.internals.plan(ask(QUESTION), "m", None, None)
    entry = core.internals.run(store_flow(core.config, plan, "old", ttl=60, now=time.time() - 120))
    assert entry
    redis_client.persist(key_of(core, entry))
    assert core.lookup(ask(QUESTION), "m") is None
    assert core.lookup(ask(PARAPHRASE), "m") is None
    assert core.store(ask(QUESTION), "new", "m", ttl=60)  # control: a live one is served
    hit = core.lookup(ask(QUESTION), "m")
    assert hit is not None and hit.response == "new"


# -- replay -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {"namespace": "default"},
        {"system_prompt": SYSTEM},
        {"model": "m"},
        {"system_prompt": SYSTEM, "model": "m"},
        {"namespace": "default", "system_prompt": SYSTEM, "model": "m"},
    ],
)
def test_old_signed_record_written_back_after_invalidation_is_not_served(
    signed: CacheCore, redis_client: redis.Redis, filters: dict[str, Any]
) -> None:
    entry = signed.store(ask(QUESTION), "old answer", "m")
    assert entry
    key = key_of(signed, entry)
    saved = redis_client.hgetall(key)
    # control: written back verbatim without an invalidation in between, it is served
    redis_client.delete(key)
    redis_client.hset(key, mapping=saved)
    assert signed.lookup(ask(QUESTION), "m") is not None
    assert signed.invalidate(**filters) == 1
    redis_client.hset(key, mapping=saved)  # the replay
    assert signed.lookup(ask(QUESTION), "m") is None
    assert signed.lookup(ask(PARAPHRASE), "m") is None
    assert signed.store(ask(QUESTION), "new answer", "m")  # control: a new store is served
    hit = signed.lookup(ask(PARAPHRASE), "m")
    assert hit is not None and hit.response == "new answer"


# -- invalidation racing a store ---------------------------------------------------------------

RACES = [
    # (filter of the invalidation, whether it covers the request)
    ({"system_prompt": SYSTEM}, True),
    ({"model": "m"}, True),
    ({"namespace": "default"}, True),
    ({"system_prompt": SYSTEM, "model": "m"}, True),
    ({"system_prompt": "Another prompt"}, False),
    ({"model": "m2"}, False),
    ({"namespace": "other"}, False),
    ({"system_prompt": SYSTEM, "model": "m2"}, False),
]


@pytest.mark.parametrize(("filters", "covers"), RACES)
def test_answer_computed_before_an_invalidation_is_never_served_after_it(
    any_core: CacheCore, filters: dict[str, Any], covers: bool
) -> None:
    core = any_core
    assert core.lookup(ask(QUESTION), "m") is None  # a miss: the LLM is called ...
    core.invalidate(**filters)  # ... the operator invalidates meanwhile ...
    assert core.store(ask(QUESTION), "computed before", "m")  # ... then the answer is stored
    exact = core.lookup(ask(QUESTION), "m")
    near = core.lookup(ask(PARAPHRASE), "m")
    if covers:
        assert exact is None and near is None
        # control: the next request's answer (looked up after the invalidation) is served
        assert core.store(ask(QUESTION), "computed after", "m")
        hit = core.lookup(ask(QUESTION), "m")
        assert hit is not None and hit.response == "computed after"
    else:  # an invalidation of something else does not cost this answer
        assert exact is not None and exact.response == "computed before"
        assert near is not None


@pytest.mark.parametrize(("filters", "covers"), RACES[:2] + RACES[-2:])
async def test_async_store_racing_an_invalidation(
    any_core: CacheCore, filters: dict[str, Any], covers: bool
) -> None:
    core = any_core
    assert await core.alookup(ask(QUESTION), "m") is None
    await core.ainvalidate(**filters)
    assert await core.astore(ask(QUESTION), "computed before", "m")
    hit = await core.alookup(ask(QUESTION), "m")
    assert (hit is None) is covers


def test_store_without_a_lookup_reads_the_current_generation(signed: CacheCore) -> None:
    signed.invalidate(system_prompt=SYSTEM)
    assert signed.store(ask(QUESTION), "stored directly", "m")  # no lookup before
    hit = signed.lookup(ask(PARAPHRASE), "m")
    assert hit is not None and hit.response == "stored directly"


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode", [False, True])
async def test_signed_semantic_hits_on_any_client_passed_in(
    redis_url: str, index_prefix: str, embedder: Embedder, protocol: int, decode: bool
) -> None:
    """Signed candidates are read with their (binary) vector, even on a decoding client."""
    client = redis.Redis.from_url(redis_url, protocol=protocol, decode_responses=decode)
    aclient = redis.asyncio.Redis.from_url(redis_url, protocol=protocol, decode_responses=decode)
    core = CacheCore(
        redis_client=client,
        async_redis_client=aclient,
        index_prefix=index_prefix,
        embedder=embedder,
        lookup_timeout=10.0,
        signing_key=SIGNING_KEY,
    )
    assert core.store(ask(QUESTION), "reset answer", "m")
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert hit is not None and hit.tier == "semantic" and hit.response == "reset answer"
    hit = await core.alookup(ask(PARAPHRASE), "m")
    assert hit is not None and hit.tier == "semantic"
    assert core.lookup(ask(OTHER), "m") is None
    await core.aclose()
    client.close()
    await aclient.aclose()


class InvalidatingChat(GenericFakeChatModel):
    """A fake provider: during its call, an operator may run ``on_call`` (an invalidation)."""

    on_call: Any = None

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        if self.on_call is not None:
            self.on_call()
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kw)


@pytest.mark.parametrize(
    ("filters", "covers"),
    [({"system_prompt": SYSTEM}, True), ({"model": "other-model"}, False), (None, False)],
)
def test_langchain_answer_computed_during_an_invalidation_is_not_served(
    any_core: CacheCore, filters: dict[str, Any] | None, covers: bool
) -> None:
    """LangChain looks up, calls the model, then updates: the generation its lookup saw goes
    with the update, so the answer is dead on arrival when the model ran across the
    invalidation (and served otherwise: the controls)."""
    cache = LangChainSemCache(core=any_core)
    calls = iter([AIMessage("first answer"), AIMessage("second answer")])
    model = InvalidatingChat(messages=calls, cache=cache)
    if filters is not None:
        model.on_call = lambda: any_core.invalidate(**filters)
    prompt = [SystemMessage(SYSTEM), HumanMessage(QUESTION)]
    assert model.invoke(prompt).content == "first answer"
    model.on_call = None
    again = model.invoke(prompt).content
    assert again == ("second answer" if covers else "first answer")


class InvalidateDuringCall(CustomLogger):
    """A LiteLLM input callback: runs ``action`` just before the provider is called, after the
    cache lookup (the operator's invalidation lands while the answer is being computed)."""

    def __init__(self, action: Any) -> None:
        super().__init__()
        self.action = action

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        if self.action is not None:
            self.action()


@pytest.mark.parametrize(
    ("filters", "covers"),
    [({"system_prompt": SYSTEM}, True), ({"model": "other-model"}, False), (None, False)],
)
def test_litellm_answer_computed_during_an_invalidation_is_not_served(
    any_core: CacheCore, filters: dict[str, Any] | None, covers: bool
) -> None:
    previous = litellm.cache, list(litellm.input_callback)
    litellm.cache = SemCache(core=any_core)
    hook = InvalidateDuringCall(None if filters is None else lambda: any_core.invalidate(**filters))
    litellm.input_callback = [hook]
    try:
        messages = ask(QUESTION)
        first = litellm.completion(model=LITELLM_MODEL, messages=messages, mock_response="first")
        assert first.choices[0].message.content == "first"
        hook.action = None
        again = litellm.completion(model=LITELLM_MODEL, messages=messages, mock_response="second")
        assert again.choices[0].message.content == ("second" if covers else "first")
    finally:
        litellm.cache, litellm.input_callback = previous


def test_generation_counters_live_beside_the_index_and_go_with_it(
    any_core: CacheCore, redis_client: redis.Redis
) -> None:
    assert any_core.store(ask(QUESTION), "answer", "m")
    assert any_core.invalidate(model="m", namespace="default") == 1
    assert any_core.invalidate(system_prompt=SYSTEM) == 0  # bumps even when nothing matched
    counters = sorted(redis_client.scan_iter(match=f"{any_core.layout.name}:g:*"))
    assert len(counters) == 2
    assert not any(key.startswith(any_core.layout.key_prefix.encode()) for key in counters)
    assert redis_client.ttl(counters[0]) == -1  # never expire: an expiry would undo invalidation
    drop_index(redis_client, any_core.layout.name)
    assert list(redis_client.scan_iter(match=f"{any_core.layout.name}:*")) == []
