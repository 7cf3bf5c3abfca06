"""The CPU side of the cache: embeddings (memoized, batched), precision guards, deadlines."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from .._embedding._batcher import EmbedBatcher, LoadEstimator, Overloaded
from .._embedding._embedder import CONCURRENT_RUNS, Embedder
from .._embedding._vectors import VectorMemo
from .._precision._guards import check_guards
from .._precision._verifier import Verifier, load_verifier
from ._events import EventStream
from ._flows import GuardCheck

__all__ = ["DeadlineExceeded", "ModelWork"]

logger = logging.getLogger("semcache_plugins")

# Texts longer than this many characters per model token are over the limit without tokenizing.
_CHARS_PER_TOKEN_CAP = 64
_WORKERS = 2  # threads running deadline-bound model work for sync lookups
_INLINE_FACTOR = 20  # inline only when 20x the measured cost still fits before the deadline


class DeadlineExceeded(Exception):
    """Model work ran past the lookup deadline: the lookup becomes a miss."""


class _NeedsModel(Exception):
    """A guard check asked for embeddings: it has to run where model work may run."""


def _no_model(texts: Sequence[str]) -> np.ndarray:
    raise _NeedsModel


class ModelWork:
    """Embedding and guard checks for one cache, shared by its sync and async shells."""

    def __init__(self, embedder: Embedder, stats: EventStream) -> None:
        self.embedder = embedder
        self.vectors = VectorMemo()
        # as many batches under way as the embedder runs at once: the next one forms meanwhile
        self.batcher = EmbedBatcher(self.embed_texts, max_running=CONCURRENT_RUNS)
        self._stats = stats
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.load = LoadEstimator()  # seconds per unit of sync model work
        self._inflight = 0
        self.verifier: Verifier | None = None  # loaded on first use (``_verify``)
        self._verifier_broken = False

    def embed_texts(self, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Embed texts in one model call (memoized); None for a text longer than the model reads
        (not a skip here: the operation that gives up on it reports that, once)."""
        limit = self.embedder.max_tokens
        cap = _CHARS_PER_TOKEN_CAP * limit
        result: list[np.ndarray | None] = [self.vectors.get(text) for text in texts]
        todo = [i for i, vector in enumerate(result) if vector is None]
        counts = self.embedder.count_tokens([texts[i][:cap] for i in todo])
        fits = []
        for i, count in zip(todo, counts, strict=True):
            if count <= limit and len(texts[i]) <= cap:
                fits.append(i)
        if fits:
            self._stats.count("embeddings", len(fits))
            for i, vector in zip(fits, self.embedder.embed([texts[i] for i in fits]), strict=True):
                self.vectors.put(texts[i], vector)
                result[i] = vector
        return result

    def embed_one(self, text: str) -> np.ndarray | None:
        return self.embed_texts([text])[0]

    async def aembed_one(self, text: str, deadline: float | None = None) -> np.ndarray | None:
        """Memo first, else join the current micro-batch (runs on a worker thread).

        Raises ``Overloaded`` when the batch queue cannot embed it before ``deadline``.
        """
        memo = self.vectors.get(text)
        return memo if memo is not None else await self.batcher.embed(text, deadline)

    def guard(self, op: GuardCheck) -> bool:
        """May the cached text answer the query? Counts and logs (no text) a refusal."""
        verdict = check_guards(
            op.query, op.cached, op.similarity, embed=self.embedder.embed, threshold=op.threshold
        )
        allowed, reason = verdict.allowed, verdict.reason
        if allowed and op.verify:
            allowed, reason = self._verify(op), "verifier"
        return self._judged(allowed, reason)

    def guard_without_model(self, op: GuardCheck) -> bool | None:
        """The verdict of :meth:`guard` when it needs no model work, else None.

        Most candidates are decided by the lexical rules alone: those are judged right here
        (on the event loop for async lookups: no thread hand-off, no wait behind a running
        embedding batch); a check that would embed a phrase, or ask the verifier, is left to
        :meth:`guard` on a worker thread. ``check_guards`` is pure apart from ``embed``, so the
        verdict is the same either way.
        """
        if op.verify:
            return None
        try:
            verdict = check_guards(
                op.query, op.cached, op.similarity, embed=_no_model, threshold=op.threshold
            )
        except _NeedsModel:
            return None
        return self._judged(verdict.allowed, verdict.reason)

    def _judged(self, allowed: bool, reason: str) -> bool:
        """Count and log (no text) a refusal; the verdict."""
        if not allowed:
            self._stats.count("guard_rejections")
            logger.debug("semcache: guard rejected a candidate (%s)", reason)
        return allowed

    def _verify(self, op: GuardCheck) -> bool:
        """The learned verifier's say. Any error is a miss for this candidate (fail closed);
        weights that cannot be loaded turn it off (only the threshold serves, once logged)."""
        try:
            if self.verifier is None and not self._verifier_broken:
                self.verifier = load_verifier()
        except Exception as exc:  # a broken install must not fail the user's call
            self._verifier_broken = True
            logger.warning("semcache: learned verifier off: %s", exc)
        if self.verifier is None:
            return op.similarity >= op.threshold
        try:
            return self.verifier.verify(op.query, op.cached, op.similarity, embed=self._spans)
        except Exception:
            logger.warning("semcache: verifier failed; a miss", exc_info=True)
            return False

    def _spans(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Differing spans, embedded in one memoized model call."""
        vectors = self.embed_texts(texts)
        if any(vector is None for vector in vectors):
            raise ValueError("a differing span is too long to embed")
        return [vector for vector in vectors if vector is not None]

    def run(self, work: Callable[[], Any], deadline: float | None) -> Any:
        """Run model work inline, or on a worker thread waiting at most until ``deadline``.

        With a deadline, work runs inline only on an idle model whose measured cost is a small
        fraction of the time left (no thread hand-off on the common path); otherwise it goes to
        a worker thread, and ``Overloaded`` is raised at once when the work already queued
        cannot finish in time.
        """
        if deadline is None:
            return work()
        with self._lock:
            cost = _INLINE_FACTOR * self.load.per_unit
            inline = self._inflight == 0 and cost > 0.0 and time.perf_counter() + cost <= deadline
            if inline:
                self._inflight += 1
        if inline:
            return self._timed(work)
        return self.wait(self.submit(work, deadline), deadline)

    def submit(self, work: Callable[[], Any], deadline: float) -> Future[Any]:
        """Queue model work on a worker thread, or raise ``Overloaded`` if it cannot finish."""
        with self._lock:
            queued = self._inflight // _WORKERS + 1
            if not self.load.finishes_by(deadline, queued, 0.0, time.perf_counter()):
                raise Overloaded
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="semcache")
            self._inflight += 1
            return self._pool.submit(self._timed, work)

    def wait(self, future: Future[Any], deadline: float) -> Any:
        try:
            return future.result(timeout=max(0.0, deadline - time.perf_counter()))
        except FutureTimeout as exc:
            raise DeadlineExceeded from exc

    def _timed(self, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return work()
        finally:
            with self._lock:
                self._inflight -= 1
                self.load.record(time.perf_counter() - started, 1)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None
