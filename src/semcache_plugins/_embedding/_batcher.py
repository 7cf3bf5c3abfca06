"""Micro-batching of embeddings for concurrent async lookups.

Texts requested during one event-loop tick (and while batches are running) are embedded together
in one call on a worker thread: 32 concurrent lookups cost about one batched model call instead
of 32 serialized ones, and the event loop never runs the model. Up to ``max_running`` batches
are under way at once (the cache uses the embedder's ``CONCURRENT_RUNS``): the next batch forms
and starts while one runs, so a small batch does not leave the second core idle.

Load shedding: a request with a deadline that the queue ahead of it cannot meet (judged from the
measured seconds per text) is refused at once with ``Overloaded``: under overload a lookup turns
into an immediate miss instead of waiting out its whole deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["EmbedBatcher", "LoadEstimator", "Overloaded"]

EmbedMany = Callable[[Sequence[str]], list[np.ndarray | None]]


class Overloaded(Exception):
    """The work queued ahead cannot finish before the deadline: shed this request."""


@dataclass
class LoadEstimator:
    """Seconds per unit of work, learned from finished work (EWMA); predicts queue waits."""

    per_unit: float = 0.0  # 0.0 until measured: never shed before the first measurement
    weight: float = 0.3

    def record(self, seconds: float, units: int) -> None:
        sample = seconds / max(units, 1)
        if self.per_unit == 0.0:
            self.per_unit = sample
        else:
            self.per_unit += self.weight * (sample - self.per_unit)

    def finishes_by(self, deadline: float, queued: int, busy_until: float, now: float) -> bool:
        """Would ``queued`` units, started once current work ends, be done by ``deadline``?

        Always yes before the first measurement: only measured load is shed.
        """
        if self.per_unit == 0.0:
            return True
        return max(now, busy_until) + queued * self.per_unit <= deadline


@dataclass
class _LoopQueue:
    pending: list[tuple[str, asyncio.Future[np.ndarray | None]]] = field(default_factory=list)
    running: int = 0  # batches under way
    scheduled: bool = False
    busy_until: float = 0.0  # expected end of the running batch (perf_counter)
    sizes: list[int] = field(default_factory=list)

    def waiting(self) -> int:
        """Texts still wanted in the queue (callers that gave up leave done futures behind)."""
        return sum(1 for _, future in self.pending if not future.done())


class EmbedBatcher:
    """Collects concurrent ``embed`` calls per event loop and runs them as one batch."""

    def __init__(self, embed_many: EmbedMany, max_batch: int = 64, max_running: int = 1) -> None:
        self._embed_many = embed_many
        self._max_batch = max_batch
        self._max_running = max_running
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = (
            weakref.WeakKeyDictionary()
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self.load = LoadEstimator()

    async def embed(self, text: str, deadline: float | None = None) -> np.ndarray | None:
        """The vector of ``text`` (None when the embedder refuses it as too long).

        Raises ``Overloaded`` at once when the queue cannot get to it before ``deadline``
        (a ``time.perf_counter()`` value).
        """
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            with self._lock:  # loops of several threads may arrive at once
                self._forget_closed_loops()
                queue = self._queues.setdefault(loop, _LoopQueue())
        # the queue drains ``max_running`` batches at a time
        queued = -(-(queue.waiting() + 1) // self._max_running)
        if deadline is not None and not self.load.finishes_by(
            deadline, queued, queue.busy_until, time.perf_counter()
        ):
            raise Overloaded
        future: asyncio.Future[np.ndarray | None] = loop.create_future()
        queue.pending.append((text, future))
        if queue.running < self._max_running and not queue.scheduled:
            queue.scheduled = True
            loop.call_soon(self._flush, loop, queue)
        return await future

    def _forget_closed_loops(self) -> None:
        """Drop the queues of closed loops (their waiters are gone with them)."""
        for loop in [loop for loop in list(self._queues) if loop.is_closed()]:
            self._queues.pop(loop, None)

    def loops(self) -> int:
        """How many event loops have a queue here (for tests and diagnostics)."""
        return len(self._queues)

    def batch_sizes(self) -> list[int]:
        """Sizes of the batches run on the current loop (for benchmarks)."""
        queue = self._queues.get(asyncio.get_running_loop())
        return list(queue.sizes) if queue else []

    def _flush(self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue) -> None:
        """Start batches from the queue while fewer than ``max_running`` are under way."""
        queue.scheduled = False
        while queue.pending and queue.running < self._max_running:
            batch = [(t, f) for t, f in queue.pending[: self._max_batch] if not f.done()]
            del queue.pending[: self._max_batch]
            if not batch:
                continue
            queue.running += 1
            queue.sizes.append(len(batch))
            task = loop.create_task(self._run(loop, queue, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: _LoopQueue,
        batch: list[tuple[str, asyncio.Future[np.ndarray | None]]],
    ) -> None:
        started = time.perf_counter()
        queue.busy_until = started + len(batch) * self.load.per_unit
        try:
            vectors = await asyncio.to_thread(self._embed_many, [text for text, _ in batch])
            self.load.record(time.perf_counter() - started, len(batch))
        except BaseException as exc:  # delivered to every waiter, never lost
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)
        finally:
            queue.running -= 1
            queue.busy_until = 0.0  # the model is free now, however long the batch was predicted
            if not queue.scheduled:
                self._flush(loop, queue)
