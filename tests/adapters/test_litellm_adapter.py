"""``SemCache`` end to end: real LiteLLM, real Redis with Search, the real ONNX model.

Every call goes through ``litellm.completion`` / ``acompletion`` / ``Router`` to a local
OpenAI-compatible server (``_fake_llm``) that counts requests: a cache hit is a request
the server never saw.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402

from litellm_reads import content, is_hit
from semcache_plugins import ConfigurationError, Embedder  # noqa: E402
from semcache_plugins._cli._fake_llm import EMBEDDINGS_PATH, FakeLLM  # noqa: E402
from semcache_plugins.embedded import EmbeddedRedis  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

MODEL = "openai/gpt-4o-mini"
QUESTION = "How do I reset my password?"
PARAPHRASE = "I forgot my password, how can I reset it?"
SYSTEM = {"role": "system", "content": "You are a helpful support agent."}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_help_center",
            "description": "Search the help center.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]
# LiteLLM 1.106 imports the optional ``mcp`` package for any call with tools; without it,
# this internal flag skips that (MCP-only) hook. Not needed once ``mcp`` is installed.
TOOL_KWARGS: dict[str, Any] = (
    {"tools": TOOLS}
    if importlib.util.find_spec("mcp")
    else {"tools": TOOLS, "_skip_mcp_handler": True}
)

MakeCache = Callable[..., SemCache]


def ask(text: str, system: dict[str, str] | None = SYSTEM) -> list[dict[str, Any]]:
    return [*([system] if system else []), {"role": "user", "content": text}]


def semcache_info(response: Any) -> dict[str, Any] | None:
    return response._hidden_params.get("semcache")


@pytest.fixture
def make_cache(make_litellm_cache: MakeCache) -> MakeCache:
    return make_litellm_cache


@pytest.fixture
def cache(make_cache: MakeCache) -> SemCache:
    return make_cache()


def chat(fake: FakeLLM, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    options = {"model": MODEL, "api_base": fake.api_base, "api_key": "x", "temperature": 0}
    return litellm.completion(messages=messages, **{**options, **kwargs})


async def achat(fake: FakeLLM, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    options = {"model": MODEL, "api_base": fake.api_base, "api_key": "x", "temperature": 0}
    return await litellm.acompletion(messages=messages, **{**options, **kwargs})


async def wait_for_stores(cache: SemCache, count: int, seconds: float = 10.0) -> None:
    """LiteLLM writes async results to the cache in a background task: wait for them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while int(cache.stats()["stores"]) < count:  # type: ignore[call-overload]
        assert loop.time() < deadline, f"only {cache.stats()['stores']} of {count} stores"
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- completion ---------------------------------------------------------------------------------


def test_completion_serves_repeats_and_paraphrases(cache: SemCache, fake: FakeLLM) -> None:
    first = chat(fake, ask(QUESTION))
    assert fake.count == 1 and not is_hit(first)
    assert content(first).endswith(f"You asked: {QUESTION}")

    again = chat(fake, ask(QUESTION), user="someone-else", timeout=30)  # ignored params
    para = chat(fake, ask(PARAPHRASE))
    assert fake.count == 1
    assert content(again) == content(para) == content(first)
    assert is_hit(again) and is_hit(para)
    assert semcache_info(again) == {
        "tier": "exact",
        "similarity": 1.0,
        "entry_id": semcache_info(para)["entry_id"],
    }  # type: ignore[index]
    info = semcache_info(para)
    assert info is not None and info["tier"] == "semantic"
    assert cache.core.settings.similarity_threshold <= info["similarity"] < 1.0
    assert para.usage.prompt_tokens == first.usage.prompt_tokens
    assert para.usage.completion_tokens == first.usage.completion_tokens
    assert para.id == first.id


