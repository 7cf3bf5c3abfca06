"""Warmed answers reach the adapters; delete by entry id; hit metadata on every kind of hit.

Real Redis, the real model, real LiteLLM and LangChain code paths. Providers: LiteLLM's
``mock_response``, a local OpenAI-compatible server for ``ChatOpenAI``, LangChain fakes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.language_models.fake import FakeListLLM  # noqa: E402
from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402
from langchain_core.outputs import LLMResult  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from semcache_plugins import CacheCore, ConfigurationError  # noqa: E402
from semcache_plugins._cli._fake_llm import FakeLLM, echo_answer  # noqa: E402
from semcache_plugins._embedding._embedder import Embedder  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache, cached, warm_scope  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

SYSTEM = "You are a terse support agent."
RESET = "How do I reset my password?"
FORGOT = "I forgot my password, how can I reset it?"
HOURS = "What are your opening hours?"
HOURS_2 = "Which hours are you open?"
WEATHER = "What is the weather in Paris?"
RECORDS: list[dict[str, Any]] = [
    {"prompt": RESET, "system": SYSTEM, "response": "Use the reset link on the login page."},
    {
        "prompt": HOURS,
        "system": SYSTEM,
        "response": {"role": "assistant", "content": "9 to 5, Monday to Friday."},
    },
    {
        "messages": [{"role": "user", "content": "Explain HNSW in one line."}],
        "response": "A layered proximity graph for approximate nearest neighbours.",
        "params": {"temperature": 0},
    },
    {
        "prompt": WEATHER,
        "response": {
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
    },
]


def semcache_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "semcache_plugins", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def target(redis_url: str, index_prefix: str) -> list[str]:
    return ["--redis-url", redis_url, "--index-prefix", index_prefix]


@pytest.fixture
def warmed(tmp_path: Path, target: list[str]) -> None:
    """The records above, loaded by ``semcache warm`` in a subprocess."""
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(record) for record in RECORDS) + "\n")
    done = semcache_cli("warm", str(data), "--model", "gpt-4o-mini", *target)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("stored 4, skipped 0")


@pytest.fixture
def semcache(make_litellm_cache: Callable[..., SemCache]) -> SemCache:
    return make_litellm_cache(lookup_timeout=10.0)


@pytest.fixture
def lc_cache(redis_url: str, index_prefix: str, embedder: Embedder) -> Iterator[LangChainSemCache]:
    cache = LangChainSemCache(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=10.0
    )
    yield cache
    cache.close()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    fake = FakeLLM(delay=0, answer=echo_answer).start()
    yield fake
    fake.stop()


def ask(text: str, system: str | None = SYSTEM) -> list[dict[str, Any]]:
    return [*([{"role": "system", "content": system}] if system else []), _user(text)]


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def complete(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return litellm.completion(
        model="gpt-4o-mini", messages=messages, mock_response="from the provider", **kwargs
    )


async def acomplete(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return await litellm.acompletion(
        model="gpt-4o-mini", messages=messages, mock_response="from the provider", **kwargs
    )


def info(response: Any) -> dict[str, Any] | None:
    return response._hidden_params.get("semcache")


def streamed_info(chunks: list[Any]) -> list[dict[str, Any]]:
    found = []
    for chunk in chunks:
        extra = chunk.choices[0].delta.provider_specific_fields if chunk.choices else None
        if extra and "semcache" in extra:
            found.append(extra["semcache"])
    return found


# -- warm -> LiteLLM --------------------------------------------------------------------------


@pytest.mark.usefixtures("warmed")
def test_warmed_answers_serve_litellm_completion(semcache: SemCache) -> None:
    exact = complete(ask(RESET))
    assert exact.choices[0].message.content == "Use the reset link on the login page."
    assert info(exact)["tier"] == "exact"  # type: ignore[index]
    paraphrase = complete(ask(FORGOT))
    assert paraphrase.choices[0].message.content == "Use the reset link on the login page."
    assert info(paraphrase)["tier"] == "semantic"  # type: ignore[index]
    assert complete(ask(HOURS_2)).choices[0].message.content == "9 to 5, Monday to Friday."
    hnsw = complete([_user("Explain HNSW in one line.")], temperature=0)
    assert hnsw.choices[0].message.content.startswith("A layered proximity graph")
    # scope still rules: another system prompt, model or temperature goes to the provider
    misses = [
        complete(ask(RESET, "You are a pirate.")),
        litellm.completion(model="gpt-4o", messages=ask(RESET), mock_response="from the provider"),
        complete([_user("Explain HNSW in one line.")], temperature=0.7),
        complete([_user("Explain HNSW in one line.")]),
    ]
    assert [m.choices[0].message.content for m in misses] == ["from the provider"] * 4


@pytest.mark.usefixtures("warmed")
def test_warmed_tool_calls_are_served_on_exact_repeats(semcache: SemCache) -> None:
    hit = complete([_user(WEATHER)])
    [call] = hit.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert hit.choices[0].finish_reason == "tool_calls"
    paraphrase = complete([_user("How is the weather in Paris right now?")])
    assert paraphrase.choices[0].message.content == "from the provider"  # exact tier only
    chunks = list(complete([_user(WEATHER)], stream=True))
    built = litellm.stream_chunk_builder(chunks)
    [streamed_call] = built.choices[0].message.tool_calls  # type: ignore[union-attr]
    assert streamed_call.function.name == "get_weather"
    assert json.loads(streamed_call.function.arguments) == {"city": "Paris"}


@pytest.mark.usefixtures("warmed")
async def test_warmed_answers_serve_acompletion_and_streams(semcache: SemCache) -> None:
    hit = await acomplete(ask(FORGOT))
    assert hit.choices[0].message.content == "Use the reset link on the login page."
    assert info(hit)["tier"] == "semantic"  # type: ignore[index]

    chunks = list(complete(ask(RESET), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Use the reset link on the login page."
    )
    [meta] = streamed_info(chunks)
    assert meta["tier"] == "exact" and len(meta["entry_id"]) == 32

    stream = await acomplete(ask(FORGOT), stream=True)
    achunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in achunks if c.choices) == (
        "Use the reset link on the login page."
    )
    [ameta] = streamed_info(achunks)
    assert ameta["tier"] == "semantic" and ameta["entry_id"] == meta["entry_id"]


def test_streamed_hits_of_litellm_entries_carry_the_semcache_dict(semcache: SemCache) -> None:
    first = complete(ask(RESET))
    assert info(first) is None
    chunks = list(complete(ask(FORGOT), stream=True))
    [meta] = streamed_info(chunks)
    assert meta["tier"] == "semantic" and 0.85 <= meta["similarity"] <= 1.0
    plain = complete(ask(FORGOT))
    assert info(plain) == meta


# -- warm -> LangChain ------------------------------------------------------------------------


def chat(server: FakeLLM, cache: Any, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        api_key=SecretStr("sk-test"),
        base_url=server.api_base,
        max_retries=0,
        cache=cache,
        **kwargs,
    )


@pytest.mark.usefixtures("warmed")
async def test_warmed_answers_serve_langchain_chat_models(
    server: FakeLLM, lc_cache: LangChainSemCache
) -> None:
    model = chat(server, lc_cache)
    assert warm_scope(model) == {"model": "gpt-4o-mini", "params": {}}
    start = server.count
    exact = model.invoke([SystemMessage(SYSTEM), HumanMessage(RESET)])
    assert exact.content == "Use the reset link on the login page."
    assert exact.response_metadata["semcache"]["tier"] == "exact"
    paraphrase = await model.ainvoke([SystemMessage(SYSTEM), HumanMessage(FORGOT)])
    assert paraphrase.content == "Use the reset link on the login page."
    assert paraphrase.response_metadata["semcache"]["tier"] == "semantic"
    streamed = "".join(
        str(c.content) for c in cached(model).stream([SystemMessage(SYSTEM), HumanMessage(HOURS_2)])
    )
    assert streamed == "9 to 5, Monday to Friday."
    tool = model.invoke(WEATHER)
    assert tool.tool_calls[0]["name"] == "get_weather"
    assert tool.tool_calls[0]["args"] == {"city": "Paris"}
    hnsw = chat(server, lc_cache, temperature=0).invoke("Explain HNSW in one line.")
    assert str(hnsw.content).startswith("A layered proximity graph")
    assert server.count == start
    chat(server, lc_cache, temperature=0.7).invoke("Explain HNSW in one line.")
    assert server.count == start + 1


def test_adapters_serve_each_others_entries(
    server: FakeLLM, semcache: SemCache, lc_cache: LangChainSemCache
) -> None:
    """LiteLLM chat calls and LangChain chat models with the same model, system prompt and
    params share one scope: each renders the other's stored answer."""
    model = chat(server, lc_cache, temperature=0)
    start = server.count
    stored = model.invoke([SystemMessage(SYSTEM), HumanMessage(RESET)])
    assert server.count == start + 1
    served = complete(ask(FORGOT), temperature=0)
    assert served.choices[0].message.content == stored.content
    assert info(served)["tier"] == "semantic"  # type: ignore[index]

    complete(ask(HOURS), temperature=0)  # stored by LiteLLM: "from the provider"
    back = model.invoke([SystemMessage(SYSTEM), HumanMessage(HOURS_2)])
    assert back.content == "from the provider" and server.count == start + 1
    assert back.response_metadata["semcache"]["tier"] == "semantic"


