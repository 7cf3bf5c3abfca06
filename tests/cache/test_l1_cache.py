"""The in-process L1 (``_l1``): exact repeats served in process, never what Redis no longer holds.

Changes made by another client (a second cache with its L1 off, or a plain Redis client) reach
the L1 as tracking pushes, a little later: those tests poll the lookup with a bounded loop until
the change shows, then check it stays. Where Redis itself says the key is gone *before* a lookup
starts (a TTL run out), the lookup must miss at once. No timed assertions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from semcache_plugins import CacheCore, Embedder
from semcache_plugins._cache._l1 import LISTENER_NAME, L1Cache
from semcache_plugins.embedded import EmbeddedRedis

MODEL = "l1-model"
_POLL = 10.0  # seconds a change from another client may take to show (bounded, not asserted)


def ask(text: str, system: str = "Be brief.") -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def l1_of(core: CacheCore) -> L1Cache:
    l1 = core.internals.sync_backend.l1
    assert l1 is not None
    return l1


def held(core: CacheCore, messages: list[dict[str, str]]) -> dict[str, Any]:
    """Look ``messages`` up until the L1 holds its entry (the listener starts with the first
    read); returns the hit's response. Fails if that never happens within the poll bound."""
    stop = time.monotonic() + _POLL
    while time.monotonic() < stop:
        hit = core.lookup(messages, MODEL)
        assert hit is not None
        if l1_of(core).get((core.layout.key(hit.entry_id),)) is not None:
            return dict(hit.response)
        time.sleep(0.01)
    raise AssertionError("the L1 never held the entry")


def until(check: Callable[[], bool]) -> None:
    stop = time.monotonic() + _POLL
    while time.monotonic() < stop:
        if check():
            return
        time.sleep(0.005)
    raise AssertionError("the change from another client never showed")


def test_l1_serves_exact_repeats(cores: tuple[CacheCore, CacheCore]) -> None:
    """Control: the L1 holds and serves entries (a cache that holds nothing fails here), and
    the other core has none."""
    ours, other = cores
    for i in range(5):
        other.store(ask(f"question {i}"), {"answer": i}, MODEL)
    for i in range(5):
        assert held(ours, ask(f"question {i}")) == {"answer": i}
        hit = ours.lookup(ask(f"question {i}"), MODEL)
        assert hit is not None and hit.response == {"answer": i} and hit.tier == "exact"
    assert other.internals.sync_backend.l1 is None


def _delete(client: redis.Redis, core: CacheCore, entry_id: str) -> None:
    client.delete(core.layout.key(entry_id))


def _expire(client: redis.Redis, core: CacheCore, entry_id: str) -> None:
    client.pexpire(core.layout.key(entry_id), 1)


def _unlink(client: redis.Redis, core: CacheCore, entry_id: str) -> None:
    client.unlink(core.layout.key(entry_id))


def _rename_away(client: redis.Redis, core: CacheCore, entry_id: str) -> None:
    client.rename(core.layout.key(entry_id), f"elsewhere:{entry_id}")  # out of the index
    client.expire(f"elsewhere:{entry_id}", 60)


@pytest.mark.parametrize("change", [_delete, _expire, _unlink, _rename_away])
def test_removed_by_a_plain_client_is_never_served_again(
    cores: tuple[CacheCore, CacheCore], redis_client: redis.Redis, change: Any
) -> None:
    ours, _ = cores
    ours.store(ask("what is the boiling point of water"), {"answer": "100 C"}, MODEL)
    ours.store(ask("control question"), {"answer": "control"}, MODEL)
    held(ours, ask("control question"))
    assert held(ours, ask("what is the boiling point of water")) == {"answer": "100 C"}
    hit = ours.lookup(ask("what is the boiling point of water"), MODEL)
    assert hit is not None
    change(redis_client, ours, hit.entry_id)
    until(lambda: ours.lookup(ask("what is the boiling point of water"), MODEL) is None)
    for _ in range(20):
        assert ours.lookup(ask("what is the boiling point of water"), MODEL) is None
    assert held(ours, ask("control question")) == {"answer": "control"}  # others stay


def _invalidate_model(other: CacheCore) -> None:
    other.invalidate(model=MODEL)


def _invalidate_system(other: CacheCore) -> None:
    other.invalidate(system_prompt="Be brief.")


def _invalidate_namespace(other: CacheCore) -> None:
    other.invalidate(namespace="default")


def _overwrite(other: CacheCore) -> None:
    other.store(ask("capital of France"), {"answer": "changed"}, MODEL)


def _delete_by_id(other: CacheCore) -> None:
    hit = other.lookup(ask("capital of France"), MODEL)
    assert hit is not None
    assert other.delete(hit.entry_id)