def test_scope_changes_reach_the_provider(cache: SemCache, fake: FakeLLM) -> None:
    first = chat(fake, ask(QUESTION))
    changed = [
        chat(fake, ask("What are your opening hours?")),
        chat(fake, ask(QUESTION, {"role": "system", "content": "You are a pirate."})),
        chat(fake, ask(QUESTION), model="openai/gpt-4o"),
        chat(fake, ask(QUESTION), temperature=0.7),
    ]
    assert fake.count == 5
    assert not any(is_hit(r) for r in changed)
    assert len({content(r) for r in [first, *changed]}) == 5
    assert "t=0.7" in content(changed[3]) and "[gpt-4o " in content(changed[2])


def test_entries_are_plain_json(cache: SemCache, fake: FakeLLM, redis_client: redis.Redis) -> None:
    first = chat(fake, ask(QUESTION))
    entry_id = semcache_info(chat(fake, ask(QUESTION)))["entry_id"]  # type: ignore[index]
    raw = redis_client.hget(cache.core.layout.key(entry_id), "payload")
    assert isinstance(raw, bytes)
    stored = json.loads(raw)["response"]
    assert stored["choices"][0]["message"]["content"] == content(first)
    assert stored["usage"]["total_tokens"] == first.usage.total_tokens
    assert "_hidden_params" not in stored


# -- acompletion ----------------------------------------------------------------------------------


async def test_acompletion_32_concurrent(cache: SemCache, fake: FakeLLM) -> None:
    first = await achat(fake, ask(QUESTION))
    await wait_for_stores(cache, 1)
    texts = [QUESTION if i % 2 else PARAPHRASE for i in range(32)]
    hits = await asyncio.gather(*(achat(fake, ask(text)) for text in texts))
    assert fake.count == 1
    assert all(content(r) == content(first) and is_hit(r) for r in hits)
    assert {semcache_info(r)["tier"] for r in hits} == {"exact", "semantic"}  # type: ignore[index]

    misses = await asyncio.gather(
        achat(fake, ask("What are your opening hours?")),
        achat(fake, ask(QUESTION, {"role": "system", "content": "You are a pirate."})),
        achat(fake, ask(QUESTION), model="openai/gpt-4o"),
        achat(fake, ask(QUESTION), temperature=0.7),
    )
    assert fake.count == 5
    assert not any(is_hit(r) for r in misses)


# -- streaming ------------------------------------------------------------------------------------


def test_stream_hit_yields_the_cached_answer_as_chunks(cache: SemCache, fake: FakeLLM) -> None:
    first = chat(fake, ask(QUESTION))
    stream = chat(fake, ask(PARAPHRASE), stream=True)
    chunks = list(stream)
    assert fake.count == 1
    assert len(chunks) > 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == content(first)
    assert stream._hidden_params.get("cache_hit") is True


def test_streamed_miss_is_stored_and_serves_plain_calls(cache: SemCache, fake: FakeLLM) -> None:
    streamed = "".join(
        c.choices[0].delta.content or "" for c in chat(fake, ask(QUESTION), stream=True)
    )
    assert fake.count == 1 and streamed.endswith(f"You asked: {QUESTION}")
    served = chat(fake, ask(PARAPHRASE))
    assert fake.count == 1 and is_hit(served)
    assert content(served) == streamed


async def test_async_streams_hit_and_fill(cache: SemCache, fake: FakeLLM) -> None:
    stream = await achat(fake, ask(QUESTION), stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream])
    await wait_for_stores(cache, 1)
    served = await achat(fake, ask(PARAPHRASE))
    replay = await achat(fake, ask(PARAPHRASE), stream=True)
    replayed = [c.choices[0].delta.content or "" async for c in replay]
    assert fake.count == 1
    assert content(served) == streamed == "".join(replayed) and len(replayed) > 1


# -- Router ---------------------------------------------------------------------------------------


def router(fake: FakeLLM) -> litellm.Router:
    """Two deployments of one group; their own settings (key, tpm) must not split the scope."""
    deployments = [
        {
            "model_name": "support",
            "litellm_params": {
                "model": f"openai/deployment-{name}",
                "api_base": fake.api_base,
                "api_key": f"key-{name}",
                "rpm": 1000,
                "tpm": tpm,
            },
        }
        for name, tpm in (("a", 100_000), ("b", 200_000))
    ]
    return litellm.Router(model_list=deployments, cache_responses=True)


