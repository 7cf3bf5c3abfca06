"""Prometheus metrics: a scripted run's counts appear exactly in the /metrics text."""

from __future__ import annotations

import os
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from semcache_plugins import CacheCore, Embedder
from semcache_plugins.metrics import PrometheusMetrics, instrument, litellm_cost, response_usage

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

SYSTEM = {"role": "system", "content": "You are a support agent."}
STORED = [
    "How do I reset my password?",
    "What are your opening hours?",
    "How can I cancel my subscription?",
]
SEMANTIC = ["I forgot my password, how can I reset it?", "I want to cancel my subscription, how?"]
MISSES = ["What is the capital of Australia?", "Write a haiku about autumn leaves."]


def _messages(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def _response(i: int) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "choices": [{"message": {"role": "assistant", "content": f"answer {i}"}}],
        "usage": {"prompt_tokens": 10 + i, "completion_tokens": 100 * (i + 1)},
    }


def _fake_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    assert model == "gpt-4o-mini"
    return prompt_tokens * 0.5 + completion_tokens * 0.25


def _sample(text: str, line: str) -> float:
    """The value of the sample whose name and labels are ``line``."""
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    raise AssertionError(f"{line} not in the metrics output")


def test_scripted_run_counts(redis_url: str, index_prefix: str, embedder: Embedder) -> None:
    registry = CollectorRegistry()
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as core:
        metrics = PrometheusMetrics(core, registry, cost=_fake_cost)
        for i, text in enumerate(STORED):  # N = 3 stores
            assert core.store(_messages(text), _response(i), model="gpt-4o-mini")
        served: list[dict[str, Any]] = []
        for text in STORED[:2]:  # M = 2 exact hits
            hit = core.lookup(_messages(text), "gpt-4o-mini")
            assert hit is not None and hit.tier == "exact"
            served.append(hit.response)
        for text in SEMANTIC:  # K = 2 semantic hits
            hit = core.lookup(_messages(text), "gpt-4o-mini")
            assert hit is not None and hit.tier == "semantic", text
            served.append(hit.response)
        for text in MISSES:  # L = 2 misses
            assert core.lookup(_messages(text), "gpt-4o-mini") is None
        assert core.lookup([], "gpt-4o-mini") is None  # one skipped request (no user turn)
        stats = core.stats()

    text = generate_latest(registry).decode()
    assert _sample(text, "semcache_stores_total") == 3
    assert _sample(text, 'semcache_hits_total{tier="exact"}') == 2
    assert _sample(text, 'semcache_hits_total{tier="semantic"}') == 2
    assert _sample(text, "semcache_misses_total") == 2
    assert _sample(text, "semcache_errors_total") == 0
    assert _sample(text, "semcache_lookup_seconds_count") == 6
    assert 0 < _sample(text, "semcache_lookup_seconds_sum") < 60
    assert _sample(text, 'semcache_skipped_total{reason="no_messages"}') == stats["skipped"] == 1
    prompt = sum(r["usage"]["prompt_tokens"] for r in served)
    completion = sum(r["usage"]["completion_tokens"] for r in served)
    assert _sample(text, 'semcache_tokens_saved_total{kind="prompt"}') == prompt
    assert _sample(text, 'semcache_tokens_saved_total{kind="completion"}') == completion
    expected_cost = sum(_fake_cost("gpt-4o-mini", *response_usage(r)[1:]) for r in served)
    assert _sample(text, "semcache_cost_saved_usd_total") == pytest.approx(expected_cost)
    assert _sample(text, "semcache_guard_rejections_total") == stats["guard_rejections"]
    assert metrics.core is core


def test_failing_observer_never_fails_the_cache(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> None:
    class Broken:
        def _boom(self, *args: object) -> None:
            raise RuntimeError("boom")

        count = skip = lookup_done = _boom

    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as core:
        core.add_observer(Broken())
        core.store(_messages("ping"), "pong", model="m")
        hit = core.lookup(_messages("ping"), "m")
    assert hit is not None and hit.response == "pong"


def test_instrument_accepts_an_adapter_and_rejects_others(embedder: Embedder) -> None:
    core = CacheCore(redis_url="redis://127.0.0.1:1", embedder=embedder)

    class Adapter:
        def __init__(self) -> None:
            self.core = core

    metrics = instrument(Adapter(), CollectorRegistry())
    assert metrics.core is core
    with pytest.raises(TypeError, match="CacheCore or a cache adapter"):
        instrument(object(), CollectorRegistry())


def test_usage_and_litellm_cost() -> None:
    import litellm

    assert response_usage({"model": "m", "usage": {"prompt_tokens": 3}}) == ("m", 3, 0)
    assert response_usage("plain text") == (None, 0, 0)
    assert response_usage({"usage": {"prompt_tokens": "x", "completion_tokens": -1}}) == (
        None,
        0,
        0,
    )
    prompt_cost, completion_cost = litellm.cost_per_token(
        model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=500
    )
    assert litellm_cost("gpt-4o-mini", 1000, 500) == pytest.approx(prompt_cost + completion_cost)
    assert litellm_cost("gpt-4o-mini", 1000, 500) > 0
    assert litellm_cost("no-such-model-xyz", 1000, 500) == 0.0
