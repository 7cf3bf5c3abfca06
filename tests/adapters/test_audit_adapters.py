"""Audit mode and shadow mode through the adapters: real LiteLLM and LangChain (ChatOpenAI),
real Redis and model, and the counting fake OpenAI server (``_fake_llm``) scripted to
answer a paraphrase differently, so a disagreement is recorded."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

import pytest
import redis
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402

from semcache_plugins import CacheCore  # noqa: E402
from semcache_plugins._cache._audit_run import read_audit  # noqa: E402
from semcache_plugins._cli._fake_llm import FakeLLM, echo_answer  # noqa: E402
from semcache_plugins._precision._audit import AuditSampler  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache, cached  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

MODEL = "openai/gpt-4o-mini"
QUESTION = "How do I reset my online banking password?"
PARAPHRASE = "How can I reset the password for my online banking?"
ANSWER = "Open Settings, choose Security, then Reset password and follow the emailed link."
WRONG = "Your new card will arrive within five working days after we approve the order."
AGREEING = "Go to Settings, pick Security, press Reset password and follow the link we email."


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    server = FakeLLM(delay=0, answer=echo_answer).start()
    server.answers[QUESTION] = ANSWER
    yield server
    server.stop()


@pytest.fixture
def make_core(make_core: Callable[..., CacheCore]) -> Callable[..., CacheCore]:
    """conftest's ``make_core`` with a longer deadline and socket timeout: audited calls go
    to the provider on worker threads beside the lookups."""
    return partial(make_core, lookup_timeout=10.0, socket_timeout=5.0)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    """Background audits finish on their own time: wait (generously) for their result."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def audits(core: CacheCore) -> tuple[int, int]:
    stats = core.stats()
    return int(stats["audited"]), int(stats["audit_disagreements"])  # type: ignore[call-overload]


# -- LiteLLM ---------------------------------------------------------------------------------


@pytest.fixture
def litellm_cache() -> Iterator[Callable[[CacheCore], SemCache]]:
    previous = litellm.cache

    def install(core: CacheCore) -> SemCache:
        cache = SemCache(core=core)
        litellm.cache = cache
        return cache

    yield install
    litellm.cache = previous


def complete(fake: FakeLLM, text: str) -> Any:
    return litellm.completion(
        model=MODEL,
        messages=[{"role": "user", "content": text}],
        api_base=fake.api_base,
        api_key="x",
        temperature=0,
    )


def served_entry(response: Any) -> str | None:
    info = (getattr(response, "_hidden_params", None) or {}).get("semcache")
    return None if info is None else str(info["entry_id"])


@pytest.mark.parametrize(
    ("fresh", "disagreements"), [(WRONG, 1), (AGREEING, 0)], ids=["disagree", "agree"]
)
def test_litellm_audit_serves_the_hit_and_checks_it_in_the_background(
    fake: FakeLLM,
    make_core: Any,
    litellm_cache: Any,
    redis_client: redis.Redis,
    fresh: str,
    disagreements: int,
) -> None:
    core = make_core(audit_rate=1.0, audit_demote_after=1)
    litellm_cache(core)
    fake.answers[PARAPHRASE] = fresh
    assert complete(fake, QUESTION).choices[0].message.content == ANSWER
    hit = complete(fake, PARAPHRASE)
    assert hit.choices[0].message.content == ANSWER  # served from the cache at once
    entry = served_entry(hit)
    assert entry is not None
    wait_for(lambda: audits(core)[0] == 1, "the audit")
    assert audits(core) == (1, disagreements)
    assert fake.count == 2  # the question, then the audit's repeat of the paraphrase
    counts, log = read_audit(redis_client, core.layout.name)
    assert counts["served"] == 1 and counts["audited"] == 1
    assert [(r.entry_id, r.query, r.fresh) for r in log] == (
        [(entry, PARAPHRASE, WRONG)] if disagreements else []
    )
    # the audit call neither read nor wrote the cache: the paraphrase has no entry of its own
    again = complete(fake, PARAPHRASE)
    if disagreements:  # demoted after one disagreement: the provider answers now
        assert again.choices[0].message.content == WRONG and served_entry(again) is None
    else:
        assert served_entry(again) == entry


def test_litellm_audits_the_sampled_share_of_semantic_hits(
    fake: FakeLLM, make_core: Any, litellm_cache: Any
) -> None:
    rate, seed, hits = 0.3, 11, 20
    sampler = AuditSampler(rate, random.Random(seed))  # the core's, replayed
    expected = sum(sampler() for _ in range(hits))
    assert 0 < expected < hits
    core = make_core(audit_rate=rate, audit_seed=seed, audit_demote_after=1000)
    litellm_cache(core)
    fake.answers[PARAPHRASE] = WRONG
    complete(fake, QUESTION)
    assert complete(fake, QUESTION) is not None  # an exact hit: never audited
    for _ in range(hits):
        assert served_entry(complete(fake, PARAPHRASE)) is not None
    assert core.drain_audits(120)
    assert audits(core) == (expected, expected)
    assert fake.count == 1 + expected


