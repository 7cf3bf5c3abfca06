"""One lifecycle: async clients close with their event loops, a closed cache stays closed (and
the adapters then call the provider), and ``semcache demo`` leaves nothing in Redis."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402

from semcache_plugins import CacheClosedError, CacheCore, Embedder  # noqa: E402
from semcache_plugins._cache._l1 import LISTENER_NAME  # noqa: E402
from semcache_plugins._cache._warm import WarmItem  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

PARAMS = {"temperature": 0}
QUESTION = "How do I reset my password?"
LOOPS = 20


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def connections(client: redis.Redis) -> int:
    """Client connections, without L1 listeners (one per process and prefix, not per loop)."""
    return sum(1 for info in client.client_list() if info.get("name") != LISTENER_NAME)


def settle(client: redis.Redis, at_most: int) -> int:
    """The connection count once Redis has seen closed sockets go (polls a few seconds)."""
    deadline = time.monotonic() + 10
    while (count := connections(client)) > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


@pytest.fixture
def new_core(redis_url: str, index_prefix: str, embedder: Embedder) -> Callable[[], CacheCore]:
    def make() -> CacheCore:
        return CacheCore(
            redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=10.0
        )

    return make


# -- async clients close with their loops ----------------------------------------------------


def run_closing_loops(core: CacheCore, how: str, i: int) -> None:
    lookup = core.alookup(ask(f"Where is parcel number {i}?"), "m", PARAMS)
    if how == "asyncio.run":
        assert asyncio.run(lookup) is None
        return
    loop = asyncio.new_event_loop()  # closed without shutting down its async generators
    try:
        assert loop.run_until_complete(lookup) is None
    finally:
        loop.close()


@pytest.mark.parametrize("how", ["asyncio.run", "loop.close() alone"])
def test_async_clients_close_with_their_loops(
    new_core: Callable[[], CacheCore], redis_client: redis.Redis, how: str
) -> None:
    core = new_core()
    core.store(ask(QUESTION), "A", model="m", params=PARAMS)
    before = connections(redis_client)
    for i in range(LOOPS):
        run_closing_loops(core, how, i)
    # a loop closed without asyncio.run's clean-up is swept at the next loop's first use
    assert asyncio.run(core.alookup(ask(QUESTION), "m", PARAMS)) is not None  # control: a hit
    assert settle(redis_client, before) <= before  # main: one connection left per loop
    assert core.internals.async_backend.loops() == 0
    assert core.internals.work.batcher.loops() <= 1  # at most the last (closed) loop, until swept
    core.close()


def test_loops_of_many_threads_close_their_clients(
    new_core: Callable[[], CacheCore], redis_client: redis.Redis
) -> None:
    core = new_core()
    core.store(ask(QUESTION), "A", model="m", params=PARAMS)
    before = connections(redis_client)

    def worker(n: int) -> None:
        for i in range(4):
            how = "asyncio.run" if (n + i) % 2 else "loop.close() alone"
            run_closing_loops(core, how, 10 * n + i)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(worker, range(6)))
    assert asyncio.run(core.alookup(ask(QUESTION), "m", PARAMS)) is not None
    assert settle(redis_client, before) <= before
    assert core.internals.async_backend.loops() == 0
    core.close()


async def test_aclose_closes_the_running_loops_client(
    new_core: Callable[[], CacheCore], redis_client: redis.Redis
) -> None:
    before = connections(redis_client)
    core = new_core()
    assert await core.alookup(ask(QUESTION), "m", PARAMS) is None
    assert connections(redis_client) > before
    await core.aclose()
    assert settle(redis_client, before) <= before and core.internals.async_backend.loops() == 0


async def test_sync_close_inside_a_running_loop_closes_its_client(
    new_core: Callable[[], CacheCore], redis_client: redis.Redis
) -> None:
    before = connections(redis_client)
    core = new_core()
    assert await core.alookup(ask(QUESTION), "m", PARAMS) is None
    core.close()  # e.g. ``with CacheCore() as core:`` around async calls
    await asyncio.sleep(0)  # the client closes on its loop
    assert await asyncio.to_thread(settle, redis_client, before) <= before


# -- a closed cache stays closed -----------------------------------------------------------------

SYNC_CALLS: dict[str, Callable[[CacheCore], Any]] = {
    "lookup": lambda core: core.lookup(ask(QUESTION), "m", PARAMS),
    "lookup of an uncacheable request": lambda core: core.lookup([], "m", PARAMS),
    "store": lambda core: core.store(ask(QUESTION), "B", model="m", params=PARAMS),
    "store_many": lambda core: core.store_many([WarmItem(ask("Hours?"), "9-5", "m", PARAMS)]),
    "invalidate": lambda core: core.invalidate(model="m"),
    "clear": lambda core: core.clear(),
}
ASYNC_CALLS: dict[str, Callable[[CacheCore], Awaitable[Any]]] = {
    "alookup": lambda core: core.alookup(ask(QUESTION), "m", PARAMS),
    "astore": lambda core: core.astore(ask(QUESTION), "B", model="m", params=PARAMS),
    "ainvalidate": lambda core: core.ainvalidate(model="m"),
    "aclear": lambda core: core.aclear(),
}


async def closed(core: CacheCore, how: str) -> CacheCore:
    core.store(ask(QUESTION), "A", model="m", params=PARAMS)  # connected on both sides
    assert await core.alookup(ask(QUESTION), "m", PARAMS) is not None
    if how == "close":
        core.close()
    elif how == "aclose":
        await core.aclose()
    else:
        with core:
            pass
    return core


@pytest.mark.parametrize("how", ["close", "aclose", "with"])
@pytest.mark.parametrize("call", sorted(SYNC_CALLS) + sorted(ASYNC_CALLS))
async def test_every_call_on_a_closed_cache_raises(
    new_core: Callable[[], CacheCore], redis_client: redis.Redis, how: str, call: str
) -> None:
    core = await closed(new_core(), how)
    before = connections(redis_client)  # may still count the closing ones: never more
    with pytest.raises(CacheClosedError, match="closed"):
        if call in SYNC_CALLS:
            await asyncio.to_thread(SYNC_CALLS[call], core)
        else:
            await ASYNC_CALLS[call](core)
    assert connections(redis_client) <= before  # main: silently reconnected
    core.close()  # closing again is harmless
    await core.aclose()


async def test_adapters_fail_open_on_a_closed_cache(
    new_core: Callable[[], CacheCore], caplog: pytest.LogCaptureFixture
) -> None:
    core = await closed(new_core(), "close")
    previous = litellm.cache
    litellm.cache = SemCache(core=core)
    try:
        messages = ask(QUESTION)  # stored before the close: only the provider may answer now
        options: dict[str, Any] = {"model": "openai/gpt-4o-mini", "mock_response": "fresh"}
        for response in (
            litellm.completion(messages=messages, **options),
            await litellm.acompletion(messages=messages, **options),
        ):
            assert response.choices[0].message.content == "fresh"
            assert not response._hidden_params.get("cache_hit")
    finally:
        litellm.cache = previous
    cache = LangChainSemCache(core=core)
    model = GenericFakeChatModel(messages=iter([AIMessage("one"), AIMessage("two")]), cache=cache)
    assert model.invoke([HumanMessage(QUESTION)]).content == "one"
    assert (await model.ainvoke([HumanMessage(QUESTION)])).content == "two"
    assert "CacheClosedError" in caplog.text or "closed" in caplog.text


# -- semcache demo cleans up after itself ------------------------------------------------------


def demo_leftovers(client: redis.Redis) -> tuple[set[str], int]:
    names = {
        raw.decode() if isinstance(raw, bytes) else str(raw)
        for raw in client.execute_command("FT._LIST")
    }
    keys = sum(1 for _ in client.scan_iter(match="semcache-demo-*", count=1000))
    return {name for name in names if name.startswith("semcache-demo-")}, keys


def test_demo_with_a_redis_url_drops_its_index_and_keys(
    redis_url: str, redis_client: redis.Redis
) -> None:
    indexes, keys = demo_leftovers(redis_client)
    done = subprocess.run(
        [sys.executable, "-m", "semcache_plugins", "demo", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"TOTAL 9 calls: 4 hits", done.stdout)  # control: the demo cached
    assert demo_leftovers(redis_client) == (indexes, keys)  # main: its index stayed behind