def test_warm_scope_for_an_llm_serves_it(lc_cache: LangChainSemCache) -> None:
    llm = FakeListLLM(responses=["from the model"], cache=lc_cache)
    scope = warm_scope(llm)
    assert scope["model"] == "fake-list" and scope["params"]["llm_type"] == "fake-list"
    lc_cache.core.store_many([{"prompt": "Name a prime number.", "response": "Seven.", **scope}])
    assert llm.invoke("Name a prime number.") == "Seven."
    assert llm.invoke("Tell me a prime number.") == "Seven."
    assert llm.invoke("Name an even number.") == "from the model"


class Ends(BaseCallbackHandler):
    """Records the runs a call reports: chat model starts and the results they end with."""

    def __init__(self) -> None:
        self.starts = 0
        self.results: list[LLMResult] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.starts += 1

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        self.results.append(response)

    def semcache(self) -> list[dict[str, Any]]:
        return [
            result.generations[0][0].message.response_metadata["semcache"]  # type: ignore[attr-defined]
            for result in self.results
        ]


async def test_langchain_hits_report_to_callbacks(
    server: FakeLLM, lc_cache: LangChainSemCache
) -> None:
    model = chat(server, lc_cache, temperature=0)
    model.invoke(RESET)
    ends = Ends()
    hit = model.invoke(FORGOT, config={"callbacks": [ends]})
    assert ends.starts == 1 and ends.semcache() == [hit.response_metadata["semcache"]]
    assert hit.response_metadata["semcache"]["tier"] == "semantic"

    # the cached() wrapper reports its hits the same way, streamed or not
    wrapped = cached(chat(server, None, temperature=0), cache=lc_cache)
    start = server.count
    ends = Ends()
    chunks = list(wrapped.stream(FORGOT, config={"callbacks": [ends]}))
    achunks = [c async for c in wrapped.astream(FORGOT, config={"callbacks": [ends]})]
    wrapped.invoke(RESET, config={"callbacks": [ends]})
    await wrapped.ainvoke(RESET, config={"callbacks": [ends]})
    assert server.count == start and len(chunks) == len(achunks) > 1
    assert ends.starts == 4
    assert [info["tier"] for info in ends.semcache()] == ["semantic", "semantic", "exact", "exact"]
    assert chunks[-1].response_metadata["semcache"]["tier"] == "semantic"


