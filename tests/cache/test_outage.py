"""Redis dies or hangs in the middle of a run: no user call fails, each pays a bounded delay.

Each test runs its own embedded Redis on a fixed port, puts it under a ``SemCache`` (LiteLLM)
or a ``LangChainSemCache``, then SIGKILLs or SIGSTOPs it between two calls of a run. Every call
must return the provider's answer (the counting ``_fake_llm`` server), no call may cost more
than ``BUDGET`` seconds on top of a plain provider call, and once ``breaker_failures`` Redis
calls have failed the cache is skipped without touching Redis (one probe per cooldown). After a
restart on the same port (empty: persistence is off) or SIGCONT, the same cache object serves
hits again.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402
from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from litellm_reads import is_hit
from semcache_plugins import CacheCore, Embedder  # noqa: E402
from semcache_plugins._cli._fake_llm import FakeLLM, echo_answer  # noqa: E402
from semcache_plugins.embedded import EmbeddedRedis  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

MODEL = "openai/gpt-4o-mini"
SYSTEM = "You are a helpful support agent."
QUESTIONS = ("How do I reset my password?", "I forgot my password, how can I reset it?")
FRESH = "What are your opening hours on Sundays?"
COOLDOWN = 0.5  # breaker_cooldown for these tests (default 5 s)
SOCKET_TIMEOUT = 0.5  # the default, spelled out: a hung Redis costs this per round trip
BUDGET = 1.5  # most seconds a call may add to a plain provider call while Redis is out
FAST = SOCKET_TIMEOUT / 2  # "well under the socket timeout": what a skipped cache costs
RUN, FAULT_AT = 20, 6  # calls per run; the fault hits between calls FAULT_AT - 1 and FAULT_AT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def provider_answer(text: str) -> str:
    """The suffix the fake server gives every answer to ``text``."""
    return f"You asked: {text}"


class OwnRedis:
    """Embedded Redis servers on one fixed port; every process is resumed and stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self._tmp = tmp_path
        self._servers: list[EmbeddedRedis] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def _pid(self) -> int:
        pid = self._servers[-1].pid
        assert pid is not None
        return pid

    def start(self) -> None:
        """Start a server on the same port, with an empty data dir."""
        server = EmbeddedRedis(port=self.port, data_dir=self._tmp / f"redis-{len(self._servers)}")
        self._servers.append(server)
        server.start()

    def kill(self) -> None:
        server = self._servers[-1]
        os.kill(self._pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while server.is_running():  # reaps the child; the port is free once it is gone
            assert time.monotonic() < deadline, "redis-server survived SIGKILL"
            time.sleep(0.01)

    def pause(self) -> None:
        os.kill(self._pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._pid, signal.SIGCONT)

    def close(self) -> None:
        for server in self._servers:
            if server.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server.pid, signal.SIGCONT)
            server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    servers = OwnRedis(tmp_path)
    servers.start()
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    server = FakeLLM(delay=0, answer=echo_answer).start()
    yield server
    server.stop()


@pytest.fixture
def semcache(own_redis: OwnRedis, embedder: Embedder) -> Iterator[SemCache]:
    previous = litellm.cache
    cache = SemCache(
        redis_url=own_redis.url,
        index_prefix="outage",
        embedder=embedder,
        breaker_cooldown=COOLDOWN,
        socket_timeout=SOCKET_TIMEOUT,
        lookup_timeout=5.0,  # model work on a busy machine must not turn hits into misses
        # the outage is the subject: with the L1 on, a hung (not dead) Redis's entries are
        # still served for up to the L1's lease (tests/cache/test_l1_cache.py covers that)
        l1_cache=False,
    )
    litellm.cache = cache
    try:
        yield cache
    finally:
        litellm.cache = previous
        cache.close()


def chat(fake: FakeLLM, text: str, **kwargs: Any) -> Any:
    options = {"model": MODEL, "api_base": fake.api_base, "api_key": "x", "temperature": 0}
    return litellm.completion(messages=ask(text), **{**options, **kwargs})


async def achat(fake: FakeLLM, text: str, **kwargs: Any) -> Any:
    options = {"model": MODEL, "api_base": fake.api_base, "api_key": "x", "temperature": 0}
    return await litellm.acompletion(messages=ask(text), **{**options, **kwargs})


def answer(response: Any) -> str:
    return str(response.choices[0].message.content)


def errors(core: CacheCore) -> int:
    return int(core.stats()["errors"])  # type: ignore[call-overload]


def stores(core: CacheCore) -> int:
    return int(core.stats()["stores"])  # type: ignore[call-overload]