async def test_router_deployments_share_entries(cache: SemCache, fake: FakeLLM) -> None:
    r = router(fake)
    assert litellm.cache is cache  # the Router keeps an installed cache
    first = r.completion(model="support", messages=ask(QUESTION), temperature=0)
    assert fake.count == 1
    served = [
        r.completion(model="support", messages=ask(PARAPHRASE), temperature=0) for _ in range(16)
    ]
    served += await asyncio.gather(
        *(
            r.acompletion(model="support", messages=ask(text), temperature=0)
            for text in (QUESTION, PARAPHRASE) * 8
        )
    )
    assert fake.count == 1
    assert all(is_hit(s) and content(s) == content(first) for s in served)
    # The model group, not the deployment, scopes the entry: both deployments served it.
    assert {s._hidden_params.get("model_id") for s in served} == {
        d["model_info"]["id"] for d in r.model_list
    }
    assert cache.core.invalidate(model="support") == 1


# -- per-request controls -------------------------------------------------------------------------


def test_no_cache_skips_the_lookup(cache: SemCache, fake: FakeLLM) -> None:
    chat(fake, ask(QUESTION))
    fresh = chat(fake, ask(QUESTION), cache={"no-cache": True})
    assert fake.count == 2 and not is_hit(fresh)
    assert is_hit(chat(fake, ask(QUESTION)))


def test_no_store_skips_the_store(cache: SemCache, fake: FakeLLM) -> None:
    chat(fake, ask(QUESTION), cache={"no-store": True})
    chat(fake, ask(QUESTION), cache={"no-store": True})
    assert fake.count == 2 and cache.stats()["stores"] == 0
    chat(fake, ask(QUESTION))
    assert is_hit(chat(fake, ask(QUESTION))) and fake.count == 3


def test_ttl_sets_the_entry_expiry(
    cache: SemCache, fake: FakeLLM, redis_client: redis.Redis
) -> None:
    chat(fake, ask(QUESTION), cache={"ttl": 30})
    chat(fake, ask("What are your opening hours?"))
    ids = [
        semcache_info(chat(fake, ask(q)))["entry_id"]  # type: ignore[index]
        for q in (QUESTION, "What are your opening hours?")
    ]
    assert fake.count == 2
    assert 0 < redis_client.ttl(cache.core.layout.key(ids[0])) <= 30
    assert redis_client.ttl(cache.core.layout.key(ids[1])) == -1  # no default ttl


async def test_s_maxage_only_serves_young_entries(cache: SemCache, fake: FakeLLM) -> None:
    chat(fake, ask(QUESTION))
    cache.core.clock = lambda: time.time() + 1.2  # 1.2 s later
    assert is_hit(chat(fake, ask(PARAPHRASE), cache={"s-maxage": 60}))
    assert fake.count == 1
    too_old = await achat(fake, ask(PARAPHRASE), cache={"s-maxage": 1})
    assert not is_hit(too_old) and fake.count == 2


def test_namespace_separates_entries(cache: SemCache, fake: FakeLLM) -> None:
    tenant_a = {"namespace": "tenant-a"}
    chat(fake, ask(QUESTION), cache=tenant_a)
    assert is_hit(chat(fake, ask(PARAPHRASE), cache=tenant_a))
    assert fake.count == 1
    assert not is_hit(chat(fake, ask(QUESTION)))
    assert not is_hit(chat(fake, ask(QUESTION), cache={"namespace": "tenant-b"}))
    assert fake.count == 3
    assert cache.core.invalidate(namespace="tenant-a") == 1


