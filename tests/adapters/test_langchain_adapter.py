"""The LangChain adapter against real Redis, the real embedding model and ChatOpenAI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableBinding
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from semcache_plugins._adapters._langchain_convert import (
    OPAQUE_ROLE,
    parse_llm_string,
    parse_prompt,
)
from semcache_plugins._cache._scope import plan_request
from semcache_plugins._cli._fake_llm import FakeLLM, echo_answer
from semcache_plugins._embedding._embedder import Embedder
from semcache_plugins.embedded import EmbeddedRedis
from semcache_plugins.langchain import LangChainSemCache, cached

SYSTEM = "You are a helpful support agent."
RESET = "How do I reset my password?"
FORGOT = "I forgot my password, how can I reset it?"


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return "sunny"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    fake = FakeLLM(delay=0, answer=echo_answer).start()
    yield fake
    fake.stop()


def expected(question: str, system: str = SYSTEM) -> str:
    """What the server answers gpt-4o-mini at temperature 0 for this system + question."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return echo_answer(messages, "gpt-4o-mini", 0.0)


@pytest.fixture
async def cache(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> AsyncIterator[LangChainSemCache]:
    # Generous time budgets: these tests check what is served, not latency on a busy machine.
    semcache = LangChainSemCache(
        redis_url=redis_url,
        index_prefix=index_prefix,
        embedder=embedder,
        lookup_timeout=10.0,
        socket_timeout=5.0,
    )
    yield semcache
    await semcache.aclose()


@pytest.fixture
def global_cache(cache: LangChainSemCache) -> Iterator[LangChainSemCache]:
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def chat(server: FakeLLM, cache: Any = None, **kwargs: Any) -> ChatOpenAI:
    options: dict[str, Any] = {"model": "gpt-4o-mini", "temperature": 0, **kwargs}
    return ChatOpenAI(
        api_key=SecretStr("sk-test"),
        base_url=server.api_base,
        max_retries=0,
        cache=cache,
        **options,
    )


def ask(text: str, system: str = SYSTEM) -> list[Any]:
    return [SystemMessage(system), HumanMessage(text)]


def without_hit_info(message: AIMessage) -> AIMessage:
    """The message as stored: a hit adds ``response_metadata["semcache"]``."""
    metadata = {k: v for k, v in message.response_metadata.items() if k != "semcache"}
    return message.model_copy(update={"response_metadata": metadata})


# -- ChatOpenAI against the counting server --------------------------------------------------


def test_paraphrase_hits_and_every_scope_change_reaches_the_model(
    server: FakeLLM, cache: LangChainSemCache
) -> None:
    model = chat(server, cache)
    start = server.count
    first = model.invoke(ask(RESET))
    assert first.content == expected(RESET)
    assert server.count == start + 1

    again = model.invoke(ask(FORGOT))
    assert again.content == first.content
    assert server.count == start + 1

    misses = [
        (model, ask(FORGOT, "You are a pirate. Answer like one.")),
        (chat(server, cache, model="gpt-4o"), ask(FORGOT)),
        (chat(server, cache, temperature=0.9), ask(FORGOT)),
        (model.bind_tools([get_weather]), ask(FORGOT)),
        (
            model,
            [SystemMessage(SYSTEM), HumanMessage("Hi"), AIMessage("Hello!"), HumanMessage(FORGOT)],
        ),
    ]
    for n, (runnable, messages) in enumerate(misses, start=1):
        runnable.invoke(messages)
        assert server.count == start + 1 + n, f"scope change {n} was served from the cache"


def test_bound_tools_answers_are_cached_exactly_only(
    server: FakeLLM, cache: LangChainSemCache
) -> None:
    model = chat(server, cache).bind_tools([get_weather])
    start = server.count
    call = model.invoke(ask("What is the weather in Paris right now?"))
    assert call.tool_calls and call.tool_calls[0]["name"] == "get_weather"
    again = model.invoke(ask("What is the weather in Paris right now?"))
    assert again.tool_calls == call.tool_calls and again.id == call.id
    assert server.count == start + 1
    model.invoke(ask("What's the weather like in Paris at the moment?"))
    assert server.count == start + 2


def test_global_cache_with_an_lcel_chain(server: FakeLLM, global_cache: LangChainSemCache) -> None:
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", "{question}")])
    chain = prompt | chat(server) | StrOutputParser()
    start = server.count
    assert chain.invoke({"question": RESET}) == expected(RESET)
    assert chain.invoke({"question": FORGOT}) == expected(RESET)
    assert server.count == start + 1
    pirate = ChatPromptTemplate.from_messages(
        [("system", "Talk like a pirate."), ("human", "{question}")]
    )
    assert (pirate | chat(server) | StrOutputParser()).invoke({"question": FORGOT}) == (
        expected(FORGOT, "Talk like a pirate.")
    )
    assert server.count == start + 2


def test_readme_usage(
    server: FakeLLM,
    redis_url: str,
    index_prefix: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_url, api_key = server.api_base, SecretStr("sk-test")
    start = server.count
    request.addfinalizer(lambda: set_llm_cache(None))
    monkeypatch.setenv("SEMCACHE_INDEX_PREFIX", index_prefix)
    # --- README: LangChain -------------------------------------------------------------------
    cache = LangChainSemCache(redis_url=redis_url)
    set_llm_cache(cache)  # every model; or per model: ChatOpenAI(..., cache=cache)
    model = ChatOpenAI(model="gpt-4o-mini", temperature=0, base_url=base_url, api_key=api_key)

    first = model.invoke("How do I reset my password?")
    again = model.invoke("I forgot my password, how can I reset it?")  # served by the cache
    assert again.content == first.content

    # .stream()/.astream() skip LangChain's cache; cached() makes them read and fill it.
    question = "I forgot my password, how can I reset it?"
    streamed = "".join(str(chunk.content) for chunk in cached(model).stream(question))
    assert streamed == first.content

    cache.clear(model="gpt-4o-mini")  # or clear(system_prompt=...), or clear() for everything
    # ---------------------------------------------------------------------------------------------
    assert server.count == start + 1
    cache.close()


QUESTIONS = {
    RESET: FORGOT,
    "What are your opening hours on weekends?": "When are you open on the weekend?",
    "How can I cancel my subscription?": "How do I cancel my subscription plan?",
    "Where can I download my invoices?": "Where do I download my invoices?",
}


async def test_32_concurrent_ainvoke_calls(server: FakeLLM, cache: LangChainSemCache) -> None:
    model = chat(server, cache)
    start = server.count
    firsts = await asyncio.gather(*(model.ainvoke(ask(q)) for q in QUESTIONS))
    assert server.count == start + len(QUESTIONS)
    calls = [ask(q if i % 2 else p) for i, (q, p) in enumerate(list(QUESTIONS.items()) * 8)]
    answers = await asyncio.gather(*(model.ainvoke(messages) for messages in calls))
    assert len(answers) == 32
    assert server.count == start + len(QUESTIONS)
    expected = [first.content for first in firsts] * 8
    assert [answer.content for answer in answers] == expected
    assert cast(int, cache.stats()["hits_semantic"]) >= 16


# -- streaming ---------------------------------------------------------------------------------


def test_stream_reads_and_fills_the_cache(server: FakeLLM, cache: LangChainSemCache) -> None:
    model = chat(server, cache)
    streaming = cached(model)  # uses the model's own cache=
    start = server.count
    cold = list(streaming.stream(ask(RESET)))
    assert server.count == start + 1 and len(cold) > 3
    text = "".join(str(chunk.content) for chunk in cold)
    assert text == expected(RESET)

    warm = list(streaming.stream(ask(FORGOT)))
    assert server.count == start + 1
    assert len(warm) > 3 and all(isinstance(chunk, AIMessageChunk) for chunk in warm)
    assert "".join(str(chunk.content) for chunk in warm) == text
    assert model.invoke(ask(FORGOT)).content == text  # invoke and stream share entries
    assert server.count == start + 1

    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", "{question}")])
    pieces = list((prompt | streaming | StrOutputParser()).stream({"question": FORGOT}))
    assert len(pieces) > 3 and "".join(pieces) == text
    assert server.count == start + 1


def test_abandoned_stream_is_not_stored(server: FakeLLM, cache: LangChainSemCache) -> None:
    streaming = cached(chat(server), cache=cache)
    start = server.count
    for _ in streaming.stream(ask("What are your opening hours on weekends?")):
        break
    list(streaming.stream(ask("What are your opening hours on weekends?")))
    assert server.count == start + 2
    list(streaming.stream(ask("What are your opening hours on weekends?")))
    assert server.count == start + 2


async def test_astream_and_wrapper_invoke(server: FakeLLM, cache: LangChainSemCache) -> None:
    streaming = cached(chat(server), cache=cache)  # the model itself has no cache
    start = server.count
    cold = [chunk async for chunk in streaming.astream(ask(RESET))]
    assert server.count == start + 1
    warm = [chunk async for chunk in streaming.astream(ask(FORGOT))]
    assert server.count == start + 1 and len(warm) > 3
    assert "".join(str(c.content) for c in warm) == "".join(str(c.content) for c in cold)
    assert (await streaming.ainvoke(ask(FORGOT))).content == expected(RESET)
    assert streaming.invoke(ask(FORGOT)).content == expected(RESET)
    assert server.count == start + 1
    new = await streaming.ainvoke(ask("How can I cancel my subscription?"))
    assert server.count == start + 2
    served = streaming.invoke(ask("How do I cancel my subscription plan?"))
    assert served.response_metadata["semcache"]["tier"] == "semantic"
    assert without_hit_info(served) == new
    assert server.count == start + 2


def test_streamed_tool_calls_round_trip(server: FakeLLM, cache: LangChainSemCache) -> None:
    streaming = cached(chat(server).bind_tools([get_weather]), cache=cache)
    question = ask("What is the weather in Paris right now?")
    start = server.count
    cold = list(streaming.stream(question))
    warm = list(streaming.stream(question))
    assert server.count == start + 1
    total_cold = cold[0]
    for chunk in cold[1:]:
        total_cold += chunk
    total_warm = warm[0]
    for chunk in warm[1:]:
        total_warm += chunk
    assert total_warm.tool_calls == total_cold.tool_calls
    assert total_warm.tool_calls[0]["name"] == "get_weather"


# -- fidelity with a fake model ------------------------------------------------------------------


def test_tool_calls_and_usage_survive_a_round_trip(cache: LangChainSemCache) -> None:
    original = AIMessage(
        content="Let me look that up.",
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_9"}],
        usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
        response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
    )
    model = GenericFakeChatModel(messages=iter([original]), cache=cache)
    first = model.invoke([HumanMessage("What is the weather in Paris?")])
    second = model.invoke([HumanMessage("What is the weather in Paris?")])  # iterator is empty
    assert second.tool_calls == original.tool_calls
    assert second.content == original.content
    assert without_hit_info(second).response_metadata == first.response_metadata
    assert second.response_metadata["semcache"]["tier"] == "exact"
    assert second.usage_metadata is not None
    assert original.usage_metadata is not None
    assert dict(second.usage_metadata, total_cost=0) == dict(original.usage_metadata, total_cost=0)
    llm_string = model._get_llm_string(stop=None)
    paraphrase = dumps([HumanMessage("What's the weather like in Paris?")])
    assert cache.lookup(paraphrase, llm_string) is None  # tool calls: exact tier only
    semantic = LangChainSemCache(core=cache.core, semantic_tool_calls=True)
    hit = semantic.lookup(paraphrase, llm_string)
    assert hit is not None and isinstance(hit[0], ChatGeneration)
    assert isinstance(hit[0].message, AIMessage)
    assert hit[0].message.tool_calls == original.tool_calls


def test_llm_plain_text_prompts(cache: LangChainSemCache) -> None:
    llm = FakeListLLM(responses=["first answer", "second answer"], cache=cache)
    assert llm.invoke(RESET) == "first answer"
    assert llm.invoke(FORGOT) == "first answer"
    assert llm.invoke("What are your opening hours on weekends?") == "second answer"


async def test_clear_by_system_prompt_model_and_all(cache: LangChainSemCache) -> None:
    mini = chat_llm_string("gpt-4o-mini")
    big = chat_llm_string("gpt-4o")
    pirate = "Talk like a pirate."
    entries = [(ask(RESET), mini), (ask(RESET, pirate), mini), (ask(RESET), big)]
    for messages, llm_string in entries:
        cache.update(dumps(messages), llm_string, [ChatGeneration(message=AIMessage("A"))])

    def present() -> list[bool]:
        return [cache.lookup(dumps(m), s) is not None for m, s in entries]

    assert present() == [True, True, True]
    cache.clear(system_prompt=pirate)
    assert present() == [True, False, True]
    await cache.aclear(model="gpt-4o")
    assert present() == [True, False, False]
    with pytest.raises(TypeError):
        cache.clear(prompt=RESET)
    cache.clear()
    assert present() == [False, False, False]


def chat_llm_string(model: str) -> str:
    return ChatOpenAI(model=model, api_key=SecretStr("sk-test"))._get_llm_string(stop=None)


# -- failing open --------------------------------------------------------------------------------


async def test_stopped_redis_makes_calls_slower_never_failing(
    server: FakeLLM, embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server = EmbeddedRedis(data_dir=tmp_path)
    redis_server.start()
    try:
        semcache = LangChainSemCache(
            redis_url=redis_server.url, embedder=embedder, socket_timeout=5.0
        )
        model = chat(server, semcache)
        start = server.count
        model.invoke(ask(RESET))
        model.invoke(ask(FORGOT))
        assert server.count == start + 1
    finally:
        redis_server.stop()
    with caplog.at_level(logging.DEBUG, logger="semcache_plugins"):
        assert model.invoke(ask(FORGOT)).content == expected(FORGOT)
        assert (await model.ainvoke(ask(FORGOT))).content == expected(FORGOT)
        chunks = [c async for c in cached(model).astream(ask(FORGOT))]
        assert "".join(str(c.content) for c in chunks) == expected(FORGOT)
    assert server.count == start + 4
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert all("password" not in r.getMessage() for r in caplog.records)


# -- parsing LangChain's cache arguments ----------------------------------------------------------


def test_prompt_parses_into_the_cores_messages() -> None:
    messages = [
        SystemMessage(SYSTEM),
        HumanMessage("What is the weather?", id="m1"),
        AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]),
        ToolMessage("sunny", tool_call_id="c1"),
        HumanMessage(RESET),
    ]
    parsed = parse_prompt(dumps(messages))
    assert [m["role"] for m in parsed] == ["system", "user", "assistant", "tool", "user"]
    assert parsed[2]["tool_calls"][0]["args"] == {"city": "Paris"}
    assert parsed[3]["tool_call_id"] == "c1"
    plan = plan_request(parsed, model="m", params={}, namespace="n")
    as_openai = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What is the weather?"},
        {"role": "assistant", "content": "", "tool_calls": parsed[2]["tool_calls"]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
        {"role": "user", "content": RESET},
    ]
    assert plan == plan_request(as_openai, model="m", params={}, namespace="n")
    assert plan.semantic and plan.text == RESET

    assert parse_prompt("Tell me a joke") == [{"role": "user", "content": "Tell me a joke"}]
    assert parse_prompt("[1, 2]") == [{"role": "user", "content": "[1, 2]"}]
    odd = dumps([HumanMessage("hi"), RemoveMessage(id="x")])
    assert parse_prompt(odd) == [{"role": OPAQUE_ROLE, "content": odd}]
    assert not plan_request(parse_prompt(odd), model="m", namespace="n").semantic


def test_llm_string_parses_into_model_and_params() -> None:
    model = ChatOpenAI(model="gpt-4o-mini", temperature=0.2, api_key=SecretStr("sk-secret"))
    name, params = parse_llm_string(model._get_llm_string(stop=["END"]))
    assert name == "gpt-4o-mini"
    assert params["temperature"] == 0.2 and params["stop"] == ["END"]
    assert "lc_class" not in params and "stream_usage" not in params  # never change answers
    assert "sk-secret" not in repr(params) and "openai_api_key" not in params

    bound = cast(RunnableBinding[Any, Any], model.bind_tools([get_weather]))
    _, with_tools = parse_llm_string(model._get_llm_string(stop=None, **bound.kwargs))
    assert with_tools["tools"][0]["function"]["name"] == "get_weather"

    assert parse_llm_string("[('_type', 'fake-list'), ('responses', ['a']), ('stop', None)]") == (
        "fake-list",
        {"responses": ["a"], "stop": None, "llm_type": "fake-list"},
    )
    name, params = parse_llm_string("Sample LLM string configuration.")
    assert name == "langchain" and set(params) == {"llm_string_sha256"}
    head = model._get_llm_string(stop=None).split("---")[0]
    _, opaque = parse_llm_string(head + "---[('response_format', <class 'Answer'>)]")
    assert "call_params_sha256" in opaque and "response_format" not in opaque
