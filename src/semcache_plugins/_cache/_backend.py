"""Redis I/O for the flows: one sync and one async executor over shared helpers.

Connections are lazy: nothing touches the network until the first operation. Every Redis
failure becomes a ``BackendError`` and feeds the circuit breaker.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from typing import Any

import redis
import redis.asyncio as aredis
from redisvl.exceptions import RedisVLError
from redisvl.index import AsyncSearchIndex, SearchIndex

from .._errors import BackendError, CacheClosedError, ConfigurationError
from .._settings import CacheSettings
from ._compute import DeadlineExceeded
from ._connections import DeadlineCut, LoopClients, LoopState, connect, deadline
from ._flows import (
    BumpGeneration,
    DeleteKeys,
    DeleteMatching,
    Op,
    ReadEntries,
    ReadEntry,
    ReadGenerations,
    Search,
    WriteBatch,
    WriteEntry,
)
from ._index import IndexLayout, search_rows
from ._l1 import L1Cache, acquire_l1, release_l1
from ._l1_reads import ahold, held_result, hold
from ._reads import entry_replies, queue_reads, read_result
from ._stats import CircuitBreaker

__all__ = ["AsyncBackend", "SyncBackend", "delete_matching", "redis_url_for"]

logger = logging.getLogger("semcache_plugins")
_REDIS_ERRORS = (redis.RedisError, RedisVLError, OSError)
_embedded_lock = threading.Lock()
_embedded_url: str | None = None


def redis_url_for(settings: CacheSettings) -> str:
    """The configured Redis URL, else a process-wide embedded Redis started on first use."""
    global _embedded_url
    if settings.redis_url:
        return settings.redis_url
    with _embedded_lock:
        if _embedded_url is None:
            from ..embedded import EmbeddedRedis, running_server

            server = running_server()
            if server is None:
                server = EmbeddedRedis()
                server.start()
                atexit.register(server.stop)
            _embedded_url = server.url
            logger.info("semcache: no redis_url given; using embedded Redis at %s", server.url)
        return _embedded_url


def delete_matching(client: redis.Redis, pattern: str) -> int:
    """Delete the keys matching a glob pattern (found by SCAN, not KEYS); returns how many."""
    keys = list(client.scan_iter(match=pattern, count=1000))
    return int(client.delete(*keys)) if keys else 0


def _queue_writes(pipe: Any, op: WriteEntry | WriteBatch) -> int:
    """Queue replace-and-expire of each entry on a (sync or async) transaction pipeline, then
    one PFADD (and expiry, the last entry's) per entry count the writes touch. Returns how many
    commands the entries took (the rest update counts)."""
    counted: dict[str, tuple[list[str], int | None]] = {}
    writes = op.writes if isinstance(op, WriteBatch) else (op,)
    for write in writes:  # checked before anything is queued: Redis never rolls back
        if write.ttl is not None and (type(write.ttl) is not int or write.ttl <= 0):
            raise ConfigurationError(f"an entry's ttl must be whole seconds > 0: {write.ttl!r}")
    for write in writes:
        pipe.delete(write.key)
        pipe.hset(write.key, mapping=write.mapping)
        if write.ttl:
            pipe.expire(write.key, write.ttl)
        for count_key in write.count_keys:
            keys = counted.get(count_key, ([], None))[0]
            keys.append(write.key)
            counted[count_key] = (keys, write.ttl)
    entry_commands = len(pipe)
    for count_key, (keys, ttl) in counted.items():
        pipe.pfadd(count_key, *keys)
        if ttl:
            pipe.expire(count_key, ttl)
    return entry_commands


def _failed(replies: list[Any], entry_commands: int) -> bool:
    return any(isinstance(reply, Exception) for reply in replies[:entry_commands])


def _written_keys(op: WriteEntry | WriteBatch) -> list[str]:
    return [write.key for write in (op.writes if isinstance(op, WriteBatch) else (op,))]


def _missing_index(exc: BaseException) -> bool:
    return "no such index" in str(exc).lower() or "unknown index" in str(exc).lower()


def _already_exists(exc: BaseException) -> bool:
    return "already exists" in str(exc).lower()


def _l1_for(settings: CacheSettings, url: str) -> L1Cache:
    return acquire_l1(url, settings.index_prefix, socket_timeout=settings.socket_timeout)


def _evict(l1: L1Cache, op: Op) -> None:
    """Drop from the L1 what a write changed (or may have: also after a failure); a read in
    flight meanwhile is not held. Pushes from Redis do the same, a little later."""
    if isinstance(op, WriteEntry | WriteBatch):
        l1.invalidate(_written_keys(op))
    elif isinstance(op, BumpGeneration):
        l1.invalidate((op.key,))
    elif isinstance(op, DeleteKeys):
        l1.invalidate(op.keys)
    elif isinstance(op, DeleteMatching):
        l1.invalidate(None)


def _wrap(op: Op, exc: BaseException, breaker: CircuitBreaker) -> BackendError:
    breaker.failure()
    return BackendError(f"Redis {type(op).__name__} failed: {type(exc).__name__}: {exc}")


class SyncBackend:
    """Executes flow operations with a blocking ``redis.Redis`` client."""

    def __init__(
        self,
        settings: CacheSettings,
        client: redis.Redis | None = None,
        *,
        async_client_given: bool = False,
    ) -> None:
        self._settings = settings
        self._client = client
        self._owns_client = client is None
        self._async_client_given = async_client_given
        self._indexes: dict[str, SearchIndex] = {}
        self._lock = threading.RLock()
        self._closed = False
        self.l1: L1Cache | None = None  # only with a client made here (``l1``)

    def client(self) -> redis.Redis:
        if self._client is None or self._closed:
            with self._lock:
                if self._closed:
                    raise CacheClosedError("this cache is closed")
                if self._client is None:
                    if self._async_client_given and not self._settings.redis_url:
                        raise ConfigurationError(
                            "async_redis_client= covers the async API only: pass "
                            "redis_client= or redis_url= for the sync one"
                        )
                    url = redis_url_for(self._settings)
                    self._client = connect(
                        redis.Redis, redis.BlockingConnectionPool, self._settings, url
                    )
                    if self._settings.l1_cache:
                        self.l1 = _l1_for(self._settings, url)
        return self._client

    def index(self, layout: IndexLayout) -> SearchIndex:
        """The RedisVL index for this layout, created in Redis once."""
        index = self._indexes.get(layout.name)
        if index is None:
            with self._lock:
                index = self._indexes.get(layout.name)
                if index is None:
                    index = SearchIndex.from_dict(layout.schema(), redis_client=self.client())
                    try:
                        index.create(overwrite=False)
                    except RedisVLError as exc:
                        if not _already_exists(exc):
                            raise
                    self._indexes[layout.name] = index
        return index

    def execute(
        self, op: Op, layout: IndexLayout, breaker: CircuitBreaker, until: float | None = None
    ) -> Any:
        """Run ``op``; with ``until`` (a ``perf_counter`` deadline) every reply is awaited at
        most until then: a slow reply is a failure, and none is sent once the time is up."""
        l1 = self.l1
        if l1 is not None and type(op) is ReadEntry:
            held = held_result(l1, op)
            if held is not None:
                return held
        if until is not None and time.perf_counter() >= until:
            raise DeadlineExceeded
        previous = deadline(until)
        try:
            try:
                result = self._execute(op, layout)
            except _REDIS_ERRORS as exc:
                if not _missing_index(exc):
                    raise
                self._indexes.pop(layout.name, None)  # Redis lost the index: rebuild, retry once
                result = self._execute(op, layout)
        except DeadlineCut as exc:
            raise DeadlineExceeded from exc
        except _REDIS_ERRORS as exc:
            raise _wrap(op, exc, breaker) from exc
        finally:
            deadline(previous)
            if l1 is not None or (l1 := self.l1) is not None:
                _evict(l1, op)
        breaker.success()
        return result

    def _execute(self, op: Op, layout: IndexLayout) -> Any:
        client = self.client()
        l1 = self.l1
        if isinstance(op, ReadEntry | ReadEntries | ReadGenerations):
            snap = l1.snapshot() if l1 is not None and type(op) is ReadEntry else None
            with client.pipeline(transaction=False) as pipe:
                queue_reads(pipe, op)
                replies = pipe.execute(raise_on_error=False)
            if snap is not None and l1 is not None and isinstance(op, ReadEntry):
                hold(l1, snap, client, op.key, len(op.count_keys), op.generation_keys, replies)
            return read_result(op, replies)
        if isinstance(op, DeleteMatching):
            return delete_matching(client, op.pattern)
        if isinstance(op, BumpGeneration):
            return client.incr(op.key)
        self.index(layout)  # created once; every op below needs it
        if isinstance(op, Search):
            return search_rows(client.execute_command(*op.args))  # type: ignore[no-untyped-call]
        if isinstance(op, WriteEntry | WriteBatch):
            with client.pipeline(transaction=True) as pipe:
                entry_commands = _queue_writes(pipe, op)
                replies = pipe.execute(raise_on_error=False)
            if _failed(replies, entry_commands):  # no entry left half-written
                client.delete(*_written_keys(op))
            entry_replies(replies, entry_commands)
            return None
        if isinstance(op, DeleteKeys):
            return client.delete(*op.keys)
        raise TypeError(f"unknown operation {op!r}")

    def close(self) -> None:
        """Close the client this backend made (one passed in stays open); no use after this."""
        with self._lock:
            self._closed = True
            if self._client is not None and self._owns_client:
                self._client.close()
                self._client = None
            self._indexes.clear()
            l1, self.l1 = self.l1, None
        if l1 is not None:
            release_l1(l1)


class AsyncBackend:
    """Executes flow operations with ``redis.asyncio``; one client per running event loop,
    closed with its loop (``_connections.LoopState``).

    A client passed in is used on whichever loop runs the cache (it must be usable there) and
    is never closed here. ``sync_client_given``: the sync side uses a client passed in, so
    without a URL there is no telling where the async side should connect.
    """

    def __init__(
        self,
        settings: CacheSettings,
        client: aredis.Redis | None = None,
        *,
        sync_client_given: bool = False,
    ) -> None:
        self._settings = settings
        self._client = client
        self._sync_client_given = sync_client_given
        self._loops = LoopClients()
        self.l1: L1Cache | None = None

    def _state(self) -> LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        return state if state is not None else self._loops.add(loop, self._new_client)

    def _new_client(self) -> tuple[aredis.Redis, bool]:
        """A client for a new loop, and whether it is ours to close."""
        if self._client is not None:
            return self._client, False
        if self._sync_client_given and not self._settings.redis_url:
            raise ConfigurationError(
                "redis_client= covers the sync API only: pass async_redis_client= or "
                "redis_url= for the async one"
            )
        url = redis_url_for(self._settings)
        if self._settings.l1_cache and self.l1 is None:
            self.l1 = _l1_for(self._settings, url)
        return connect(aredis.Redis, aredis.BlockingConnectionPool, self._settings, url), True

    def loops(self) -> int:
        """How many event loops hold a client of this backend (for tests and diagnostics)."""
        return self._loops.count()

    async def index(self, layout: IndexLayout) -> AsyncSearchIndex:
        state = self._state()
        index = state.indexes.get(layout.name)
        if index is None:
            async with state.lock:
                index = state.indexes.get(layout.name)
                if index is None:
                    index = AsyncSearchIndex.from_dict(layout.schema(), redis_client=state.client)
                    try:
                        await index.create(overwrite=False)
                    except RedisVLError as exc:
                        if not _already_exists(exc):
                            raise
                    state.indexes[layout.name] = index
        return index

    async def execute(self, op: Op, layout: IndexLayout, breaker: CircuitBreaker) -> Any:
        l1 = self.l1
        if l1 is not None and type(op) is ReadEntry:
            held = held_result(l1, op)
            if held is not None:
                return held
        try:
            try:
                result = await self._execute(op, layout)
            except _REDIS_ERRORS as exc:
                if not _missing_index(exc):
                    raise
                self._state().indexes.pop(layout.name, None)
                result = await self._execute(op, layout)
        except _REDIS_ERRORS as exc:
            raise _wrap(op, exc, breaker) from exc
        finally:
            if l1 is not None or (l1 := self.l1) is not None:
                _evict(l1, op)
        breaker.success()
        return result

    async def _execute(self, op: Op, layout: IndexLayout) -> Any:
        client = self._state().client
        if isinstance(op, ReadEntry | ReadEntries | ReadGenerations):
            l1 = self.l1 if type(op) is ReadEntry else None
            snap = l1.snapshot() if l1 is not None else None
            async with client.pipeline(transaction=False) as pipe:
                queue_reads(pipe, op)
                replies = await pipe.execute(raise_on_error=False)
            if snap is not None and l1 is not None and isinstance(op, ReadEntry):
                counts, gens = len(op.count_keys), op.generation_keys
                await ahold(l1, snap, client, op.key, counts, gens, replies)
            return read_result(op, replies)
        if isinstance(op, DeleteMatching):
            keys = [key async for key in client.scan_iter(match=op.pattern, count=1000)]
            return await client.delete(*keys) if keys else 0
        if isinstance(op, BumpGeneration):
            return await client.incr(op.key)
        await self.index(layout)  # created once; every op below needs it
        if isinstance(op, Search):
            return search_rows(await client.execute_command(*op.args))  # type: ignore[no-untyped-call]
        if isinstance(op, WriteEntry | WriteBatch):
            async with client.pipeline(transaction=True) as pipe:
                entry_commands = _queue_writes(pipe, op)
                replies = await pipe.execute(raise_on_error=False)
            if _failed(replies, entry_commands):  # no entry left half-written
                await client.delete(*_written_keys(op))
            entry_replies(replies, entry_commands)
            return None
        if isinstance(op, DeleteKeys):
            return await client.delete(*op.keys)
        raise TypeError(f"unknown operation {op!r}")

    async def aclose(self) -> None:
        """Close every client this backend made: the running loop's here, others as ``close``."""
        await self._loops.aclose()
        self._release_l1()

    def close(self) -> None:
        """No use after this; each loop's client is closed on its loop if it runs, else its
        sockets are shut down."""
        self._loops.close()
        self._release_l1()

    def _release_l1(self) -> None:
        l1, self.l1 = self.l1, None
        if l1 is not None:
            release_l1(l1)
