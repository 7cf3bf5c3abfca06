"""``CacheCore``: the sync and async shells that run the flows against Redis and the embedder."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Unpack

from .._embedding._batcher import Overloaded
from .._embedding._embedder import Embedder
from .._errors import BackendError, CacheClosedError, ConfigurationError
from .._options import SettingsOverrides, merge_settings
from .._settings import CacheSettings, validate_namespace
from .._ttl import entry_ttl
from .._types import CacheHit
from ._audit_run import Auditor
from ._backend import AsyncBackend, SyncBackend
from ._compute import DeadlineExceeded, ModelWork
from ._drivers import CoreDrivers
from ._events import CacheObserver, EventStream, observe
from ._flow_config import flow_config
from ._flows import (
    DeleteKeys,
    Flow,
    FlowConfig,
    LookupResult,
    invalidate_flow,
    lookup_flow,
    single_op,
    store_flow,
)
from ._index import IndexLayout
from ._internals import CoreInternals
from ._invalidation import invalidation_filter
from ._plan_memo import PlanMemo
from ._scope import RequestPlan
from ._stats import BreakerOpenError, CacheStats, CircuitBreaker
from ._warm import WarmItem, store_many

__all__ = ["CacheCore"]

logger = logging.getLogger("semcache_plugins")
_ENTRY_ID = re.compile(r"[0-9a-f]{32}")
Messages = Sequence[Mapping[str, Any]]


class CacheCore(CoreDrivers):
    """A scoped exact + semantic cache over Redis (RedisVL HNSW) and a local ONNX embedder.

    ``settings`` plus keyword overrides (every ``CacheSettings`` field, typed by
    ``SettingsOverrides``; an unknown one is a ``ConfigurationError``); ``embedder`` shares a
    loaded model; ``redis_client``/``async_redis_client``: clients to use instead of
    ``redis_url`` (left open by :meth:`close`). ``events``: subscribe to what the cache does.
    ``clock``: seconds since the epoch for entry ages and expiry checks (settable, e.g. tests).
    ``internals``: the narrow interface the package's own helpers use (not a public API).
    """

    def __init__(
        self,
        *,
        settings: CacheSettings | None = None,
        embedder: Embedder | None = None,
        redis_client: Any = None,
        async_redis_client: Any = None,
        **overrides: Unpack[SettingsOverrides],
    ) -> None:
        self.settings = settings = merge_settings(settings, overrides)
        self.embedder = embedder if embedder is not None else Embedder.from_settings(settings)
        self.events, self._counters = EventStream(), CacheStats()  # stats() subscribes too
        self.events.subscribe(self._counters.record)
        self.clock: Callable[[], float] = time.time
        self._breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
        self._work = ModelWork(self.embedder, self.events)
        self._auditor = Auditor(self)
        self._config: FlowConfig | None = None
        self._plans = PlanMemo()  # plans by request content (settings are fixed per core)
        self._config_lock = threading.Lock()
        self._closed = False
        self._sync = SyncBackend(
            settings, client=redis_client, async_client_given=async_redis_client is not None
        )
        self._async = AsyncBackend(
            settings, client=async_redis_client, sync_client_given=redis_client is not None
        )
        self.internals = CoreInternals(
            plan=self._plan,
            run=self._run,
            embed_texts=self._work.embed_texts,
            events=self.events,
            auditor=self._auditor,
            sync_backend=self._sync,
            async_backend=self._async,
            is_closed=lambda: self._closed,
            work=self._work,
        )
        if settings.preload:
            _ = self.config  # loads the model now: a broken model raises ModelError here

    # -- set-up ---------------------------------------------------------------------------

    @property
    def config(self) -> FlowConfig:
        """Flow configuration; loading it loads the model (its fingerprint names the index)."""
        if self._config is None:
            with self._config_lock:
                if self._config is None:
                    self._config = flow_config(self.settings, self.embedder.fingerprint)
        return self._config

    async def _aconfig(self) -> FlowConfig:
        """The config, loading the model in a thread the first time (never on the loop)."""
        if self._config is not None:
            return self._config
        return await asyncio.to_thread(lambda: self.config)

    @property
    def layout(self) -> IndexLayout:
        return self.config.layout

    def _plan(
        self, messages: Any, model: str, params: Mapping[str, Any] | None, namespace: str | None
    ) -> RequestPlan:
        # a per-call namespace passes the settings' validator: "" is an error, not the default
        namespace = self.settings.namespace if namespace is None else validate_namespace(namespace)
        return self._plans.plan(messages, model=model, params=params, namespace=namespace)

    def _planned(
        self,
        messages: Any,
        model: str,
        params: Mapping[str, Any] | None,
        namespace: str | None,
    ) -> RequestPlan | None:
        """The request's plan, or None (counted as a skip) when it cannot be cached."""
        if self._closed:
            raise CacheClosedError("this cache is closed")
        plan = self._plan(messages, model, params, namespace)
        if plan.skip_reason:
            self.events.skip(plan.skip_reason)
            return None
        return plan

    def _store_flow(
        self,
        config: FlowConfig,
        plan: RequestPlan,
        response: Any,
        ttl: int | None,
        exact_only: bool,
    ) -> Flow:
        # the lookup's vector: embed once per request
        vector = self._work.vectors.get(plan.embed_text)
        return store_flow(
            config,
            plan,
            response,
            ttl=ttl,
            exact_only=exact_only,
            vector=vector,
            now=self.clock(),
        )

    def _stored(self, entry_id: str | None, ttl: int | None) -> str | None:
        if entry_id:
            self.events.count("stores")
        else:  # store_flow writes nothing for a zero TTL or an over-large response
            self.events.skip("ttl_zero" if ttl == 0 else "too_large")
        return entry_id

    def _lookup_started(
        self,
        config: FlowConfig,
        plan: RequestPlan,
        max_age: float | None,
        semantic_tool_calls: bool,
    ) -> tuple[Flow, float, float]:
        """A lookup's flow, the time it started and its deadline (``lookup_timeout`` later)."""
        started = time.perf_counter()
        flow = lookup_flow(
            config, plan, max_age=max_age, semantic_tool_calls=semantic_tool_calls, now=self.clock()
        )
        return flow, started, started + self.settings.lookup_timeout

    def _gave_up(self, error: Exception, deadline: float | None) -> None:
        """Count an operation that gave up on the cache (the caller returns None), or re-raise
        a ``BackendError`` that came before ``deadline``. The sync and async drivers differ only
        in how a deadline surfaces (``DeadlineExceeded`` / ``TimeoutError``): a timeout skip."""
        if isinstance(error, Overloaded):
            self.events.skip("overloaded")
        elif isinstance(error, BreakerOpenError):
            pass  # counted as a skip when the breaker refused
        elif isinstance(error, BackendError):
            if deadline is None or time.perf_counter() < deadline:
                raise error
            # Redis replied too slowly: a miss, and a breaker failure. On Python 3.11 a Redis
            # client timeout due in the same event-loop turn as the deadline can win the race
            # and surface instead of the cancellation.
            self.events.skip("timeout")
        else:  # DeadlineExceeded (sync) or TimeoutError (async)
            self.events.skip("timeout")

    def _finish(self, plan: RequestPlan, result: LookupResult, started: float) -> CacheHit | None:
        if result.hit is not None and not self.settings.serve:  # shadow mode: record, serve none
            self._auditor.shadowed(plan.entry_id, plan.prompt, result.hit)
            result = LookupResult(None, "misses", result.vector)
        if result.outcome == "skipped":  # the text is too long to embed
            self.events.skip("too_long")
        else:
            self.events.lookup_done(result.outcome, time.perf_counter() - started, result.hit)
        return result.hit

    # -- public API ------------------------------------------------------------------------

    def lookup(
        self,
        messages: Messages,
        model: str,
        params: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        max_age: float | None = None,
        semantic_tool_calls: bool = False,
    ) -> CacheHit | None:
        """Find a cached answer for this request, or None. Raises ``SemcacheError`` subclasses."""
        plan = self._planned(messages, model, params, namespace)
        if plan is None:
            return None
        config = self.config
        flow, started, deadline = self._lookup_started(config, plan, max_age, semantic_tool_calls)
        try:
            result = self._run(flow, deadline)
        except (Overloaded, BreakerOpenError, DeadlineExceeded, BackendError) as error:
            self._gave_up(error, deadline)
            return None
        return self._finish(plan, result, started)

    async def alookup(
        self,
        messages: Messages,
        model: str,
        params: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        max_age: float | None = None,
        semantic_tool_calls: bool = False,
    ) -> CacheHit | None:
        """Async twin of :meth:`lookup`; embedding runs in a thread, bounded by lookup_timeout."""
        plan = self._planned(messages, model, params, namespace)
        if plan is None:
            return None
        config = await self._aconfig()
        flow, started, deadline = self._lookup_started(config, plan, max_age, semantic_tool_calls)
        try:
            result = await asyncio.wait_for(
                self._arun(flow, deadline, timed=True), self.settings.lookup_timeout
            )
        except (Overloaded, BreakerOpenError, TimeoutError, BackendError) as error:
            self._gave_up(error, deadline)
            return None
        return self._finish(plan, result, started)

    def store(
        self,
        messages: Messages,
        response: Any,
        model: str,
        params: Mapping[str, Any] | None = None,
        ttl: float | timedelta | None = None,
        *,
        namespace: str | None = None,
        exact_only: bool = False,
    ) -> str | None:
        """Cache ``response`` (any JSON value); returns the entry id or None. ``ttl``: seconds
        (``_ttl.validate_ttl``; 0 = do not store), checked before anything is written."""
        seconds = entry_ttl(ttl, self.settings.ttl)
        plan = self._planned(messages, model, params, namespace)
        if plan is None:
            return None
        self._auditor.stored(plan.entry_id, response)  # judges a hit withheld for this request
        flow = self._store_flow(self.config, plan, response, seconds, exact_only)
        try:
            return self._stored(self._run(flow), seconds)
        except BreakerOpenError:
            return None  # counted as a skip

    async def astore(
        self,
        messages: Messages,
        response: Any,
        model: str,
        params: Mapping[str, Any] | None = None,
        ttl: float | timedelta | None = None,
        *,
        namespace: str | None = None,
        exact_only: bool = False,
    ) -> str | None:
        """Async twin of :meth:`store`; under overload (embedding queue longer than
        ``lookup_timeout``) the store is skipped rather than queued."""
        seconds = entry_ttl(ttl, self.settings.ttl)
        plan = self._planned(messages, model, params, namespace)
        if plan is None:
            return None
        self._auditor.stored(plan.entry_id, response)  # judges a hit withheld for this request
        flow = self._store_flow(await self._aconfig(), plan, response, seconds, exact_only)
        try:
            result = await self._arun(flow, time.perf_counter() + self.settings.lookup_timeout)
        except (Overloaded, BreakerOpenError) as error:
            self._gave_up(error, None)
            return None
        return self._stored(result, seconds)

    def store_many(
        self,
        items: Iterable[WarmItem | Mapping[str, Any]],
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Pre-load many entries with batched embeddings; returns how many were written.

        ``items`` are ``WarmItem``s or plain records (``prompt``/``messages``, ``system``,
        ``response`` as text or a chat message, ``model``, ``params``): a record's answer is
        stored in the neutral format every adapter renders."""
        return store_many(self, items, batch_size=batch_size, progress=progress)

    def _invalidation(
        self, system_prompt: str | Sequence[str] | None, model: str | None, namespace: str | None
    ) -> Flow:
        """The invalidation flow, its filters checked first (:func:`invalidation_filter`)."""
        return invalidate_flow(self.config, **invalidation_filter(system_prompt, model, namespace))

    def invalidate(
        self,
        *,
        system_prompt: str | Sequence[str] | None = None,
        model: str | None = None,
        namespace: str | None = None,
    ) -> int:
        """Remove entries matching every given part (all namespaces unless one is given); from
        then on no matching entry is served, even one stored later for an earlier lookup.
        Raises ``ConfigurationError`` without a filter or with an empty or invalid one."""
        return int(self._run(self._invalidation(system_prompt, model, namespace)))

    async def ainvalidate(
        self,
        *,
        system_prompt: str | Sequence[str] | None = None,
        model: str | None = None,
        namespace: str | None = None,
    ) -> int:
        """Async twin of :meth:`invalidate`."""
        return int(await self._arun(self._invalidation(system_prompt, model, namespace)))

    def _deletion(self, entry_id: str) -> Flow:
        if not isinstance(entry_id, str) or not _ENTRY_ID.fullmatch(entry_id):
            raise ConfigurationError("an entry id is the 32 hex digits a hit reports")
        return single_op(DeleteKeys((self.layout.key(entry_id),)))

    def delete(self, entry_id: str) -> bool:
        """Remove one entry by the id a hit reports (``hit.entry_id``); whether it existed."""
        return bool(self._run(self._deletion(entry_id)))

    async def adelete(self, entry_id: str) -> bool:
        """Async twin of :meth:`delete`."""
        await self._aconfig()  # the index layout names the key; never load the model on the loop
        return bool(await self._arun(self._deletion(entry_id)))

    def clear(self) -> int:
        """Remove every entry of this core's namespace (current embedding version)."""
        return self.invalidate(namespace=self.settings.namespace)

    async def aclear(self) -> int:
        """Async twin of :meth:`clear`."""
        return await self.ainvalidate(namespace=self.settings.namespace)

    def add_observer(self, observer: CacheObserver) -> None:
        """Report every cache event to ``observer``'s ``count``/``skip``/``lookup_done`` too
        (the older form of ``core.events.subscribe``)."""
        self.events.subscribe(observe(observer))

    def drain_audits(self, timeout: float | None = None) -> bool:
        """Wait for the audits under way to be judged and written; False if ``timeout`` ran out."""
        return self._auditor.drain(timeout)

    def stats(self) -> dict[str, object]:
        """Counters and lookup latency percentiles since this core was created."""
        snapshot = self._counters.snapshot()
        snapshot["breaker_open"] = self._breaker.is_open
        snapshot["breaker_state"] = self._breaker.state
        return snapshot