# -- store_many records ----------------------------------------------------------------------


def test_store_many_takes_plain_records_and_validates_them_first(core: CacheCore) -> None:
    bad = [{"prompt": RESET, "response": "ok", "model": "m"}, {"prompt": HOURS, "model": "m"}]
    with pytest.raises(ConfigurationError):
        core.store_many(bad)
    assert core.lookup(ask(RESET, None), "m") is None  # nothing half-written
    for record in (
        {"prompt": "p", "response": {"content": 3}, "model": "m"},
        {"prompt": "p", "response": {"semcache_answer": 2, "content": "x"}, "model": "m"},
        {"prompt": "p", "response": "x", "model": "m", "params": [1]},
        {"prompt": "p", "response": "x", "model": "m", "ttl": -1},
        {"prompt": "p", "response": "x", "model": " "},
        {"prompt": "p", "system": "s", "messages": ask("q"), "response": "x", "model": "m"},
    ):
        with pytest.raises(ConfigurationError):
            core.store_many([record])
    assert core.store_many([{"prompt": RESET, "response": {"raw": 1}, "model": "m"}]) == 1
    assert core.lookup(ask(RESET, None), "m").response == {"raw": 1}  # type: ignore[union-attr]


# -- delete -------------------------------------------------------------------------------------


async def test_core_delete_by_entry_id(core: CacheCore) -> None:
    core.store(ask(RESET), "A", "m")
    hit = core.lookup(ask(FORGOT), "m")
    assert hit is not None
    assert core.delete(hit.entry_id) is True
    assert core.lookup(ask(FORGOT), "m") is None and core.lookup(ask(RESET), "m") is None
    assert core.delete(hit.entry_id) is False
    await core.astore(ask(RESET), "B", "m")
    hit = await core.alookup(ask(RESET), "m")
    assert hit is not None and await core.adelete(hit.entry_id) is True
    assert await core.alookup(ask(RESET), "m") is None
    for bad in ("", "not-an-id", "A" * 32, "0" * 31, "*"):
        with pytest.raises(ConfigurationError):
            core.delete(bad)