def test_bad_namespace_fails_open(
    cache: SemCache, fake: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    chat(fake, ask(QUESTION))
    with caplog.at_level(logging.WARNING, logger="semcache_plugins"):
        response = chat(fake, ask(QUESTION), cache={"namespace": "no spaces, please"})
    assert fake.count == 2 and not is_hit(response)
    assert "namespace" in caplog.text and QUESTION not in caplog.text


def test_default_off_mode_needs_use_cache(make_cache: MakeCache, fake: FakeLLM) -> None:
    make_cache(mode="default_off")
    chat(fake, ask(QUESTION))
    chat(fake, ask(QUESTION))
    assert fake.count == 2
    chat(fake, ask(QUESTION), cache={"use-cache": True})
    assert is_hit(chat(fake, ask(PARAPHRASE), cache={"use-cache": True})) and fake.count == 3


# -- failing open ---------------------------------------------------------------------------------


async def test_unreachable_redis_costs_no_completion(
    make_cache: MakeCache, fake: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    make_cache(redis_url=f"redis://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.DEBUG, logger="semcache_plugins"):
        answers = [content(chat(fake, ask(QUESTION))) for _ in range(2)]
        answers.append(
            "".join(
                c.choices[0].delta.content or "" for c in chat(fake, ask(QUESTION), stream=True)
            )
        )
        answers.append(content(await achat(fake, ask(QUESTION))))
        await asyncio.sleep(0.2)  # let the background store fail too
    assert fake.count == 4 and len(set(answers)) == 1
    ours = [r for r in caplog.records if r.name == "semcache_plugins"]
    assert [r.levelno for r in ours].count(logging.WARNING) == 1
    assert "entry " in caplog.text
    assert QUESTION not in caplog.text and "password" not in caplog.text


def test_redis_stopping_mid_use_costs_no_completion(
    make_cache: MakeCache, fake: FakeLLM, tmp_path: Path
) -> None:
    with EmbeddedRedis(data_dir=tmp_path) as server:
        make_cache(redis_url=server.url)
        chat(fake, ask(QUESTION))
        assert is_hit(chat(fake, ask(PARAPHRASE)))
    assert not server.is_running()
    after = [chat(fake, ask(PARAPHRASE)), chat(fake, ask(QUESTION), stream=True)]
    assert fake.count == 3
    assert content(after[0]).endswith(PARAPHRASE)


def test_broken_embedding_model_fails_open(
    make_cache: MakeCache, fake: FakeLLM, tmp_path: Path
) -> None:
    make_cache(embedder=Embedder(model_path=tmp_path / "no-model-here"))
    first = chat(fake, ask(QUESTION))
    second = chat(fake, ask(QUESTION))
    assert fake.count == 2 and content(first) == content(second)


# -- tool calls -----------------------------------------------------------------------------------


def tool_call(response: Any) -> tuple[str, str, str]:
    call = response.choices[0].message.tool_calls[0]
    return call.id, call.function.name, call.function.arguments


def test_tool_calls_are_exact_tier_only_by_default(cache: SemCache, fake: FakeLLM) -> None:
    first = chat(fake, ask(QUESTION), **TOOL_KWARGS)
    repeat = chat(fake, ask(QUESTION), **TOOL_KWARGS)
    assert fake.count == 1 and is_hit(repeat)
    assert tool_call(repeat) == tool_call(first)
    assert json.loads(tool_call(repeat)[2]) == {"query": QUESTION}
    assert repeat.choices[0].finish_reason == "tool_calls"
    para = chat(fake, ask(PARAPHRASE), **TOOL_KWARGS)
    assert fake.count == 2 and not is_hit(para)
    assert json.loads(tool_call(para)[2]) == {"query": PARAPHRASE}


def test_semantic_tool_calls_opt_in(make_cache: MakeCache, fake: FakeLLM) -> None:
    make_cache(semantic_tool_calls=True)
    first = chat(fake, ask(QUESTION), **TOOL_KWARGS)
    para = chat(fake, ask(PARAPHRASE), **TOOL_KWARGS)
    assert fake.count == 1 and is_hit(para)
    assert semcache_info(para)["tier"] == "semantic"  # type: ignore[index]
    assert tool_call(para) == tool_call(first)


def test_tool_result_turn_is_looked_up(cache: SemCache, fake: FakeLLM) -> None:
    call = tool_call(chat(fake, ask(QUESTION), **TOOL_KWARGS))
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call[0], "type": "function", "function": {"name": call[1], "arguments": call[2]}}
        ],
    }

    def with_result(result: str) -> list[dict[str, Any]]:
        return [
            *ask(QUESTION),
            assistant,
            {"role": "tool", "tool_call_id": call[0], "content": result},
        ]

    first = chat(fake, with_result("Open Settings, then Security."), **TOOL_KWARGS)
    repeat = chat(fake, with_result("Open Settings, then Security."), **TOOL_KWARGS)
    assert fake.count == 2 and is_hit(repeat) and content(repeat) == content(first)
    assert semcache_info(repeat)["tier"] == "exact"  # type: ignore[index]
    other = chat(fake, with_result("Open Settings, then Privacy."), **TOOL_KWARGS)
    assert fake.count == 3 and "Privacy" in content(other)