SKIP = {"no-cache": True, "no-store": True}


def baseline(call: Callable[[], Any]) -> float:
    """Median seconds of a plain provider call (the cache bypassed)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def abaseline(call: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Outage:
    """Per-call timings and Redis failures of the calls made while Redis is out."""

    def __init__(self, core: CacheCore, base: float) -> None:
        self.core, self.base = core, base
        self.added: list[float] = []
        self.started = time.perf_counter()
        self.errors_before = errors(core)

    def record(self, seconds: float) -> None:
        self.added.append(seconds - self.base)

    def check(self) -> None:
        """Bounded delay per call, and the breaker skips Redis once it has opened."""
        elapsed = time.perf_counter() - self.started
        failures = self.core.settings.breaker_failures
        probes = math.ceil(elapsed / COOLDOWN) + 1  # at most one probe per cooldown
        attempts = errors(self.core) - self.errors_before
        slow = [a for a in self.added if a >= FAST]
        detail = f"added={[round(a, 3) for a in self.added]} attempts={attempts}"
        assert max(self.added) < BUDGET, detail
        assert 1 <= attempts <= failures + probes, detail  # Redis was tried, then skipped
        assert len(slow) <= failures + probes, detail
        assert statistics.median(self.added) < FAST, detail  # most calls skip the cache


def breaker_deadline() -> float:
    return time.monotonic() + 10 * COOLDOWN + 5


def wait_until_closed(core: CacheCore) -> None:
    """Wait out the breaker cooldown (polls; at most a few cooldowns)."""
    deadline = breaker_deadline()
    while core.stats()["breaker_open"]:
        assert time.monotonic() < deadline, "the circuit breaker never closed"
        time.sleep(0.05)


async def await_closed(core: CacheCore) -> None:
    deadline = breaker_deadline()
    while core.stats()["breaker_open"]:
        assert time.monotonic() < deadline, "the circuit breaker never closed"
        await asyncio.sleep(0.05)


# -- LiteLLM: completion (sync) ------------------------------------------------------------------


def sync_run(fake: FakeLLM, cache: SemCache, fault: Callable[[], None]) -> None:
    """Cached answers until the fault, then provider answers at a bounded cost per call."""
    first = chat(fake, QUESTIONS[0])
    assert not is_hit(first) and stores(cache.core) == 1
    base = baseline(lambda: chat(fake, FRESH, cache=SKIP))
    count = fake.count
    outage: Outage | None = None
    for i in range(RUN):
        if i == FAULT_AT:
            fault()
            outage = Outage(cache.core, base)
        text = QUESTIONS[i % 2]
        started = time.perf_counter()
        response = chat(fake, text)
        seconds = time.perf_counter() - started
        assert answer(response).endswith(provider_answer(QUESTIONS[0]) if i < FAULT_AT else text)
        assert is_hit(response) is (i < FAULT_AT)
        if outage is not None:
            outage.record(seconds)
    assert fake.count == count + RUN - FAULT_AT  # every call while out reached the provider
    assert outage is not None
    outage.check()


def sync_recovers(fake: FakeLLM, cache: SemCache, *, kept: bool) -> None:
    """Without recreating the cache: a miss is stored and its repeat is a hit."""
    wait_until_closed(cache.core)
    count = fake.count
    assert is_hit(chat(fake, QUESTIONS[0])) is kept  # a restarted Redis has lost everything
    stored = stores(cache.core)
    assert not is_hit(chat(fake, FRESH)) and stores(cache.core) == stored + 1
    again = chat(fake, FRESH)
    assert is_hit(again) and answer(again).endswith(provider_answer(FRESH))
    assert fake.count == count + (1 if kept else 2)


def test_killed_redis_sync(fake: FakeLLM, own_redis: OwnRedis, semcache: SemCache) -> None:
    sync_run(fake, semcache, own_redis.kill)
    own_redis.start()  # same port, empty data dir
    sync_recovers(fake, semcache, kept=False)


def test_hung_redis_sync(fake: FakeLLM, own_redis: OwnRedis, semcache: SemCache) -> None:
    try:
        sync_run(fake, semcache, own_redis.pause)
    finally:
        own_redis.resume()
    sync_recovers(fake, semcache, kept=True)


# -- LiteLLM: acompletion ------------------------------------------------------------------------


async def wait_for_stores(core: CacheCore, count: int) -> None:
    """LiteLLM writes async results in a background task: wait for them."""
    deadline = time.monotonic() + 10
    while stores(core) < count:
        assert time.monotonic() < deadline, f"only {stores(core)} of {count} stores"
        await asyncio.sleep(0.02)


async def async_run(fake: FakeLLM, cache: SemCache, fault: Callable[[], None]) -> None:
    first = await achat(fake, QUESTIONS[0])
    assert not is_hit(first)
    await wait_for_stores(cache.core, 1)
    base = await abaseline(lambda: achat(fake, FRESH, cache=SKIP))
    count = fake.count
    outage: Outage | None = None
    for i in range(RUN):
        if i == FAULT_AT:
            fault()
            outage = Outage(cache.core, base)
        text = QUESTIONS[i % 2]
        started = time.perf_counter()
        response = await achat(fake, text)
        seconds = time.perf_counter() - started
        assert answer(response).endswith(provider_answer(QUESTIONS[0]) if i < FAULT_AT else text)
        assert is_hit(response) is (i < FAULT_AT)
        if outage is not None:
            outage.record(seconds)
    assert fake.count == count + RUN - FAULT_AT
    assert outage is not None
    outage.check()


async def async_recovers(fake: FakeLLM, cache: SemCache, *, kept: bool) -> None:
    await asyncio.sleep(SOCKET_TIMEOUT)  # let background stores of the outage time out
    await await_closed(cache.core)
    count = fake.count
    assert is_hit(await achat(fake, QUESTIONS[0])) is kept
    stored = stores(cache.core)
    assert not is_hit(await achat(fake, FRESH))
    await wait_for_stores(cache.core, stored + 1)
    again = await achat(fake, FRESH)
    assert is_hit(again) and answer(again).endswith(provider_answer(FRESH))
    assert fake.count == count + (1 if kept else 2)


async def test_killed_redis_async(fake: FakeLLM, own_redis: OwnRedis, semcache: SemCache) -> None:
    try:
        await async_run(fake, semcache, own_redis.kill)
        own_redis.start()
        await async_recovers(fake, semcache, kept=False)
    finally:
        await semcache.disconnect()


async def test_hung_redis_async(fake: FakeLLM, own_redis: OwnRedis, semcache: SemCache) -> None:
    try:
        try:
            await async_run(fake, semcache, own_redis.pause)
        finally:
            own_redis.resume()
        await async_recovers(fake, semcache, kept=True)
    finally:
        await semcache.disconnect()


# -- LangChain: ChatOpenAI(cache=LangChainSemCache) ------------------------------------------------


def lc_ask(text: str) -> list[Any]:
    return [SystemMessage(SYSTEM), HumanMessage(text)]


def lc_model(fake: FakeLLM, cache: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        temperature=0,
        api_key=SecretStr("sk-test"),
        base_url=fake.api_base,
        max_retries=0,
        cache=cache,
    )


async def test_killed_redis_langchain(
    fake: FakeLLM, own_redis: OwnRedis, embedder: Embedder
) -> None:
    cache = LangChainSemCache(
        redis_url=own_redis.url,
        index_prefix="outage",
        embedder=embedder,
        breaker_cooldown=COOLDOWN,
        socket_timeout=SOCKET_TIMEOUT,
        lookup_timeout=5.0,
    )
    model, uncached = lc_model(fake, cache), lc_model(fake, False)
    calls: list[Callable[[str], Awaitable[Any]]] = [
        lambda text: asyncio.to_thread(model.invoke, lc_ask(text)),  # the sync path
        lambda text: model.ainvoke(lc_ask(text)),
    ]
    try:
        await calls[0](QUESTIONS[0])
        base = await abaseline(lambda: uncached.ainvoke(lc_ask(FRESH)))
        count = fake.count
        outage: Outage | None = None
        for i in range(RUN // 2):
            if i == FAULT_AT // 2:
                own_redis.kill()
                outage = Outage(cache.core, base)
            text = QUESTIONS[i % 2]
            started = time.perf_counter()
            message = await calls[i % 2](text)
            seconds = time.perf_counter() - started
            expected = QUESTIONS[0] if outage is None else text
            assert str(message.content).endswith(provider_answer(expected))
            if outage is not None:
                outage.record(seconds)
        assert fake.count == count + RUN // 2 - FAULT_AT // 2
        assert outage is not None
        outage.check()

        own_redis.start()
        await await_closed(cache.core)
        count = fake.count
        for _ in range(2):
            for call in calls:
                assert str((await call(FRESH)).content).endswith(provider_answer(FRESH))
        assert fake.count == count + 1  # stored once, then three hits
    finally:
        await cache.aclose()
