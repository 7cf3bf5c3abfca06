"""Redis clients for the backends: deadline-bound sync connections and per-loop async clients.

Sync lookups run under a deadline (``lookup_timeout``): every reply a sync connection waits for
is bounded by the time left to the deadline of the operation running on that thread (see
:func:`deadline`), so a slow Redis turns the lookup into a timeout instead of stretching it.

An async client belongs to one event loop. Each is registered with its loop as an async
generator that the loop finalizes on shutdown (``asyncio.run`` and ``asyncio.Runner`` call
``loop.shutdown_asyncgens()``), which closes the client on its own loop. A loop closed without
that step is swept on the next use: its sockets are shut down without the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Any

import redis
import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redisvl.index import AsyncSearchIndex

from .._embedding._batcher import Overloaded
from .._errors import BackendError, CacheClosedError
from .._settings import CacheSettings

__all__ = [
    "DeadlineCut",
    "LoopClients",
    "LoopState",
    "PoolBusy",
    "connect",
    "deadline",
    "time_left",
]

# A reply is awaited at least this long, however little time is left to the deadline.
_MIN_WAIT = 0.01
# A reply that did not come within a wait shorter than this (cut short by the deadline) says
# more about the lookup's budget than about Redis: a miss, but no circuit-breaker failure.
_FAIR_WAIT = 0.05
_local = threading.local()


class DeadlineCut(redis.TimeoutError):
    """A reply not awaited long enough to call Redis slow: the deadline took the time."""


def deadline(at: float | None) -> float | None:
    """Bind the sync Redis I/O of this thread to ``at`` (``time.perf_counter()``; None: no
    deadline). Returns the previous value, to restore."""
    previous: float | None = getattr(_local, "at", None)
    _local.at = at
    return previous


def time_left() -> float | None:
    """Seconds left to this thread's deadline (may be <= 0), or None without one."""
    at: float | None = getattr(_local, "at", None)
    return None if at is None else at - time.perf_counter()


def _bounded(timeout: float | None) -> float | None:
    left = time_left()
    if left is None:
        return timeout
    left = max(left, _MIN_WAIT)
    return left if timeout is None else min(timeout, left)


class _DeadlineMixin:
    """Connect and read replies within the time left to the thread's deadline."""

    socket_timeout: float | None
    socket_connect_timeout: float | None

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "at", None) is None or "timeout" in kwargs:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        kwargs["timeout"] = timeout = _bounded(self.socket_timeout)
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.TimeoutError as exc:
            if timeout is not None and timeout < _FAIR_WAIT and timeout != self.socket_timeout:
                raise DeadlineCut(str(exc)) from exc
            raise

    def _connect(self) -> Any:
        if getattr(_local, "at", None) is None:
            return super()._connect()  # type: ignore[misc]
        saved = self.socket_connect_timeout
        self.socket_connect_timeout = _bounded(saved)
        try:
            return super()._connect()  # type: ignore[misc]
        finally:
            self.socket_connect_timeout = saved


_deadline_classes: dict[type, type] = {}


def _with_deadline(connection_class: type) -> type:
    found = _deadline_classes.get(connection_class)
    if found is None:
        name = f"Deadline{connection_class.__name__}"
        found = type(name, (_DeadlineMixin, connection_class), {})
        _deadline_classes[connection_class] = found
    return found


class PoolBusy(Overloaded, BackendError):
    """Every connection stayed busy for the whole pool wait: load to shed (a lookup or async
    store is an ``overloaded`` skip), not a sign of a sick Redis (no breaker failure)."""


_NO_CONNECTION = "No connection available."


class _SyncPool(redis.BlockingConnectionPool):
    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.ConnectionError as exc:
            if str(exc) == _NO_CONNECTION:
                raise PoolBusy(f"Redis connection pool: {exc}") from exc
            raise


class _AsyncPool(aredis.BlockingConnectionPool):
    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except redis.ConnectionError as exc:
            if str(exc) == _NO_CONNECTION:
                raise PoolBusy(f"Redis connection pool: {exc}") from exc
            raise


_POOLS: dict[Any, Any] = {
    redis.BlockingConnectionPool: _SyncPool,
    aredis.BlockingConnectionPool: _AsyncPool,
}


def connect(client_class: Any, pool_class: Any, settings: CacheSettings, url: str) -> Any:
    """A client with short timeouts, no retries and a blocking pool: a burst of callers beyond
    ``max_connections`` waits (up to ``lookup_timeout``) for a connection instead of failing.
    Sync clients honour the thread's :func:`deadline`."""
    options: dict[str, Any] = {}
    if client_class is redis.Redis:
        options["connection_class"] = _with_deadline(
            parse_url(url).get("connection_class", redis.Connection)  # type: ignore[no-untyped-call]
        )
    pool = _POOLS.get(pool_class, pool_class).from_url(
        url,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.socket_timeout,
        retry=Retry(NoBackoff(), 0),
        max_connections=settings.max_connections,
        timeout=settings.lookup_timeout,
        **options,
    )
    client = client_class(connection_pool=pool)
    client.auto_close_connection_pool = True  # close() also closes the pool we made
    return client


