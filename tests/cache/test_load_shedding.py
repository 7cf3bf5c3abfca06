"""Load shedding: a lookup whose embedding cannot be done before its deadline is an instant miss."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from semcache_plugins import CacheCore, Embedder
from semcache_plugins._embedding._batcher import EmbedBatcher, LoadEstimator, Overloaded

PARAMS = {"temperature": 0}


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_estimator_learns_seconds_per_unit_and_predicts_queue_waits() -> None:
    load = LoadEstimator(weight=0.5)
    assert load.finishes_by(deadline=0.0, queued=10**6, busy_until=5.0, now=1.0)  # unmeasured
    load.record(seconds=0.4, units=4)
    assert load.per_unit == pytest.approx(0.1)
    load.record(seconds=0.3, units=1)
    assert load.per_unit == pytest.approx(0.2)  # halfway to the new sample
    assert load.finishes_by(deadline=2.0, queued=5, busy_until=0.0, now=1.0)  # 1 + 5*0.2 = 2
    assert not load.finishes_by(deadline=2.0, queued=6, busy_until=0.0, now=1.0)
    assert not load.finishes_by(deadline=2.0, queued=1, busy_until=1.9, now=1.0)  # busy first


async def test_batcher_sheds_what_the_queue_cannot_reach_in_time() -> None:
    def slow_embed(texts: Sequence[str]) -> list[np.ndarray | None]:
        time.sleep(0.02 * len(texts))  # a model that needs 20 ms per text
        return [np.ones(4, dtype=np.float32) for _ in texts]

    batcher = EmbedBatcher(slow_embed, max_batch=8)
    await batcher.embed("prime the estimator")
    started = time.perf_counter()
    deadline = started + 0.2  # room for about 10 texts

    async def one(i: int) -> str:
        try:
            await batcher.embed(f"text {i}", deadline)
        except Overloaded:
            return "shed" if time.perf_counter() - started < 0.05 else "shed late"
        return "done"

    outcomes = await asyncio.gather(*(one(i) for i in range(50)))
    assert 5 <= outcomes.count("done") <= 15, outcomes
    assert outcomes.count("shed") == 50 - outcomes.count("done")  # refused at once, not late


async def test_a_batch_that_ends_early_frees_the_model_at_once() -> None:
    delay = 0.05

    def embed(texts: Sequence[str]) -> list[np.ndarray | None]:
        time.sleep(delay * len(texts))
        return [np.ones(4, dtype=np.float32) for _ in texts]

    batcher = EmbedBatcher(embed, max_batch=8)
    await batcher.embed("prime the estimator")  # learns 50 ms per text
    delay = 0.0  # the model turns fast: the next batch ends long before its predicted 0.4 s
    await asyncio.gather(*(batcher.embed(f"text {i}") for i in range(8)))
    # idle model, nothing queued: one text (about 35 ms by the estimate) fits in 100 ms
    assert await batcher.embed("after the batch", time.perf_counter() + 0.1) is not None


async def test_a_redis_timeout_racing_the_deadline_is_a_timeout_miss(
    index_prefix: str, embedder: Embedder
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        core = CacheCore(
            redis_url=f"redis://127.0.0.1:{port}",
            index_prefix=index_prefix,
            embedder=embedder,
            lookup_timeout=0.3,
            socket_timeout=0.1,
        )

        async def stall_the_loop() -> None:
            await asyncio.sleep(0.05)
            time.sleep(0.5)  # noqa: ASYNC251 -- blocks on purpose: both timers fall due in one turn

        stall = asyncio.create_task(stall_the_loop())
        assert await core.alookup(ask("How do I reset my password?"), "m", PARAMS) is None
        await stall
        assert core.stats()["skipped_by_reason"] == {"timeout": 1}
        await core.aclose()


async def test_async_burst_beyond_the_deadline_is_shed_not_waited_out(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> None:
    core = CacheCore(
        redis_url=redis_url,
        index_prefix=index_prefix,
        embedder=embedder,
        lookup_timeout=0.25,
        socket_timeout=2.0,  # 64 connections opened at once on a busy machine: not the subject
    )
    await core.astore(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    await core.alookup(ask("What is the weather in Paris?"), "m", PARAMS)  # measures the model

    async def timed(text: str) -> float:
        started = time.perf_counter()
        assert await core.alookup(ask(text), "m", PARAMS) is None
        return time.perf_counter() - started

    waits = await asyncio.gather(*(timed(f"Where is parcel number {n}?") for n in range(400)))
    skipped = core.stats()["skipped_by_reason"]
    # part of the burst was refused up front (how much depends on the machine: the batcher test
    # above pins the arithmetic); every call came back as a miss, none raised
    assert skipped.get("overloaded", 0) > 0, skipped
    assert len(waits) == 400
    stored = await asyncio.gather(
        *(core.astore(ask(f"Where is box {n}?"), n, model="m", params=PARAMS) for n in range(400))
    )
    assert None in stored  # stores the queue could not embed in time were skipped, not queued
    # a pool with no free connection is load to shed, not a failing Redis: the breaker held
    assert core.stats()["breaker_state"] == "closed", core.stats()
    hit = await core.alookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
    assert hit is not None and hit.response == "A", core.stats()  # no lasting state
    exact = await core.alookup(ask("How do I reset my password?"), "m", PARAMS)
    assert exact is not None and exact.tier == "exact"
    await core.aclose()


def test_sync_callers_beyond_the_worker_queue_are_shed(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> None:
    core = CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=0.02
    )
    core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    embedder.load()
    core.lookup(ask("What is the weather in Paris?"), "m", PARAMS)  # measures the model
    time.sleep(0.2)  # let that measurement land even if the lookup itself ran out of time
    assert core.internals.work.load.per_unit > 0
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(
            pool.map(lambda n: core.lookup(ask(f"Where is parcel {n}?"), "m", PARAMS), range(128))
        )
    assert results == [None] * 128
    assert core.stats()["skipped_by_reason"].get("overloaded", 0) > 0
    hit = core.lookup(ask("How do I reset my password?"), "m", PARAMS)
    assert hit is not None and hit.tier == "exact"
    core.close()
