"""One event stream per cache: every count ``stats()``, Prometheus and the demo show.

Each cache operation reports what it did as :class:`CacheEvent`s on the core's
:class:`EventStream` (``CacheCore.events``); ``CacheStats`` (``stats()``), ``metrics`` and the
demo's table are subscribers, so they cannot disagree. One operation, one outcome: a lookup is a
``lookup`` event (hit or miss, with its latency) or a ``skip``; a store is a ``store`` event or a
``skip`` (``ttl_zero``, ``too_large``); the work inside (embeddings, guard refusals), errors and
audits are ``count`` events. A skip is reported by the layer that gives up on the operation,
never by the embedder below it (a text too long to embed is one skip of its lookup; its store
still writes the entry for the exact tier).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal, NamedTuple, Protocol

from .._types import CacheHit

__all__ = ["COUNTS", "CacheEvent", "CacheObserver", "EventStream", "Subscriber", "observe"]

logger = logging.getLogger("semcache_plugins")

#: The names a ``count`` event may carry (plus ``stores``, the ``store`` event's counter).
COUNTS = (
    "errors",
    "guard_rejections",
    "embeddings",
    "shadow_hits_exact",  # shadow mode (serve=False): hits found, not served
    "shadow_hits_semantic",
    "audited",  # semantic hits (served or shadow) compared with a fresh provider answer
    "audit_disagreements",
)

EventKind = Literal["lookup", "skip", "store", "count"]


class CacheEvent(NamedTuple):
    """Something the cache did (immutable; a tuple because one is made per lookup on the
    exact-repeat fast path, about twice as fast to build as a frozen dataclass).

    - ``lookup``: a finished lookup; ``name`` is ``hits_exact``, ``hits_semantic`` or
      ``misses``, ``seconds`` its latency, ``hit`` what it found (None on a miss).
    - ``skip``: an operation that bypassed the cache; ``name`` is the reason.
    - ``store``: ``n`` entries written.
    - ``count``: ``n`` more of the counter ``name`` (one of :data:`COUNTS`).
    """

    kind: EventKind
    name: str
    n: int = 1
    seconds: float = 0.0
    hit: CacheHit | None = None


Subscriber = Callable[[CacheEvent], None]


class EventStream:
    """Delivers each event to every subscriber, in order of subscription. A failing subscriber
    is logged and never fails the cache call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every event from now on; returns an unsubscribe."""
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def emit(self, event: CacheEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # a subscriber must never fail a cache call
                logger.exception("semcache: cache event subscriber %r failed", subscriber)

    # -- shorthands for the emitting code ------------------------------------------------

    def count(self, name: str, n: int = 1) -> None:
        """``n`` more of ``name``: ``stores`` is a store event, anything else a count."""
        self.emit(
            CacheEvent("store", name, n) if name == "stores" else CacheEvent("count", name, n)
        )

    def skip(self, reason: str) -> None:
        self.emit(CacheEvent("skip", reason))

    def lookup_done(self, outcome: str, seconds: float, hit: CacheHit | None = None) -> None:
        self.emit(CacheEvent("lookup", outcome, seconds=seconds, hit=hit))


class CacheObserver(Protocol):
    """The older observer interface (``CacheCore.add_observer``): one method per event kind."""

    def count(self, name: str, n: int) -> None: ...

    def skip(self, reason: str) -> None: ...

    def lookup_done(self, outcome: str, seconds: float, hit: CacheHit | None) -> None: ...


def observe(observer: CacheObserver) -> Subscriber:
    """A subscriber that hands each event to ``observer``'s method for its kind."""

    def deliver(event: CacheEvent) -> None:
        if event.kind == "lookup":
            observer.lookup_done(event.name, event.seconds, event.hit)
        elif event.kind == "skip":
            observer.skip(event.name)
        else:
            observer.count(event.name, event.n)

    return deliver
