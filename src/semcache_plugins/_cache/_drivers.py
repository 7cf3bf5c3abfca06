"""The sync and async drivers that run a flow, and the lifecycle of a ``CacheCore``.

A driver asks the circuit breaker for a permit (refusals are counted as ``breaker_open`` skips),
feeds each operation of the flow to the model or to Redis, and hands the permit back: a
half-open breaker's single probe is freed even when its caller gave up before touching Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Self

from .._errors import CacheClosedError, SemcacheError
from .._settings import CacheSettings
from ._audit_run import Auditor
from ._backend import AsyncBackend, SyncBackend
from ._compute import ModelWork
from ._events import EventStream
from ._flows import EmbedQuery, Flow, GuardCheck
from ._index import IndexLayout
from ._stats import BreakerOpenError, CircuitBreaker

__all__ = ["CoreDrivers"]


class CoreDrivers:
    """Flow drivers, ``close``/``aclose``, context managers and repr, mixed into ``CacheCore``."""

    settings: CacheSettings
    _closed: bool
    _breaker: CircuitBreaker
    events: EventStream
    _work: ModelWork
    _sync: SyncBackend
    _async: AsyncBackend
    _auditor: Auditor

    @property
    def layout(self) -> IndexLayout:
        raise NotImplementedError

    def _admit(self) -> int | None:
        """The breaker's permit for one flow; a refusal is counted and raised."""
        if self._closed:
            raise CacheClosedError("this cache is closed")
        permit = self._breaker.acquire()
        if permit is None:
            self.events.skip("breaker_open")
            raise BreakerOpenError("Redis circuit breaker is open; skipping the cache")
        return permit

    @contextmanager
    def _admitted(self) -> Iterator[None]:
        """One flow run under the breaker's permit: its ``SemcacheError``s are counted as
        ``errors`` and the permit is handed back however the run ends (the part of a run the
        sync and async drivers share; what differs is only how each operation is carried out)."""
        permit = self._admit()
        try:
            yield
        except SemcacheError:
            self.events.count("errors")
            raise
        finally:
            self._breaker.release(permit)

    def _run(self, flow: Flow, deadline: float | None = None) -> Any:
        """Run a flow; with ``deadline`` model work and every Redis reply are bounded by it."""
        with self._admitted():
            try:
                op = next(flow)
                while True:
                    if isinstance(op, EmbedQuery):
                        result: Any = self._work.vectors.get(op.text)
                        if result is None:
                            embed = partial(self._work.embed_one, op.text)
                            result = self._work.run(embed, deadline)
                    elif isinstance(op, GuardCheck):
                        result = self._work.guard_without_model(op)
                        if result is None:
                            result = self._work.run(partial(self._work.guard, op), deadline)
                    else:
                        result = self._sync.execute(op, self.layout, self._breaker, deadline)
                    op = flow.send(result)
            except StopIteration as stop:
                return stop.value

    async def _arun(self, flow: Flow, deadline: float | None = None, timed: bool = False) -> Any:
        """Async twin of :meth:`_run`; ``timed``: cancelled at ``deadline`` (a Redis reply
        still awaited then was too slow, a breaker failure)."""
        with self._admitted():
            try:
                op = next(flow)
                while True:
                    if isinstance(op, EmbedQuery):
                        result: Any = await self._work.aembed_one(op.text, deadline)
                    elif isinstance(op, GuardCheck):
                        result = self._work.guard_without_model(op)
                        if result is None:
                            result = await asyncio.to_thread(self._work.guard, op)
                    else:
                        try:
                            result = await self._async.execute(op, self.layout, self._breaker)
                        except asyncio.CancelledError:
                            if timed and deadline is not None and time.perf_counter() >= deadline:
                                self._breaker.failure()
                            raise
                    op = flow.send(result)
            except StopIteration as stop:
                return stop.value

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections this core opened (a client passed in stays open); any use
        after this raises ``CacheClosedError``. Async clients close on their own loops."""
        self._closed = True
        self._auditor.close()  # audits under way still write
        self._sync.close()
        self._async.close()
        self._work.close()

    async def aclose(self) -> None:
        """Close sync and async connections this core opened (see :meth:`close`)."""
        self._closed = True
        await asyncio.to_thread(self._auditor.close)
        await self._async.aclose()
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"CacheCore(namespace={s.namespace!r}, threshold={s.similarity_threshold}, "
            f"model={s.embedding_model!r}, guards={s.guards})"
        )
