"""Counters, latency percentiles and the circuit breaker (pure, thread-safe)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

import numpy as np

from .._errors import BackendError
from .._precision._audit import false_hit_estimate
from .._types import CacheHit
from ._events import COUNTS, CacheEvent

__all__ = ["BreakerOpenError", "CacheStats", "CircuitBreaker"]

logger = logging.getLogger("semcache_plugins")

_COUNTERS = (
    "lookups",  # finished lookups (a hit or a miss); a lookup that bypassed the cache is a skip
    "hits_exact",
    "hits_semantic",
    "misses",
    "stores",
    *COUNTS[:1],  # errors (the count events' names, in stats() order)
    "skipped",  # operations that bypassed the cache, each once (by reason: skipped_by_reason)
    "skipped_too_long",
    *COUNTS[1:],
)


class CacheStats:
    """What the cache did since it was created, folded from its events (``CacheCore.stats()``
    returns a snapshot): subscribe :meth:`record` to the core's ``EventStream``."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._skips: Counter[str] = Counter()
        self._latency_ms: deque[float] = deque(maxlen=window)

    def record(self, event: CacheEvent) -> None:
        """Fold one event into the counters."""
        with self._lock:
            if event.kind == "lookup":
                self._counts["lookups"] += 1
                self._counts[event.name] += 1
                self._latency_ms.append(event.seconds * 1000.0)
            elif event.kind == "skip":
                self._counts["skipped"] += 1
                self._skips[event.name] += 1
                if event.name == "too_long":
                    self._counts["skipped_too_long"] += 1
            elif event.kind == "store":
                self._counts["stores"] += event.n
            else:
                self._counts[event.name] += event.n

    # standalone use (a CacheStats without a stream): the same events, recorded directly

    def count(self, name: str, n: int = 1) -> None:
        self.record(CacheEvent("store" if name == "stores" else "count", name, n))

    def skip(self, reason: str) -> None:
        self.record(CacheEvent("skip", reason))

    def lookup_done(self, outcome: str, seconds: float, hit: CacheHit | None = None) -> None:
        """Record one finished lookup: ``outcome`` is a counter name (hits_exact, misses, ...)."""
        self.record(CacheEvent("lookup", outcome, seconds=seconds, hit=hit))

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            result: dict[str, object] = {name: self._counts[name] for name in _COUNTERS}
            result["skipped_by_reason"] = dict(self._skips)
            latencies = np.fromiter(self._latency_ms, dtype=np.float64)
        hits = int(result["hits_exact"]) + int(result["hits_semantic"])  # type: ignore[call-overload]
        lookups = int(result["lookups"])  # type: ignore[call-overload]
        result["hit_rate"] = hits / lookups if lookups else 0.0
        result.update(
            false_hit_estimate(
                int(result["audited"]),  # type: ignore[call-overload]
                int(result["audit_disagreements"]),  # type: ignore[call-overload]
            )
        )
        for pct in (50, 95, 99):
            value = float(np.percentile(latencies, pct)) if latencies.size else 0.0
            result[f"latency_p{pct}_ms"] = round(value, 3)
        return result

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._skips.clear()
            self._latency_ms.clear()


class BreakerOpenError(BackendError):
    """The circuit breaker refused the call: Redis was not touched (counted as a skip)."""


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive failures -> half-open after ``cooldown``
    seconds, where exactly one trial call (the probe) goes through and every other caller is
    refused until it reports: closed on success, open for another cooldown on failure.

    A probe that never reports (its caller gave up before touching the backend) is
    ``release``d by the driver; after ``probe_lease`` seconds it is given up on regardless.
    """

    def __init__(
        self,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        probe_lease: float | None = None,
    ) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._lease = probe_lease if probe_lease is not None else max(cooldown, 5.0)
        self._lock = threading.Lock()
        self._consecutive = 0
        self._open_until = 0.0
        self._probe_until = 0.0  # a probe is in flight until then (0.0: none)
        self._probe_owner = 0  # which permit holds the probe

    def acquire(self) -> int | None:
        """A permit (an int: 0 closed, else the probe's id) when a call may go to the backend,
        None when it is refused (open, or half-open with the probe in flight)."""
        with self._lock:
            if self._consecutive < self._threshold:
                return 0
            now = self._clock()
            if now < self._open_until or now < self._probe_until:
                return None
            self._probe_until = now + self._lease
            self._probe_owner += 1
            return self._probe_owner

    def release(self, permit: int | None) -> None:
        """The call holding ``permit`` is over: a probe that reported nothing frees its slot."""
        if permit:
            with self._lock:
                if permit == self._probe_owner and self._probe_until:
                    self._probe_until = 0.0

    def allow(self) -> bool:
        """True when a call may go to the backend; in half-open state this takes the probe."""
        return self.acquire() is not None

    def success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._probe_until = 0.0

    def failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            self._probe_until = 0.0
            if self._consecutive >= self._threshold:
                self._open_until = self._clock() + self._cooldown

    @property
    def state(self) -> str:
        """``closed``, ``open`` (refusing every call) or ``half_open`` (a probe may go, or is
        in flight); never takes the probe."""
        with self._lock:
            if self._consecutive < self._threshold:
                return "closed"
            now = self._clock()
            if now < self._open_until:
                return "open"
            return "half_open"

    @property
    def is_open(self) -> bool:
        """Whether a call made now would be refused (open, or half-open with a probe out)."""
        with self._lock:
            if self._consecutive < self._threshold:
                return False
            now = self._clock()
            return now < self._open_until or now < self._probe_until