@pytest.mark.parametrize(
    "change",
    [_invalidate_model, _invalidate_system, _invalidate_namespace, _overwrite, _delete_by_id],
)
def test_changed_by_another_cache_is_never_served_stale(
    cores: tuple[CacheCore, CacheCore], change: Callable[[CacheCore], None]
) -> None:
    ours, other = cores
    ours.store(ask("capital of France"), {"answer": "Paris"}, MODEL)
    ours.store(ask("control", system="Other system."), {"answer": "kept"}, "other-model")
    assert held(ours, ask("capital of France")) == {"answer": "Paris"}
    change(other)

    def changed() -> bool:
        hit = ours.lookup(ask("capital of France"), MODEL)
        return hit is None or hit.response != {"answer": "Paris"}

    until(changed)
    for _ in range(20):
        assert changed()
    if change is _overwrite:
        assert held(ours, ask("capital of France")) == {"answer": "changed"}
    if change is not _invalidate_namespace:  # the control is in no filter but the namespace
        hit = ours.lookup(ask("control", system="Other system."), "other-model")
        assert hit is not None and hit.response == {"answer": "kept"}


@pytest.mark.parametrize("how", ["invalidate", "delete", "store"])
def test_own_changes_show_at_once(cores: tuple[CacheCore, CacheCore], how: str) -> None:
    """Read-your-writes: this process's own changes evict without waiting for the push."""
    ours, _ = cores
    ours.store(ask("speed of light"), {"answer": "c"}, MODEL)
    assert held(ours, ask("speed of light")) == {"answer": "c"}
    if how == "invalidate":
        ours.invalidate(model=MODEL)
    elif how == "delete":
        hit = ours.lookup(ask("speed of light"), MODEL)
        assert hit is not None and ours.delete(hit.entry_id)
    else:
        ours.store(ask("speed of light"), {"answer": "299792458 m/s"}, MODEL)
    hit = ours.lookup(ask("speed of light"), MODEL)
    expected = None if how != "store" else {"answer": "299792458 m/s"}
    assert (hit.response if hit is not None else None) == expected


def test_a_run_out_ttl_is_never_served(
    cores: tuple[CacheCore, CacheCore], redis_client: redis.Redis
) -> None:
    """Redis says the key is gone before the lookup starts -> the lookup misses (whether or
    not Redis has got round to deleting it and sending the push)."""
    ours, _ = cores
    ours.store(ask("short lived"), {"answer": "soon gone"}, MODEL, ttl=1)
    assert held(ours, ask("short lived")) == {"answer": "soon gone"}
    hit = ours.lookup(ask("short lived"), MODEL)
    assert hit is not None
    key = ours.layout.key(hit.entry_id)
    gone = 0
    stop = time.monotonic() + _POLL
    while gone < 20 and time.monotonic() < stop:
        ttl_before = redis_client.pttl(key)
        hit = ours.lookup(ask("short lived"), MODEL)
        if ttl_before == -2:
            assert hit is None
            gone += 1
    assert gone == 20


def test_async_lookups_share_the_l1_and_see_changes(
    cores: tuple[CacheCore, CacheCore], redis_client: redis.Redis
) -> None:
    ours, other = cores
    ours.store(ask("async question"), {"answer": "one"}, MODEL)
    assert held(ours, ask("async question")) == {"answer": "one"}

    async def scenario() -> None:
        hit = await ours.alookup(ask("async question"), MODEL)
        assert hit is not None and hit.response == {"answer": "one"}
        other.store(ask("async question"), {"answer": "two"}, MODEL)
        stop = time.monotonic() + _POLL
        while time.monotonic() < stop:
            hit = await ours.alookup(ask("async question"), MODEL)
            assert hit is not None
            if hit.response == {"answer": "two"}:
                break
            await asyncio.sleep(0.005)
        assert hit is not None and hit.response == {"answer": "two"}
        await ours.ainvalidate(model=MODEL)  # own change: at once
        assert await ours.alookup(ask("async question"), MODEL) is None

    asyncio.run(scenario())


def test_listener_loss_turns_the_l1_off(
    cores: tuple[CacheCore, CacheCore], redis_client: redis.Redis
) -> None:
    """Changes made while the listener is gone (no push reaches it) are never served: the L1
    empties and stops serving until tracking is on again, then holds entries again."""
    ours, _ = cores
    ours.store(ask("listener question"), {"answer": "first"}, MODEL)
    assert held(ours, ask("listener question")) == {"answer": "first"}
    hit = ours.lookup(ask("listener question"), MODEL)
    assert hit is not None
    killed = 0
    for client in redis_client.client_list():
        if client.get("name") == LISTENER_NAME:
            killed += int(redis_client.client_kill_filter(_id=client["id"]))
    assert killed >= 1
    redis_client.hset(ours.layout.key(hit.entry_id), "payload", b"{}")  # no push for ours

    def fresh() -> bool:
        found = ours.lookup(ask("listener question"), MODEL)
        return found is None or found.response != {"answer": "first"}

    until(fresh)
    for _ in range(20):
        assert fresh()
    ours.store(ask("listener question"), {"answer": "second"}, MODEL)
    assert held(ours, ask("listener question")) == {"answer": "second"}  # back on


