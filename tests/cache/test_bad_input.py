"""Odd input never fails a call: requests, responses and stored records the cache cannot use.

Everything runs against the real Redis and model, on ``CacheCore`` directly and through
``litellm.completion`` / ``acompletion`` (``mock_response`` is the provider). Each odd case is
a miss or a skipped store, never an exception out of the LLM call, and never a stored record
that breaks a later lookup. Hypothesis generates OpenAI-style message lists for the properties.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from langchain_core.outputs import Generation

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402

from litellm_reads import content, is_hit
from semcache_plugins import CacheCore, SemcacheError, SerializationError  # noqa: E402
from semcache_plugins._adapters._litellm_convert import to_request  # noqa: E402
from semcache_plugins._cache._scope import plan_request  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

MODEL = "openai/gpt-4o-mini"
SYSTEM = {"role": "system", "content": "You are a helpful support agent."}
QUESTION = "How do I reset my password?"
PARAPHRASE = "I forgot my password, how can I reset it?"
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup_weather", "arguments": '{"city": "Oslo"}'},
}
ESCAPED = b"caf\xe9 cr\xe8me \xff".decode("utf-8", "surrogateescape")  # invalid UTF-8 bytes
MEGABYTE_PROMPT = "please help me " * 70_000  # ~1 MB


def user(content: Any) -> list[dict[str, Any]]:
    return [SYSTEM, {"role": "user", "content": content}]


# name -> (messages, cacheable): cacheable requests are stored and their repeat is an exact hit.
ODD_REQUESTS: dict[str, tuple[Any, bool]] = {
    "empty": (user(""), False),
    "whitespace": (user(" \t\n\u3000 "), False),
    "none_content": (user(None), False),
    "only_system": ([SYSTEM], False),
    "image_part": (user([{"type": "text", "text": "What is this?"}, IMAGE]), False),
    "audio_part": (user([AUDIO]), False),
    "unknown_parts": (user([{"type": "hologram", "x": 1}, {"type": "text", "text": 7}]), False),
    "text_parts": (
        user([{"type": "text", "text": "What is"}, {"type": "text", "text": "Redis?"}]),
        True,
    ),
    "tool_result": (
        [
            *user("What is the weather in Oslo?"),
            {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
        ],
        True,
    ),
    "function_result": (
        [
            *user("What is the weather in Oslo?"),
            {"role": "assistant", "content": None, "function_call": TOOL_CALL["function"]},
            {"role": "function", "name": "lookup_weather", "content": "Sunny, 21 C"},
        ],
        True,
    ),
    "lone_surrogates": (user("Is \ud800 a valid \udfff character?"), True),
    "surrogateescape": (user(ESCAPED), True),
    "one_megabyte": (user(MEGABYTE_PROMPT), True),  # past the model window: exact tier only
}
NOT_MESSAGES: dict[str, Any] = {
    "none": None,
    "string": "How do I reset my password?",
    "empty_list": [],
    "not_dicts": [None, 3, "user"],
    "odd_fields": [{"role": 5, "content": {"nested": b"\xff"}}],
    "bytes_content": [{"role": "user", "content": b"How do I reset my password?"}],
}


@pytest.fixture
def cache(core: CacheCore) -> Iterator[SemCache]:
    previous = litellm.cache
    litellm.cache = semcache = SemCache(core=core)
    yield semcache
    litellm.cache = previous


def chat(messages: Any, answer: str = "The provider's answer.", **kwargs: Any) -> Any:
    return litellm.completion(model=MODEL, messages=messages, mock_response=answer, **kwargs)


async def achat(messages: Any, answer: str = "The provider's answer.", **kwargs: Any) -> Any:
    return await litellm.acompletion(model=MODEL, messages=messages, mock_response=answer, **kwargs)


def count(core: CacheCore, name: str) -> int:
    return int(core.stats()[name])  # type: ignore[call-overload]


def keys(client: redis.Redis, core: CacheCore) -> list[bytes]:
    return list(client.scan_iter(match=f"{core.layout.key_prefix}:*", count=1000))


# -- odd requests --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ODD_REQUESTS)
async def test_odd_requests_on_the_core(core: CacheCore, name: str) -> None:
    messages, cacheable = ODD_REQUESTS[name]
    assert core.lookup(messages, MODEL) is None
    entry = core.store(messages, {"answer": name}, MODEL)
    assert (entry is not None) is cacheable
    hit = core.lookup(messages, MODEL)
    assert (hit is not None) is cacheable
    if hit is not None:
        assert hit.tier == "exact" and hit.response == {"answer": name}
    async_hit = await core.alookup(messages, MODEL)
    assert (async_hit is not None) is cacheable
    assert ((await core.astore(messages, {"answer": 2}, MODEL)) is not None) is cacheable
    assert core.lookup(user(QUESTION), MODEL) is None  # the index still answers queries


@pytest.mark.parametrize("name", NOT_MESSAGES)
async def test_not_messages_are_skipped_by_the_core(core: CacheCore, name: str) -> None:
    messages = NOT_MESSAGES[name]
    assert core.lookup(messages, MODEL) is None
    assert core.store(messages, "x", MODEL) is None
    assert await core.alookup(messages, MODEL) is None
    assert await core.astore(messages, "x", MODEL) is None
    assert count(core, "errors") == 0


def outcome(call: Callable[[], Any]) -> tuple[str, str]:
    """What a call returned (its text) or raised (its type): to compare with and without cache."""
    try:
        return "ok", content(call())
    except Exception as exc:
        return "raised", type(exc).__name__


@pytest.mark.parametrize("name", [*ODD_REQUESTS, *NOT_MESSAGES])
def test_odd_requests_through_litellm(cache: SemCache, name: str) -> None:
    messages, cacheable = ODD_REQUESTS.get(name, (NOT_MESSAGES.get(name), False))
    litellm.cache = None
    without = outcome(lambda: chat(messages, "fresh"))
    litellm.cache = cache
    assert outcome(lambda: chat(messages, "fresh")) == without  # the cache changes nothing
    if without[0] == "ok":
        repeat = chat(messages, "second")  # a hit serves the first answer
        assert is_hit(repeat) is cacheable
        assert content(repeat) == ("fresh" if cacheable else "second")
    assert count(cache.core, "errors") == 0


async def wait_for_stores(core: CacheCore, stores: int) -> None:
    """LiteLLM writes async results in a background task: wait for them."""
    for _ in range(500):
        if count(core, "stores") >= stores:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {count(core, 'stores')} of {stores} stores")


async def aoutcome(call: Callable[[], Awaitable[Any]]) -> tuple[str, str]:
    try:
        return "ok", content(await call())
    except Exception as exc:
        return "raised", type(exc).__name__


async def test_odd_requests_through_acompletion(cache: SemCache) -> None:
    for name, (messages, cacheable) in ODD_REQUESTS.items():
        if name == "one_megabyte":
            continue  # covered by the sync test
        litellm.cache = None
        without = await aoutcome(lambda m=messages: achat(m, "fresh"))
        litellm.cache = cache
        stores = count(cache.core, "stores")
        assert await aoutcome(lambda m=messages: achat(m, "fresh")) == without, name
        if without[0] == "raised":
            continue  # LiteLLM itself refuses these messages
        if cacheable:
            await wait_for_stores(cache.core, stores + 1)
        repeat = await achat(messages, "second")
        assert is_hit(repeat) is cacheable, name
        assert content(repeat) == ("fresh" if cacheable else "second")
    assert count(cache.core, "errors") == 0


# -- odd responses -------------------------------------------------------------------------------


async def test_five_megabyte_response_is_not_stored(
    core: CacheCore, cache: SemCache, redis_client: redis.Redis
) -> None:
    huge = "word " * 1_000_000
    assert core.store(user(QUESTION), huge, MODEL) is None
    assert await core.astore(user(QUESTION), huge, MODEL) is None
    assert count(core, "skipped") == 2 and keys(redis_client, core) == []
    for _ in range(2):
        response = chat(user(PARAPHRASE), huge)
        assert content(response) == huge and not is_hit(response)
    assert not is_hit(await achat(user(PARAPHRASE), huge))
    assert keys(redis_client, core) == [] and count(core, "errors") == 0


def circular() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def deeply_nested() -> list[Any]:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    return value


UNSERIALIZABLE: dict[str, Callable[[], Any]] = {
    "object": object,
    "set": lambda: {"tags": {1, 2}},
    "bytes": lambda: {"audio": b"\x00\xff"},
    "nan": lambda: {"score": math.nan},
    "infinity": lambda: [math.inf],
    "circular": circular,
    "deeply_nested": deeply_nested,
}


@pytest.mark.parametrize("name", UNSERIALIZABLE)
async def test_unserializable_response_is_a_serialization_error(
    core: CacheCore, redis_client: redis.Redis, name: str
) -> None:
    value = UNSERIALIZABLE[name]()
    with pytest.raises(SerializationError):
        core.store(user(QUESTION), value, MODEL)
    with pytest.raises(SemcacheError):
        await core.astore(user(QUESTION), value, MODEL)
    assert keys(redis_client, core) == []
    assert core.lookup(user(QUESTION), MODEL) is None


def litellm_kwargs(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": user(text), "litellm_call_id": "call-1"}


async def test_adapters_swallow_unserializable_results(core: CacheCore, cache: SemCache) -> None:
    odd_response = litellm.ModelResponse(choices=[{"message": {"content": "x"}}])
    odd_response.choices[0].message.content = object()  # type: ignore[assignment]
    results: list[Any] = [
        {"choices": [{"message": {"role": "assistant", "content": math.nan}}]},
        {"choices": [{"message": {"role": "assistant", "content": "x"}}], "x": {1, 2}},
        odd_response,
        '{"choices": [',
        b"\xff\xfe",
        42,
        None,
    ]
    for result in results:
        cache.add_cache(result, **litellm_kwargs(QUESTION))
        await cache.async_add_cache(result, **litellm_kwargs(QUESTION))
    assert count(core, "stores") == 0
    assert cache.get_cache(**litellm_kwargs(QUESTION)) is None

    langchain = LangChainSemCache(core=core)
    generations = [Generation(text="x", generation_info={"handle": object()})]
    langchain.update(QUESTION, "llm-string", generations)
    await langchain.aupdate(QUESTION, "llm-string", generations)
    assert langchain.lookup(QUESTION, "llm-string") is None
    assert count(core, "stores") == 0


# -- corrupt and foreign records -----------------------------------------------------------------


CORRUPTIONS: dict[str, dict[str, Any]] = {
    "payload_not_json": {"payload": "{broken"},
    "payload_bad_utf8": {"payload": b"\xff\xfe{"},
    "payload_other_version": {"payload": '{"v": 99, "response": "x"}'},
    "payload_no_response": {"payload": '{"v": 1}'},
    "payload_a_list": {"payload": "[1, 2, 3]"},
    "payload_deep": {"payload": "[" * 100_000 + "]" * 100_000},
    "prompt_bad_utf8": {"prompt": b"\xc3\x28"},
    "scope_foreign": {"scope": "0" * 32},
    "created_at_nan": {"created_at": "nan"},
    "created_at_text": {"created_at": "yesterday"},
    "tools_garbage": {"tools": b"\xff"},
    "embedding_wrong_size": {"embedding": b"\x00\x01\x02"},
}


CORE_PARAMS = {"semcache_test": "core only"}


@pytest.mark.parametrize("name", CORRUPTIONS)
async def test_corrupt_record_is_a_miss_then_healed(
    core: CacheCore, cache: SemCache, redis_client: redis.Redis, name: str
) -> None:
    # a core entry in a scope of its own (LiteLLM chat calls share the plain scope)
    entry = core.store(user(QUESTION), {"answer": "good"}, MODEL, CORE_PARAMS)
    chat(user(QUESTION), "good")  # the LiteLLM entry
    litellm_entry = chat(user(QUESTION), "unused")._hidden_params["semcache"]["entry_id"]
    assert entry is not None and litellm_entry != entry
    for key in (entry, litellm_entry):
        redis_client.hset(core.layout.key(key), mapping=CORRUPTIONS[name])
    for messages in (user(QUESTION), user(PARAPHRASE)):
        hits = (
            core.lookup(messages, MODEL, CORE_PARAMS),
            await core.alookup(messages, MODEL, CORE_PARAMS),
        )
        for hit in hits:
            assert hit is None or hit.response == {"answer": "good"}  # never garbage
    answer = content(chat(user(QUESTION), "fresh"))  # through LiteLLM: never a failure
    assert answer in {"good", "fresh"}  # some corruptions leave the record readable
    if answer == "fresh":  # a miss rewrites the entry whole: it serves again
        healed = chat(user(QUESTION), "second")
        assert is_hit(healed) and content(healed) == "fresh"
    assert content(await achat(user(PARAPHRASE), "third")) in {"good", "fresh", "third"}
    assert count(core, "errors") == 0


FOREIGN_RESPONSES: dict[str, Any] = {
    "text": "just a string",
    "no_choices": {"answer": 42},
    "empty_choices": {"choices": []},
    "message_not_a_dict": {"choices": [{"message": "hello"}]},
    "no_role": {"choices": [{"message": {"content": "x"}}]},
    "content_int": {"choices": [{"message": {"role": "assistant", "content": 5}}]},
    "content_list": {"choices": [{"message": {"role": "assistant", "content": ["x", 1]}}]},
    "tool_calls_garbage": {
        "choices": [{"message": {"role": "assistant", "content": "x", "tool_calls": [1, 2]}}]
    },
    "usage_garbage": {
        "choices": [{"message": {"role": "assistant", "content": "x"}}],
        "usage": {"prompt_tokens": "many"},
    },
    "usage_a_string": {
        "choices": [{"message": {"role": "assistant", "content": "x"}}],
        "usage": "lots",
    },
    "odd_but_readable": {
        "choices": [{"message": {"role": "assistant", "content": "x"}, "logprobs": "bad"}],
        "created": "yesterday",
        "id": [1],
        "model": {"a": 1},
        "_hidden_params": "boom",
    },
}


@pytest.mark.parametrize("name", FOREIGN_RESPONSES)
async def test_foreign_response_shapes_never_fail_the_call(
    core: CacheCore, cache: SemCache, redis_client: redis.Redis, name: str
) -> None:
    chat(user(QUESTION), "fresh")
    entry = chat(user(QUESTION), "unused")._hidden_params["semcache"]["entry_id"]
    payload = json.dumps({"v": 1, "response": FOREIGN_RESPONSES[name]})
    redis_client.hset(core.layout.key(entry), "payload", payload)
    answers = {
        content(chat(user(QUESTION), "a")),
        "".join(c.choices[0].delta.content or "" for c in chat(user(QUESTION), "b", stream=True)),
        content(await achat(user(QUESTION), "c")),
    }
    # the provider's, or a readable cached "x" (a plain string is an answer text too)
    assert answers <= {"a", "b", "c", "x", "just a string"}


async def test_foreign_hashes_under_the_key_prefix(
    core: CacheCore, cache: SemCache, redis_client: redis.Redis
) -> None:
    entry = core.store(user(QUESTION), {"answer": "good"}, MODEL)
    assert entry is not None
    real = redis_client.hgetall(core.layout.key(entry))
    redis_client.hset(core.layout.key("foreign-plain"), mapping={"foo": "bar", "scope": "x"})
    garbage = {**real, b"payload": b"\x00garbage", b"prompt": b"\xff"}
    redis_client.hset(core.layout.key("foreign-copy"), mapping=garbage)  # same vector and tags
    for messages in (user(QUESTION), user(PARAPHRASE)):
        hit = core.lookup(messages, MODEL)
        assert hit is not None and hit.response == {"answer": "good"}
        async_hit = await core.alookup(messages, MODEL)
        assert async_hit is not None and async_hit.response == {"answer": "good"}
    redis_client.delete(core.layout.key(entry))  # only foreign hashes are left
    assert core.lookup(user(PARAPHRASE), MODEL) is None

    chat(user(QUESTION), "fresh")  # a LiteLLM entry, then a valid record of a foreign shape
    litellm_entry = chat(user(QUESTION), "unused")._hidden_params["semcache"]["entry_id"]
    litellm_key = core.layout.key(litellm_entry)
    stranger = {
        **redis_client.hgetall(litellm_key),
        b"payload": json.dumps({"v": 1, "response": {"not": "an answer"}}),
    }
    redis_client.delete(litellm_key)
    redis_client.hset(core.layout.key("foreign-valid"), mapping=stranger)
    semantic_hits = count(core, "hits_semantic")
    response = chat(user(PARAPHRASE), "second")
    assert count(core, "hits_semantic") == semantic_hits + 1  # the core found it ...
    assert content(response) == "second" and not is_hit(response)  # ... LiteLLM did not use it
    assert count(core, "errors") == 0


# -- properties ----------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    ["", " ", "\t\n", "\ud800", "a\udfffb", ESCAPED, "e\u0301", "\ufb01", "\u200b", "\U0001f642"]
)
TEXT = st.one_of(
    st.text(max_size=24),
    ODD_TEXT,
    st.text(st.characters(exclude_categories=()), max_size=8),  # surrogates included
)
TEXT_PART = st.builds(lambda text: {"type": "text", "text": text}, TEXT)
PART = st.one_of(
    TEXT_PART,
    st.just(IMAGE),
    st.just(AUDIO),
    st.fixed_dictionaries({"type": TEXT}, optional={"data": st.integers()}),
    TEXT,
    st.none(),
    st.integers(),
)
CONTENT = st.one_of(st.none(), TEXT, st.lists(PART, max_size=3))
ROLE = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])
MESSAGE = st.fixed_dictionaries(
    {"role": ROLE, "content": CONTENT},
    optional={
        "name": TEXT,
        "tool_call_id": TEXT,
        "tool_calls": st.lists(st.just(TOOL_CALL), max_size=2),
    },
)
LAST_TURN = st.one_of(  # a text turn half the time, so that many requests are cacheable
    MESSAGE,
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "tool", "assistant"]),
            "content": st.one_of(TEXT, st.lists(TEXT_PART, min_size=1, max_size=3)),
        }
    ),
)
MESSAGES = st.builds(lambda prior, last: [*prior, last], st.lists(MESSAGE, max_size=3), LAST_TURN)
ODD_MESSAGES = st.one_of(
    st.none(),
    TEXT,
    st.binary(max_size=8),
    st.lists(st.one_of(MESSAGE, st.none(), st.integers(), TEXT), max_size=3),
    st.lists(
        st.fixed_dictionaries(
            {"role": st.one_of(st.integers(), st.none(), TEXT)},
            optional={"content": st.one_of(st.integers(), st.binary(max_size=4), st.just({}))},
        ),
        max_size=2,
    ),
)
PARAMS = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["temperature", "max_tokens", "tools", "seed", "odd\ud800"]),
        st.one_of(st.none(), st.floats(), st.integers(), TEXT, st.lists(st.integers(), max_size=2)),
        max_size=3,
    ),
)
JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,  # nothing written into the checkout; a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(messages=MESSAGES, params=PARAMS, response=JSON)
def test_well_formed_requests_never_raise_and_round_trip(
    core: CacheCore, messages: list[dict[str, Any]], params: Any, response: Any
) -> None:
    plan = plan_request(messages, model=MODEL, params=params, namespace="default")
    event(f"cacheable: {plan.skip_reason is None}")
    core.lookup(messages, MODEL, params)  # may hit an earlier example's entry: never raises
    entry = core.store(messages, response, MODEL, params)
    assert (entry is not None) is (plan.skip_reason is None)
    hit = core.lookup(messages, MODEL, params)
    if entry is None:
        assert hit is None
    else:
        assert hit is not None and hit.tier == "exact" and hit.entry_id == entry
        assert hit.response == response


@PROPERTY
@given(messages=ODD_MESSAGES, params=PARAMS, model=TEXT)
def test_any_request_raises_only_semcache_errors(
    core: CacheCore, messages: Any, params: Any, model: str
) -> None:
    for call in (
        lambda: core.lookup(messages, model, params),
        lambda: core.store(messages, {"answer": 1}, model, params),
    ):
        with contextlib.suppress(SemcacheError):
            call()


CONTROLS = st.one_of(
    st.none(),
    TEXT,
    st.fixed_dictionaries(
        {},
        optional={
            "namespace": st.one_of(st.sampled_from(["tenant-a", "a|b", ""]), TEXT, st.integers()),
            "ttl": st.one_of(st.integers(), st.floats(), TEXT),
            "s-maxage": st.one_of(st.integers(), st.floats(), TEXT),
        },
    ),
)
RESULTS = st.one_of(
    st.builds(
        lambda text: litellm.ModelResponse(
            choices=[{"message": {"role": "assistant", "content": text}}]
        ),
        TEXT,
    ),
    JSON,
    st.binary(max_size=8),
)


@PROPERTY
@given(
    messages=st.one_of(MESSAGES, ODD_MESSAGES),
    controls=CONTROLS,
    temperature=st.one_of(st.none(), st.floats(), TEXT),
    result=RESULTS,
)
async def test_litellm_hooks_never_raise(
    cache: SemCache, messages: Any, controls: Any, temperature: Any, result: Any
) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "messages": messages, "litellm_call_id": "c"}
    kwargs.update({"cache": controls} if controls is not None else {})
    kwargs.update({"temperature": temperature} if temperature is not None else {})
    cache.add_cache(result, **kwargs)
    cache.get_cache(**kwargs)
    await cache.async_add_cache(result, **kwargs)
    await cache.async_get_cache(**kwargs)


@PROPERTY
@given(messages=MESSAGES, answer=TEXT)
async def test_litellm_hooks_store_then_lookup_hits(
    cache: SemCache, messages: list[dict[str, Any]], answer: str
) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "messages": messages, "temperature": 0}
    request = to_request(kwargs, model=MODEL)
    assert request is not None
    plan = plan_request(messages, model=MODEL, params=request.params, namespace="default")
    event(f"cacheable: {plan.skip_reason is None}")
    result = litellm.ModelResponse(choices=[{"message": {"role": "assistant", "content": answer}}])
    cache.add_cache(result, **kwargs)
    served = [cache.get_cache(**kwargs)]
    await cache.async_add_cache(result, **kwargs)
    served.append(await cache.async_get_cache(**kwargs))
    for hit in served:
        if plan.skip_reason is not None:
            assert hit is None
        else:
            assert hit is not None and hit["_hidden_params"]["semcache"]["tier"] == "exact"
            assert hit["choices"][0]["message"]["content"] == answer


@pytest.mark.parametrize("namespace", ["", "a,b", "*", "x y", "{t}", 7])
async def test_litellm_bad_namespace_fails_open(
    cache: SemCache, core: CacheCore, redis_client: redis.Redis, namespace: Any
) -> None:
    """A per-call namespace the settings would refuse is a cache-side error: the call goes to
    the provider, nothing is stored, and the core refuses the same namespace outright."""
    question = user("How do I reset my password?")
    for _ in range(2):
        response = chat(question, cache={"namespace": namespace})
        assert content(response) == "The provider's answer." and not is_hit(response)
    response = await achat(question, cache={"namespace": namespace})
    assert not is_hit(response)
    assert keys(redis_client, core) == []
    with pytest.raises(SemcacheError):
        core.store(question, "answer", MODEL, namespace=namespace)
    assert not is_hit(chat(question, cache={"namespace": "tenant-a"}))  # control: stored ...
    assert is_hit(chat(question, cache={"namespace": "tenant-a"}))  # ... and served