# -- other call types -----------------------------------------------------------------------------


def test_embeddings_pass_through(cache: SemCache, fake: FakeLLM) -> None:
    options = {
        "model": "openai/text-embedding-3-small",
        "api_base": fake.api_base,
        "api_key": "x",
        "input": ["How do I reset my password?"],
    }
    first = litellm.embedding(**options)
    second = litellm.embedding(**options)
    assert fake.calls(EMBEDDINGS_PATH) == 2
    assert first.data[0]["embedding"] == second.data[0]["embedding"]
    assert not second._hidden_params.get("cache_hit")
    assert cache.stats()["lookups"] == 0 and cache.stats()["stores"] == 0


def test_only_completion_call_types(redis_url: str, embedder: Embedder) -> None:
    with pytest.raises(ConfigurationError, match="embedding"):
        SemCache(redis_url=redis_url, embedder=embedder, supported_call_types=["embedding"])


def test_text_completion_is_cached_apart_from_chat(cache: SemCache, fake: FakeLLM) -> None:
    options = {"model": MODEL, "mock_response": "Use the reset link.", "temperature": 0}
    first = litellm.text_completion(prompt=QUESTION, **options)
    second = litellm.text_completion(prompt=PARAPHRASE, **options)
    assert not first._hidden_params.get("cache_hit")
    assert second._hidden_params.get("cache_hit") is True
    assert second.choices[0].text == "Use the reset link."
    assert cache.stats()["hits_semantic"] == 1
    # LiteLLM cannot replay a cached text completion as a stream: streamed ones are misses.
    stream = litellm.text_completion(prompt=QUESTION, stream=True, **options)
    assert "".join(c.choices[0].text or "" for c in stream) == "Use the reset link."
    assert not is_hit(chat(fake, [{"role": "user", "content": QUESTION}]))
    assert fake.count == 1
    # Chat and text entries have scopes of their own: the chat answer did not replace this one.
    again = litellm.text_completion(prompt=QUESTION, **options)
    assert again._hidden_params.get("cache_hit") is True


def test_readme_snippet(redis_url: str, index_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's lines, as written; the settings come from the environment."""
    monkeypatch.setattr(litellm, "cache", litellm.cache)  # restores litellm.cache afterwards
    monkeypatch.setenv("SEMCACHE_REDIS_URL", redis_url)
    monkeypatch.setenv("SEMCACHE_INDEX_PREFIX", index_prefix)
    messages = [{"role": "user", "content": "How do I reset my password?"}]
    litellm.cache = SemCache()
    litellm.completion(model="openai/gpt-4o-mini", messages=messages, mock_response="Use it.")
    # No provider and no API key from here on: only a cache hit can answer.
    response = litellm.completion(model="openai/gpt-4o-mini", messages=messages)
    print(response._hidden_params.get("semcache"))  # a hit: {tier, similarity, entry_id}
    litellm.cache.close()
    assert response._hidden_params["semcache"]["tier"] == "exact"
    assert response.choices[0].message.content == "Use it."
