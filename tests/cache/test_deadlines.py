"""Deadlines hold with Redis included, and the circuit breaker has a real half-open state.

A ``DelayProxy`` (tests/tcp_proxy.py) sits in front of the test Redis: it delays every reply
(a slow Redis) or swallows every request (a hung one). Nothing in the code under test sleeps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import pytest

from semcache_plugins import BackendError, CacheCore, Embedder
from semcache_plugins._cache._stats import CircuitBreaker
from tcp_proxy import DelayProxy

PARAMS = {"temperature": 0}
STORED = "How do I reset my password?"
PARAPHRASES = (
    "I forgot my password, how do I reset it?",
    "How can I reset my password?",
    "What do I do to reset my password?",
    "How do I change my forgotten password?",
)
FAILURES = 3
CALLERS = 16


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def skips(core: CacheCore, reason: str) -> int:
    by_reason: Any = core.stats()["skipped_by_reason"]
    return int(by_reason.get(reason, 0))


def count(core: CacheCore, name: str) -> int:
    return int(core.stats()[name])  # type: ignore[call-overload]


# -- the breaker's state machine (pure) -------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("failures", [1, 2, 5])
def test_breaker_opens_then_lets_exactly_one_probe_through(failures: int) -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures, cooldown=5.0, clock=clock)
    for _ in range(failures - 1):
        breaker.failure()
        assert breaker.state == "closed" and breaker.acquire() == 0
    breaker.failure()
    assert breaker.state == "open" and breaker.is_open and breaker.acquire() is None
    clock.now += 5.0
    assert breaker.state == "half_open" and not breaker.is_open  # looking takes no probe
    probe = breaker.acquire()
    assert probe  # the one trial call
    assert [breaker.acquire() for _ in range(CALLERS)] == [None] * CALLERS
    assert breaker.is_open  # a call made now would be refused
    breaker.failure()  # the probe failed: open for another cooldown
    assert breaker.state == "open" and breaker.acquire() is None
    clock.now += 4.9
    assert breaker.acquire() is None
    clock.now += 0.1
    second = breaker.acquire()
    assert second and second != probe
    breaker.success()  # the probe worked: closed, everyone goes
    assert breaker.state == "closed" and all(breaker.acquire() == 0 for _ in range(CALLERS))


def test_a_probe_that_never_reports_frees_its_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, cooldown=1.0, clock=clock, probe_lease=30.0)
    breaker.failure()
    clock.now += 1.0
    probe = breaker.acquire()
    assert probe and breaker.acquire() is None
    breaker.release(0)  # a closed-state permit releases nothing
    assert breaker.acquire() is None
    breaker.release(probe)  # its caller gave up before touching Redis
    again = breaker.acquire()
    assert again and breaker.acquire() is None
    breaker.release(probe)  # a stale permit does not free the new probe
    assert breaker.acquire() is None
    clock.now += 30.0  # the lease ran out: the probe is given up on
    assert breaker.acquire()


# -- a slow Redis -----------------------------------------------------------------------------


@pytest.fixture
def proxy(redis_url: str) -> Iterator[DelayProxy]:
    url = urlparse(redis_url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.password:
        pytest.skip("the delaying proxy needs a local Redis without a password")
    with DelayProxy(url.port or 6379) as forwarder:
        yield forwarder


@pytest.fixture
def seeded(redis_url: str, index_prefix: str, embedder: Embedder) -> str:
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as core:
        core.store(ask(STORED), "A", model="m", params=PARAMS)
    return index_prefix


def slow_core(proxy: DelayProxy, prefix: str, embedder: Embedder, **options: Any) -> CacheCore:
    settings: dict[str, Any] = {
        "lookup_timeout": 1.0,
        "socket_timeout": 5.0,  # a slow reply is well within it: only the deadline can stop it
        "breaker_failures": FAILURES,
        "breaker_cooldown": 60.0,
        **options,
    }
    return CacheCore(redis_url=proxy.url, index_prefix=prefix, embedder=embedder, **settings)


def test_sync_lookup_deadline_covers_redis_and_slow_replies_open_the_breaker(
    proxy: DelayProxy, seeded: str, embedder: Embedder
) -> None:
    core = slow_core(proxy, seeded, embedder)
    control = core.lookup(ask(PARAPHRASES[0]), "m", PARAMS)
    assert control is not None and control.response == "A"  # served while Redis is quick
    proxy.delay = 0.4  # each round trip now costs 0.4 s: a semantic lookup needs three
    timeout = core.settings.lookup_timeout
    for i, text in enumerate(PARAPHRASES[1 : FAILURES + 1]):
        assert core.stats()["breaker_open"] is False
        started = time.perf_counter()
        assert core.lookup(ask(text), "m", PARAMS) is None  # a miss, not an exception
        assert time.perf_counter() - started < timeout + 0.5  # generous: main took 1.2-2.0 s
        assert skips(core, "timeout") == i + 1
    assert core.stats()["breaker_open"] is True  # main: never opened
    proxy.mark()
    assert core.lookup(ask(STORED), "m", PARAMS) is None
    assert skips(core, "breaker_open") == 1 and proxy.senders() == 0  # Redis not touched
    assert core.store(ask("Opening hours?"), "9-5", model="m", params=PARAMS) is None
    with pytest.raises(BackendError, match="breaker"):  # never "0 removed" when nothing was
        core.invalidate(model="m")
    assert skips(core, "breaker_open") == 3 and proxy.senders() == 0
    core.close()


def test_a_deadline_too_tight_for_redis_is_a_miss_not_a_breaker_failure(
    proxy: DelayProxy, seeded: str, embedder: Embedder
) -> None:
    core = slow_core(proxy, seeded, embedder, lookup_timeout=0.03)
    proxy.delay = 0.1  # slower than the whole budget, yet no sign of a sick Redis
    for text in (STORED, *PARAPHRASES):
        assert core.lookup(ask(text), "m", PARAMS) is None
    assert skips(core, "timeout") == 1 + len(PARAPHRASES)
    assert core.stats()["breaker_state"] == "closed"
    proxy.delay = 0.0
    relaxed = slow_core(proxy, seeded, embedder)
    hit = relaxed.lookup(ask(STORED), "m", PARAMS)
    assert hit is not None and hit.tier == "exact"  # control
    core.close()
    relaxed.close()


async def test_async_lookup_slow_replies_open_the_breaker(
    proxy: DelayProxy, seeded: str, embedder: Embedder
) -> None:
    core = slow_core(proxy, seeded, embedder)
    control = await core.alookup(ask(PARAPHRASES[0]), "m", PARAMS)
    assert control is not None and control.response == "A"
    proxy.delay = 0.4
    for i, text in enumerate(PARAPHRASES[1 : FAILURES + 1]):
        assert core.stats()["breaker_open"] is False
        assert await core.alookup(ask(text), "m", PARAMS) is None
        assert skips(core, "timeout") == i + 1
    assert core.stats()["breaker_open"] is True  # main: never opened
    proxy.mark()
    assert await core.alookup(ask(STORED), "m", PARAMS) is None
    assert skips(core, "breaker_open") == 1 and proxy.senders() == 0
    await core.aclose()


# -- a hung Redis after the cooldown: one probe, the rest refused ------------------------------


def hung_core(proxy: DelayProxy, prefix: str, embedder: Embedder) -> CacheCore:
    # the deadline (0.3 s) comes before the socket timeout: a hung reply is a timeout miss
    return slow_core(proxy, prefix, embedder, lookup_timeout=0.3, breaker_cooldown=2.0)


def open_on_hung_redis(core: CacheCore, proxy: DelayProxy) -> None:
    proxy.hang()
    for text in PARAPHRASES[:FAILURES]:
        assert core.lookup(ask(text), "m", PARAMS) is None
    assert core.stats()["breaker_state"] == "open"


def wait_half_open(core: CacheCore) -> None:
    deadline = time.monotonic() + 30
    while core.stats()["breaker_state"] != "half_open":
        assert time.monotonic() < deadline, "the breaker never went half-open"
        time.sleep(0.02)


def check_one_probe(core: CacheCore, proxy: DelayProxy, before: dict[str, int]) -> None:
    assert proxy.senders() <= 1  # at most one caller waited on Redis
    refused = skips(core, "breaker_open") - before["breaker_open"]
    probed = skips(core, "timeout") - before["timeout"]
    assert refused >= CALLERS - 1 and refused + probed == CALLERS
    assert core.stats()["breaker_state"] == "open"  # the probe failed: open again


def test_half_open_lets_one_sync_probe_through(
    proxy: DelayProxy, seeded: str, embedder: Embedder
) -> None:
    core = hung_core(proxy, seeded, embedder)
    assert core.lookup(ask(STORED), "m", PARAMS) is not None  # control: served before the hang
    open_on_hung_redis(core, proxy)
    wait_half_open(core)
    proxy.mark()
    before = {reason: skips(core, reason) for reason in ("breaker_open", "timeout")}
    start = threading.Barrier(CALLERS)

    def call(i: int) -> Any:
        start.wait()
        return core.lookup(ask(STORED), "m", PARAMS)

    with ThreadPoolExecutor(CALLERS) as pool:
        assert list(pool.map(call, range(CALLERS))) == [None] * CALLERS
    check_one_probe(core, proxy, before)
    core.close()


async def test_half_open_lets_one_async_probe_through(
    proxy: DelayProxy, seeded: str, embedder: Embedder
) -> None:
    core = hung_core(proxy, seeded, embedder)
    assert await core.alookup(ask(STORED), "m", PARAMS) is not None
    await asyncio.to_thread(open_on_hung_redis, core, proxy)
    await asyncio.to_thread(wait_half_open, core)
    proxy.mark()
    before = {reason: skips(core, reason) for reason in ("breaker_open", "timeout")}
    results = await asyncio.gather(
        *(core.alookup(ask(STORED), "m", PARAMS) for _ in range(CALLERS))
    )
    assert results == [None] * CALLERS
    check_one_probe(core, proxy, before)
    await core.aclose()
