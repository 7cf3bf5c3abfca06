"""One event stream: ``stats()``, Prometheus and subscribers count the same events, and one
operation that bypasses the cache is one skip (an over-long request used to count several)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from semcache_plugins import CacheCore, CacheEvent
from semcache_plugins.metrics import PrometheusMetrics

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "gpt-4o-mini"
LONG = "please help me with this " * 120  # far over the model's 256 tokens
SHORT = "How do I reset my password?"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def answer(text: str) -> dict[str, Any]:
    return {"model": MODEL, "choices": [{"message": {"role": "assistant", "content": text}}]}


def sync_request(core: CacheCore, text: str) -> None:
    """What an adapter does for one call: look up, and store the provider's answer on a miss."""
    if core.lookup(ask(text), MODEL) is None:
        core.store(ask(text), answer("fresh"), MODEL)


def async_request(core: CacheCore, text: str) -> None:
    async def run() -> None:
        if await core.alookup(ask(text), MODEL) is None:
            await core.astore(ask(text), answer("fresh"), MODEL)

    asyncio.run(run())


def litellm_request(core: CacheCore, text: str) -> None:
    import litellm

    from semcache_plugins.litellm import SemCache

    previous = litellm.cache
    litellm.cache = SemCache(core=core)
    try:
        litellm.completion(model=MODEL, messages=ask(text), mock_response="fresh")
    finally:
        litellm.cache = previous


def warm_request(core: CacheCore, text: str) -> None:
    core.store_many([{"prompt": text, "response": "fresh", "model": MODEL}])


def huge_store(core: CacheCore, text: str) -> None:
    assert core.store(ask(text), "word " * 300_000, MODEL) is None


def ttl_zero_store(core: CacheCore, text: str) -> None:
    assert core.store(ask(text), answer("fresh"), MODEL, ttl=0) is None


def empty_lookup(core: CacheCore, text: str) -> None:
    assert core.lookup(ask("   "), MODEL) is None


Operation = Callable[[CacheCore, str], None]

# (operation, text, the skips it must count, lookups finished, entries written)
CASES: list[tuple[Operation, str, dict[str, int], int, int]] = [
    (sync_request, LONG, {"too_long": 1}, 0, 1),  # the lookup skips; the store writes (exact)
    (async_request, LONG, {"too_long": 1}, 0, 1),
    (litellm_request, LONG, {"too_long": 1}, 0, 1),
    (warm_request, LONG, {"too_long": 1}, 0, 0),
    (huge_store, SHORT, {"too_large": 1}, 0, 0),
    (ttl_zero_store, SHORT, {"ttl_zero": 1}, 0, 0),
    (empty_lookup, SHORT, {"empty_text": 1}, 0, 0),
    # controls: a request the cache handles counts no skip
    (sync_request, SHORT, {}, 1, 1),
    (async_request, SHORT, {}, 1, 1),
    (litellm_request, SHORT, {}, 1, 1),
    (warm_request, SHORT, {}, 0, 1),
]


def prometheus_counts(registry: CollectorRegistry) -> dict[str, float]:
    """Every sample of the text exposition, by its line name (labels included)."""
    samples = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.mark.parametrize(
    ("operation", "text", "skips", "lookups", "stores"),
    CASES,
    ids=[f"{case[0].__name__}-{'long' if case[1] == LONG else 'short'}" for case in CASES],
)
def test_one_operation_counts_once_everywhere(
    make_core: Callable[..., CacheCore],
    operation: Operation,
    text: str,
    skips: dict[str, int],
    lookups: int,
    stores: int,
) -> None:
    core = make_core()
    registry = CollectorRegistry()
    PrometheusMetrics(core, registry, cost=lambda *_: 0.0)
    seen: list[CacheEvent] = []
    core.events.subscribe(seen.append)

    operation(core, text)

    stats = core.stats()
    assert stats["skipped_by_reason"] == skips
    assert stats["skipped"] == sum(skips.values())
    assert stats["skipped_too_long"] == skips.get("too_long", 0)
    assert (stats["lookups"], stats["stores"]) == (lookups, stores)
    metrics = prometheus_counts(registry)
    for reason, n in skips.items():
        assert metrics[f'semcache_skipped_total{{reason="{reason}"}}'] == n
    prom_skips = sum(v for k, v in metrics.items() if k.startswith("semcache_skipped_total"))
    assert prom_skips == stats["skipped"]
    assert metrics["semcache_lookup_seconds_count"] == stats["lookups"]
    assert metrics["semcache_stores_total"] == stats["stores"]
    kinds = Counter(event.kind for event in seen)
    assert kinds["skip"] == stats["skipped"] and kinds["lookup"] == stats["lookups"]
    assert sum(event.n for event in seen if event.kind == "store") == stats["stores"]


def test_an_over_long_request_repeated_is_an_exact_hit(make_core: Callable[..., CacheCore]) -> None:
    core = make_core()
    sync_request(core, LONG)
    hit = core.lookup(ask(LONG), MODEL)
    assert hit is not None and hit.tier == "exact"
    assert core.lookup(ask(LONG + " now"), MODEL) is None  # never cut to fit: another skip
    stats = core.stats()
    assert stats["skipped_by_reason"] == {"too_long": 2}
    assert (stats["lookups"], stats["hits_exact"], stats["stores"]) == (1, 1, 1)


def test_subscribers_see_each_event_and_can_leave(make_core: Callable[..., CacheCore]) -> None:
    core = make_core()
    seen: list[CacheEvent] = []
    leave = core.events.subscribe(seen.append)

    def broken(event: CacheEvent) -> None:
        raise RuntimeError("boom")

    core.events.subscribe(broken)  # a failing subscriber never fails the cache call
    core.store(ask(SHORT), answer("A"), MODEL)
    hit = core.lookup(ask(SHORT), MODEL)
    assert hit is not None
    assert [(e.kind, e.name, e.n) for e in seen] == [
        ("count", "embeddings", 1),
        ("store", "stores", 1),
        ("lookup", "hits_exact", 1),
    ]
    assert seen[-1].hit == hit and seen[-1].seconds > 0
    leave()
    core.lookup(ask("Where is your head office?"), MODEL)
    assert len(seen) == 3
    assert core.stats()["lookups"] == 2  # stats() is a subscriber that never leaves
