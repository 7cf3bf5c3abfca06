"""Prometheus metrics for a cache (extra ``metrics``: ``pip install prometheus_client``).

```python
from prometheus_client import start_http_server
from semcache_plugins.metrics import PrometheusMetrics

PrometheusMetrics(core)          # or a SemCache / LangChainSemCache adapter
start_http_server(9464)          # GET /metrics
```

The metrics subscribe to the core's event stream (``core.events``), the same events
``core.stats()`` counts, so the two agree and nothing is polled.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ._cache._core import CacheCore
from ._cache._events import CacheEvent
from ._precision._audit import false_hit_estimate
from ._types import CacheHit

__all__ = ["CostFunction", "PrometheusMetrics", "instrument", "litellm_cost", "response_usage"]

logger = logging.getLogger("semcache_plugins")

#: ``(model, prompt_tokens, completion_tokens) -> USD`` the cached answer saved.
CostFunction = Callable[[str, int, int], float]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_TIERS = {"hits_exact": "exact", "hits_semantic": "semantic"}


def response_usage(response: Any) -> tuple[str | None, int, int]:
    """``(model, prompt_tokens, completion_tokens)`` of an OpenAI-style response dict, else 0s."""
    if not isinstance(response, Mapping):
        return None, 0, 0
    usage = response.get("usage")
    model = response.get("model")
    model = model if isinstance(model, str) and model else None
    if not isinstance(usage, Mapping):
        return model, 0, 0

    def tokens(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and value > 0 else 0

    return model, tokens("prompt_tokens"), tokens("completion_tokens")


def litellm_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD per ``litellm.cost_per_token``; 0 without litellm or for an unknown model."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import
    try:
        import litellm
    except ImportError:
        return 0.0
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:  # litellm raises assorted errors for unknown models
        logger.debug("semcache: no litellm price for model %r", model)
        return 0.0
    return float(prompt_cost) + float(completion_cost)


class PrometheusMetrics:
    """Counters and a latency histogram fed by a ``CacheCore``'s events.

    ``target``: a ``CacheCore`` or an adapter holding one (``SemCache``, ``LangChainSemCache``).
    ``registry``: where the metrics are registered (default: prometheus_client's global one).
    ``cost``: prices the tokens a hit saved (default :func:`litellm_cost`).
    """

    def __init__(
        self,
        target: Any,
        registry: CollectorRegistry | None = None,
        *,
        prefix: str = "semcache",
        cost: CostFunction | None = None,
    ) -> None:
        self.core = _core_of(target)
        self.registry = registry if registry is not None else REGISTRY
        self._cost = cost if cost is not None else litellm_cost
        reg = self.registry
        self.hits = Counter(f"{prefix}_hits", "Lookups answered, by tier.", ["tier"], registry=reg)
        self.misses = Counter(f"{prefix}_misses", "Lookups not answered.", registry=reg)
        self.skipped = Counter(
            f"{prefix}_skipped",
            "Requests that bypassed the cache, by reason.",
            ["reason"],
            registry=reg,
        )
        self.errors = Counter(f"{prefix}_errors", "Cache operations that failed.", registry=reg)
        self.stores = Counter(f"{prefix}_stores", "Entries written.", registry=reg)
        self.guard_rejections = Counter(
            f"{prefix}_guard_rejections", "Candidates refused by the guards.", registry=reg
        )
        self.lookup_seconds = Histogram(
            f"{prefix}_lookup_seconds",
            "Latency of finished lookups.",
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.tokens_saved = Counter(
            f"{prefix}_tokens_saved",
            "Tokens of cached responses served, by kind.",
            ["kind"],
            registry=reg,
        )
        self.cost_saved = Counter(
            f"{prefix}_cost_saved_usd", "Estimated USD saved by hits.", registry=reg
        )
        self.shadow_hits = Counter(
            f"{prefix}_shadow_hits",
            "Shadow mode (serve=False): hits found and not served, by tier.",
            ["tier"],
            registry=reg,
        )
        self.audited = Counter(
            f"{prefix}_audited", "Semantic hits compared with a fresh answer.", registry=reg
        )
        self.audit_disagreements = Counter(
            f"{prefix}_audit_disagreements",
            "Audited semantic hits whose fresh answer differed.",
            registry=reg,
        )
        self.false_hit_rate = Gauge(
            f"{prefix}_false_hit_rate",
            "Estimated false-hit rate of semantic hits (estimate, 95% Wilson low / high).",
            ["bound"],
            registry=reg,
        )
        self._audits = [0, 0]  # audited, disagreements (since these metrics were attached)
        for bound in ("estimate", "low", "high"):
            self.false_hit_rate.labels(bound=bound).set_function(partial(self._estimate, bound))
        for tier in _TIERS.values():
            self.hits.labels(tier=tier)
            self.shadow_hits.labels(tier=tier)
        for kind in ("prompt", "completion"):
            self.tokens_saved.labels(kind=kind)
        self.core.events.subscribe(self.record)

    def record(self, event: CacheEvent) -> None:
        """Count one cache event (subscribed to ``core.events``)."""
        if event.kind == "lookup":
            self._lookup(event.name, event.seconds, event.hit)
        elif event.kind == "skip":
            self.skipped.labels(reason=event.name).inc()
        elif event.kind == "store":
            self.stores.inc(event.n)
        else:
            self._count(event.name, event.n)

    def _count(self, name: str, n: int) -> None:
        if name == "errors":
            self.errors.inc(n)
        elif name == "guard_rejections":
            self.guard_rejections.inc(n)
        elif name == "audited":
            self._audits[0] += n
            self.audited.inc(n)
        elif name == "audit_disagreements":
            self._audits[1] += n
            self.audit_disagreements.inc(n)
        elif name.startswith("shadow_hits_"):
            self.shadow_hits.labels(tier=name.removeprefix("shadow_hits_")).inc(n)

    def _estimate(self, bound: str) -> float:
        """The gauge's value: NaN before any audit."""
        audited, disagreements = self._audits
        estimate = false_hit_estimate(audited, min(disagreements, audited))
        key = {"estimate": "false_hit_rate", "low": "false_hit_rate_low"}.get(
            bound, "false_hit_rate_high"
        )
        value = estimate[key]
        return float("nan") if value is None or not audited else value

    def _lookup(self, outcome: str, seconds: float, hit: CacheHit | None) -> None:
        self.lookup_seconds.observe(seconds)
        tier = _TIERS.get(outcome)
        if tier is None:
            self.misses.inc()
            return
        self.hits.labels(tier=tier).inc()
        if hit is not None:
            self._saved(hit.response)

    def _saved(self, response: Any) -> None:
        model, prompt_tokens, completion_tokens = response_usage(response)
        self.tokens_saved.labels(kind="prompt").inc(prompt_tokens)
        self.tokens_saved.labels(kind="completion").inc(completion_tokens)
        if model and (prompt_tokens or completion_tokens):
            self.cost_saved.inc(max(0.0, self._cost(model, prompt_tokens, completion_tokens)))


def _core_of(target: Any) -> CacheCore:
    """``target`` itself, or the ``core`` every adapter exposes (``SemCache.core``, ...)."""
    if isinstance(target, CacheCore):
        return target
    core = getattr(target, "core", None)
    if isinstance(core, CacheCore):
        return core
    raise TypeError(f"expected a CacheCore or a cache adapter, got {type(target).__name__}")


def instrument(
    target: Any, registry: CollectorRegistry | None = None, *, cost: CostFunction | None = None
) -> PrometheusMetrics:
    """Attach Prometheus metrics to a core or adapter; returns the metrics object."""
    return PrometheusMetrics(target, registry, cost=cost)