def test_flush_from_another_client_is_seen(tmp_path: Any, embedder: Embedder) -> None:
    """FLUSHALL (its own server: it would wipe a shared one) empties the L1."""
    with EmbeddedRedis(data_dir=tmp_path) as server:
        prefix = f"t{uuid.uuid4().hex[:8]}"
        ours = CacheCore(redis_url=server.url, index_prefix=prefix, embedder=embedder)
        try:
            ours.store(ask("flush me"), {"answer": "here"}, MODEL)
            assert held(ours, ask("flush me")) == {"answer": "here"}
            with redis.Redis.from_url(server.url) as client:
                client.flushall()
            until(lambda: ours.lookup(ask("flush me"), MODEL) is None)
            for _ in range(20):
                assert ours.lookup(ask("flush me"), MODEL) is None
        finally:
            ours.close()


def test_l1_cache_off_and_clients_passed_in_hold_nothing(
    redis_url: str, index_prefix: str, embedder: Embedder, redis_client: redis.Redis
) -> None:
    for core in (
        CacheCore(
            redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, l1_cache=False
        ),
        CacheCore(redis_client=redis_client, index_prefix=index_prefix, embedder=embedder),
    ):
        try:
            core.store(ask("no l1"), {"answer": 1}, MODEL)
            hit = core.lookup(ask("no l1"), MODEL)
            assert hit is not None and hit.response == {"answer": 1}
            assert core.internals.sync_backend.l1 is None
        finally:
            core.close()


def test_a_hung_redis_stops_the_l1(tmp_path: Any, embedder: Embedder) -> None:
    """A Redis that stops answering (SIGSTOP: no push can come, no PONG) stops the L1 within
    its lease: the lookups go to Redis and become misses (timeouts), not L1 hits."""
    import os
    import signal

    with EmbeddedRedis(data_dir=tmp_path) as server:
        core = CacheCore(
            redis_url=server.url,
            index_prefix=f"t{uuid.uuid4().hex[:8]}",
            embedder=embedder,
            lookup_timeout=0.2,  # a reply cut by the deadline is a miss (socket_timeout 0.5)
            breaker_failures=1000,
        )
        try:
            core.store(ask("hang on"), {"answer": "held"}, MODEL)
            assert held(core, ask("hang on")) == {"answer": "held"}
            assert server.pid is not None
            os.kill(server.pid, signal.SIGSTOP)
            try:
                until(lambda: core.lookup(ask("hang on"), MODEL) is None)
                assert not l1_of(core).get((core.layout.key(_entry_id(core)),))
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert held(core, ask("hang on")) == {"answer": "held"}  # back once it answers
        finally:
            core.close()


def _entry_id(core: CacheCore) -> str:
    plan = core.internals.plan(ask("hang on"), MODEL, None, None)
    assert plan is not None
    return plan.entry_id


def test_a_forked_child_starts_with_an_empty_l1(cores: tuple[CacheCore, CacheCore]) -> None:
    """A child has no listener (no pushes would reach it): nothing held is served there."""
    import os

    ours, _ = cores
    ours.store(ask("fork question"), {"answer": "parent"}, MODEL)
    assert held(ours, ask("fork question")) == {"answer": "parent"}
    key = ours.layout.key(_planned_id(ours, ask("fork question")))
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 0 if l1_of(ours).get((key,)) is None else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert held(ours, ask("fork question")) == {"answer": "parent"}  # the parent's still works


def _planned_id(core: CacheCore, messages: list[dict[str, str]]) -> str:
    plan = core.internals.plan(messages, MODEL, None, None)
    assert plan is not None
    return plan.entry_id


def test_async_lookups_fill_the_l1_themselves(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> None:
    """Only async lookups: they hold the entry (their own TTL read) and drop it on a change."""
    ours = CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder)
    other = CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, l1_cache=False
    )

    async def scenario() -> None:
        await ours.astore(ask("async only"), {"answer": "one"}, MODEL)
        key = ours.layout.key(_planned_id(ours, ask("async only")))
        stop = time.monotonic() + _POLL
        while (
            ours.internals.async_backend.l1 is None
            or ours.internals.async_backend.l1.get((key,)) is None
        ):
            hit = await ours.alookup(ask("async only"), MODEL)
            assert hit is not None and hit.response == {"answer": "one"}
            assert time.monotonic() < stop, "the L1 never held the entry"
            await asyncio.sleep(0.01)
        await other.astore(ask("async only"), {"answer": "two"}, MODEL)
        stop = time.monotonic() + _POLL
        while True:
            hit = await ours.alookup(ask("async only"), MODEL)
            assert hit is not None
            if hit.response == {"answer": "two"}:
                break
            assert time.monotonic() < stop, "the change never showed"
            await asyncio.sleep(0.005)
        for _ in range(20):
            hit = await ours.alookup(ask("async only"), MODEL)
            assert hit is not None and hit.response == {"answer": "two"}
        await ours.aclose()
        await other.aclose()

    asyncio.run(scenario())