def _shut_sockets(client: aredis.Redis) -> None:
    """End the TCP connections of an async client whose loop cannot run any more.

    The loop's transports cannot be closed without the loop; shutting down a duplicate of each
    socket ends the connection for Redis at once (the descriptors go with the objects)."""
    pool: Any = client.connection_pool
    connections: list[Any] = []
    for getter in ("_get_free_connections", "_get_in_use_connections"):
        with contextlib.suppress(Exception):
            connections.extend(getattr(pool, getter)())
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        sock = writer.get_extra_info("socket") if writer is not None else None
        if sock is None:
            continue
        with contextlib.suppress(OSError):
            duplicate = socket.socket(fileno=os.dup(sock.fileno()))
            try:
                duplicate.shutdown(socket.SHUT_RDWR)
            finally:
                duplicate.close()


class LoopState:
    """One event loop's client and indexes, closed with the loop (see the module docstring)."""

    def __init__(
        self, client: aredis.Redis, *, owned: bool, forget: Callable[[], object] = lambda: None
    ) -> None:
        self.client = client
        self.owned = owned  # a client passed in is never closed here
        self._forget = forget  # drops this state from its backend when the loop shuts down
        self.indexes: dict[str, AsyncSearchIndex] = {}
        self.lock = asyncio.Lock()
        self._abandoned = False
        self._finalizer = self._close_at_loop_shutdown()
        with contextlib.suppress(StopIteration):  # runs to its yield: the loop now tracks it
            self._finalizer.asend(None).send(None)

    async def _close_at_loop_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._forget()
            if self.owned and not self._abandoned:
                with contextlib.suppress(Exception):
                    await self.client.aclose()

    async def aclose(self) -> None:
        """Close the client now, on its own (running) loop."""
        await self._finalizer.aclose()

    def abandon(self) -> None:
        """Close the client without its loop (closed, idle, or not this thread's)."""
        self._abandoned = True
        with contextlib.suppress(StopIteration, RuntimeError):
            self._finalizer.aclose().send(None)  # ends the generator without awaiting
        if self.owned:
            _shut_sockets(self.client)

    def close_from_outside(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close from sync code: on the loop when it runs, else without it."""
        if loop.is_running() and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                task = loop.create_task(self.aclose())
                _pending.add(task)
                task.add_done_callback(_pending.discard)
            else:
                with contextlib.suppress(RuntimeError):
                    asyncio.run_coroutine_threadsafe(self.aclose(), loop)
                    return
                self.abandon()
            return
        self.abandon()


_pending: set[asyncio.Task[None]] = set()


class LoopClients:
    """The per-loop states of one backend; loops of several threads add and drop theirs."""

    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.RLock()
        self._closed = False

    def get(self, loop: asyncio.AbstractEventLoop) -> LoopState | None:
        return self._states.get(loop)

    def count(self) -> int:
        return len(self._states)

    def add(
        self, loop: asyncio.AbstractEventLoop, new_client: Callable[[], tuple[aredis.Redis, bool]]
    ) -> LoopState:
        """A state for ``loop`` with a client from ``new_client`` (client, ours to close)."""
        with self._lock:
            if self._closed:
                raise CacheClosedError("this cache is closed")
            state = self._states.get(loop)
            if state is not None:
                return state
            stale = self._take(lambda other: other.is_closed())
            client, owned = new_client()
            state = LoopState(client, owned=owned, forget=partial(self._forget, loop))
            self._states[loop] = state
        for _, old in stale:  # loops closed without finalizing their async generators
            old.abandon()
        return state

    def _take(
        self, which: Callable[[asyncio.AbstractEventLoop], bool]
    ) -> list[tuple[asyncio.AbstractEventLoop, LoopState]]:
        """Remove and return the states of the loops ``which`` picks."""
        with self._lock:
            taken = [(loop, state) for loop, state in list(self._states.items()) if which(loop)]
            for loop, _ in taken:
                self._states.pop(loop, None)
        return taken

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._states.pop(loop, None)

    async def aclose(self) -> None:
        """No new state from now on; the running loop's client closes here, others as in
        :meth:`close`."""
        running = asyncio.get_running_loop()
        with self._lock:
            self._closed = True
        for _, state in self._take(lambda loop: loop is running):
            await state.aclose()
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for loop, state in self._take(lambda loop: True):
            state.close_from_outside(loop)