async def test_adapters_delete_what_they_served(
    semcache: SemCache, lc_cache: LangChainSemCache, server: FakeLLM
) -> None:
    complete(ask(RESET))
    served = complete(ask(FORGOT))
    entry = info(served)["entry_id"]  # type: ignore[index]
    assert semcache.delete(entry) is True
    assert complete(ask(FORGOT)).choices[0].message.content == "from the provider"
    await acomplete(ask(HOURS))
    hit = await acomplete(ask(HOURS))
    assert await semcache.adelete(info(hit)["entry_id"]) is True  # type: ignore[index]

    model = chat(server, lc_cache, temperature=0)
    model.invoke(RESET)
    entry = model.invoke(FORGOT).response_metadata["semcache"]["entry_id"]
    assert lc_cache.delete(entry) is True and lc_cache.delete(entry) is False
    start = server.count
    model.invoke(FORGOT)
    assert server.count == start + 1
    entry = (await model.ainvoke(FORGOT)).response_metadata["semcache"]["entry_id"]
    assert await lc_cache.adelete(entry) is True


def test_cli_delete(core: CacheCore, target: list[str]) -> None:
    entry = core.store(ask(RESET), "A", "m")
    assert entry is not None
    done = semcache_cli("delete", entry, *target)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deleted entry {entry}"
    assert core.lookup(ask(RESET), "m") is None
    done = semcache_cli("delete", entry, *target)
    assert done.returncode == 1 and done.stdout.strip() == f"no entry {entry}"
    done = semcache_cli("delete", "nope", *target)
    assert done.returncode == 1
    assert "entry id" in done.stderr and len(done.stderr.strip().splitlines()) == 1