def test_litellm_without_audit_rate_makes_no_extra_calls(
    fake: FakeLLM, make_core: Any, litellm_cache: Any
) -> None:
    core = make_core()
    litellm_cache(core)
    fake.answers[PARAPHRASE] = WRONG
    complete(fake, QUESTION)
    for _ in range(3):
        assert served_entry(complete(fake, PARAPHRASE)) is not None
    assert core.drain_audits(30)
    assert fake.count == 1 and audits(core) == (0, 0)


def test_litellm_a_failing_audit_call_never_fails_the_hit(
    make_core: Any, litellm_cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    core = make_core(audit_rate=1.0)
    litellm_cache(core)

    def call(text: str, mock: Any) -> Any:
        messages = [{"role": "user", "content": text}]
        return litellm.completion(model=MODEL, messages=messages, mock_response=mock)

    assert call(QUESTION, ANSWER).choices[0].message.content == ANSWER
    # LiteLLM's mock raises this for the audit's repeat; the user's call is a hit, never sent
    hit = call(PARAPHRASE, litellm.ServiceUnavailableError("down", "openai", MODEL))
    assert hit.choices[0].message.content == ANSWER and served_entry(hit) is not None
    assert core.drain_audits(120)
    assert audits(core) == (0, 0)  # the audit is lost, nothing else
    assert "audit call for entry" in caplog.text


async def test_litellm_async_audit_runs_as_a_task(
    fake: FakeLLM, make_core: Any, litellm_cache: Any
) -> None:
    core = make_core(audit_rate=1.0)
    litellm_cache(core)
    fake.answers[PARAPHRASE] = WRONG
    options = {"model": MODEL, "api_base": fake.api_base, "api_key": "x", "temperature": 0}
    await litellm.acompletion(messages=[{"role": "user", "content": QUESTION}], **options)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while core.stats()["stores"] != 1:  # LiteLLM stores async results in a task
        assert loop.time() < deadline
        await asyncio.sleep(0.02)
    hit = await litellm.acompletion(messages=[{"role": "user", "content": PARAPHRASE}], **options)
    assert hit.choices[0].message.content == ANSWER and served_entry(hit) is not None
    while audits(core)[0] < 1:
        assert loop.time() < deadline, "the audit never finished"
        await asyncio.sleep(0.02)
    assert audits(core) == (1, 1) and fake.count == 2


def test_litellm_streamed_hit_is_audited_with_a_plain_call(
    fake: FakeLLM, make_core: Any, litellm_cache: Any
) -> None:
    core = make_core(audit_rate=1.0)
    litellm_cache(core)
    fake.answers[PARAPHRASE] = WRONG
    complete(fake, QUESTION)
    chunks = litellm.completion(
        model=MODEL,
        messages=[{"role": "user", "content": PARAPHRASE}],
        api_base=fake.api_base,
        api_key="x",
        temperature=0,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == ANSWER  # the cached answer, replayed as a stream
    assert core.drain_audits(60)
    assert audits(core) == (1, 1) and fake.count == 2
    assert not fake.requests[-1].get("stream")


def test_litellm_router_audit_repeats_the_deployment_call(
    fake: FakeLLM, make_core: Any, litellm_cache: Any
) -> None:
    core = make_core(audit_rate=1.0)
    litellm_cache(core)
    fake.answers[PARAPHRASE] = WRONG
    deployment = {"model": "openai/deployment-a", "api_base": fake.api_base, "api_key": "k"}
    router = litellm.Router(
        model_list=[{"model_name": "support", "litellm_params": deployment}],
        cache_responses=True,
    )
    router.completion(model="support", messages=[{"role": "user", "content": QUESTION}])
    hit = router.completion(model="support", messages=[{"role": "user", "content": PARAPHRASE}])
    assert hit.choices[0].message.content == ANSWER and served_entry(hit) is not None
    assert core.drain_audits(60)
    assert audits(core) == (1, 1) and fake.count == 2
    assert fake.requests[-1]["model"] == "deployment-a"  # the deployment's own call


def test_litellm_shadow_mode_serves_nothing_and_still_stores(
    fake: FakeLLM, make_core: Any, litellm_cache: Any, redis_client: redis.Redis
) -> None:
    core = make_core(serve=False)
    litellm_cache(core)
    fake.answers[PARAPHRASE] = WRONG
    for _ in range(2):
        response = complete(fake, QUESTION)
        assert served_entry(response) is None and response.choices[0].message.content == ANSWER
    paraphrased = complete(fake, PARAPHRASE)
    assert paraphrased.choices[0].message.content == WRONG and served_entry(paraphrased) is None
    assert fake.count == 3  # every call reached the provider
    assert core.drain_audits(30)
    stats = core.stats()
    assert stats["shadow_hits_exact"] == 1 and stats["shadow_hits_semantic"] == 1
    assert stats["hits_exact"] == stats["hits_semantic"] == 0
    assert stats["stores"] == 3
    assert audits(core) == (1, 1)
    _, log = read_audit(redis_client, core.layout.name)
    assert len(log) == 1 and log[0].shadow and log[0].fresh == WRONG


# -- LangChain -------------------------------------------------------------------------------


def chat_model(fake: FakeLLM, cache: LangChainSemCache) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        temperature=0,
        api_key=SecretStr("sk-test"),
        base_url=fake.api_base,
        max_retries=0,
        cache=cache,
    )


@pytest.fixture
async def langchain_cache(make_core: Any) -> AsyncIterator[Callable[..., LangChainSemCache]]:
    def make(**options: Any) -> LangChainSemCache:
        return LangChainSemCache(core=make_core(**options))

    yield make


@pytest.mark.parametrize(
    ("fresh", "disagreements"), [(WRONG, 1), (AGREEING, 0)], ids=["disagree", "agree"]
)
def test_langchain_audit_withholds_the_hit_and_judges_the_answer(
    fake: FakeLLM,
    langchain_cache: Any,
    redis_client: redis.Redis,
    fresh: str,
    disagreements: int,
) -> None:
    cache = langchain_cache(audit_rate=1.0, audit_demote_after=1)
    model = chat_model(fake, cache)
    fake.answers[PARAPHRASE] = fresh
    assert model.invoke([HumanMessage(QUESTION)]).content == ANSWER
    assert model.invoke([HumanMessage(PARAPHRASE)]).content == fresh  # the model answered
    assert fake.count == 2
    wait_for(lambda: audits(cache.core)[0] == 1, "the audit")
    assert audits(cache.core) == (1, disagreements)
    counts, log = read_audit(redis_client, cache.core.layout.name)
    assert [(r.query, r.matched_prompt, r.fresh) for r in log] == (
        [(PARAPHRASE, QUESTION, WRONG)] if disagreements else []
    )
    assert "served" not in counts  # the sampled hit was withheld, not served


async def test_langchain_async_audit(fake: FakeLLM, langchain_cache: Any) -> None:
    cache = langchain_cache(audit_rate=1.0)
    model = chat_model(fake, cache)
    fake.answers[PARAPHRASE] = WRONG
    assert (await model.ainvoke([HumanMessage(QUESTION)])).content == ANSWER
    assert (await model.ainvoke([HumanMessage(PARAPHRASE)])).content == WRONG
    assert await asyncio.to_thread(cache.core.drain_audits, 30)
    assert audits(cache.core) == (1, 1)


def test_langchain_shadow_mode_serves_nothing(fake: FakeLLM, langchain_cache: Any) -> None:
    cache = langchain_cache(serve=False)
    model = chat_model(fake, cache)
    fake.answers[PARAPHRASE] = WRONG
    for _ in range(2):
        assert model.invoke([HumanMessage(QUESTION)]).content == ANSWER
    assert model.invoke([HumanMessage(PARAPHRASE)]).content == WRONG
    assert fake.count == 3
    assert cache.core.drain_audits(30)
    stats = cache.stats()
    assert (stats["shadow_hits_exact"], stats["shadow_hits_semantic"]) == (1, 1)
    assert audits(cache.core) == (1, 1)


def test_langchain_cached_stream_is_audited(fake: FakeLLM, langchain_cache: Any) -> None:
    cache = langchain_cache(audit_rate=1.0)
    streaming = cached(chat_model(fake, cache))
    fake.answers[PARAPHRASE] = WRONG
    assert "".join(str(c.content) for c in streaming.stream([HumanMessage(QUESTION)])) == ANSWER
    streamed = "".join(str(c.content) for c in streaming.stream([HumanMessage(PARAPHRASE)]))
    assert streamed == WRONG and fake.count == 2  # withheld: the model streamed its answer
    assert cache.core.drain_audits(30)
    assert audits(cache.core) == (1, 1)


def test_langchain_serving_control_hits_without_audit(fake: FakeLLM, langchain_cache: Any) -> None:
    cache = langchain_cache()
    model = chat_model(fake, cache)
    fake.answers[PARAPHRASE] = WRONG
    assert model.invoke([HumanMessage(QUESTION)]).content == ANSWER
    assert model.invoke([HumanMessage(PARAPHRASE)]).content == ANSWER  # a semantic hit
    assert fake.count == 1 and audits(cache.core) == (0, 0)
