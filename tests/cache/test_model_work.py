"""Model work off the event loop (issue #16): guards judged inline when they need no model, two
batches and two model calls under way at once, with the verdicts and vectors unchanged."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from semcache_plugins import Embedder
from semcache_plugins._cache._compute import ModelWork
from semcache_plugins._cache._events import EventStream
from semcache_plugins._cache._flows import GuardCheck
from semcache_plugins._cache._stats import CacheStats
from semcache_plugins._embedding._batcher import EmbedBatcher


def _work(embedder: Embedder) -> tuple[ModelWork, CacheStats]:
    stream, stats = EventStream(), CacheStats()
    stream.subscribe(stats.record)
    return ModelWork(embedder, stream), stats


# (query, cached, similarity, decided without the model)
GUARD_CASES = [
    ("Convert 5 km to miles", "Convert 6 km to miles", 0.97, True),  # number
    ("Is bus 12 late?", "Is bus 21 late?", 0.96, True),
    ("Can I park here?", "Can't I park here?", 0.95, True),  # negation
    ("How do I renew my passport?", "how do i renew my passport", 0.99, True),  # identical
    ("How do I renew my passport?", "How do I renew my pasport?", 0.96, True),  # >= small edit
    ("Show the weather for tomorrow", "Show tomorrow's weather", 0.95, True),
    ("How do I clean a sofa?", "How do I clean a carpet?", 0.90, False),  # phrase embedded
    ("How do I clean a sofa?", "How do I clean a couch?", 0.90, False),
    ("How do I clean a sofa?", "How do I clean a soft leather sofa?", 0.88, False),
]


@pytest.mark.parametrize(("query", "cached", "similarity", "inline"), GUARD_CASES)
def test_a_guard_judged_inline_says_what_the_threaded_guard_says(
    embedder: Embedder, query: str, cached: str, similarity: float, inline: bool
) -> None:
    work, stats = _work(embedder)
    op = GuardCheck(query, cached, similarity, threshold=0.85)
    quick = work.guard_without_model(op)
    assert (quick is not None) == inline
    full = work.guard(op)
    if quick is not None:
        assert quick == full
    # a refusal is counted once per judgement that reached a verdict
    assert stats.snapshot()["guard_rejections"] == (not full) * (1 + (quick is not None))


def test_a_template_judged_on_its_differing_sentences_goes_to_the_model(
    embedder: Embedder,
) -> None:
    context = "Here is the ticket text. It was filed by a customer in the billing team today. "
    op = GuardCheck(context + "Summarize it.", context + "Translate it to French.", 0.9)
    assert ModelWork(embedder, EventStream()).guard_without_model(op) is None


def test_the_learned_verifier_is_never_asked_inline(embedder: Embedder) -> None:
    work, _ = _work(embedder)
    op = GuardCheck("Is bus 12 late?", "Is bus 12 late today?", 0.97, verify=True)
    assert work.guard_without_model(op) is None


def _concurrency_probe() -> tuple[list[int], object]:
    running, peak, lock = [0], [0], threading.Lock()

    def embed(texts: Sequence[str]) -> list[np.ndarray | None]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            for _ in range(200):  # give a second batch the chance to start meanwhile
                if peak[0] >= 2:
                    break
                threading.Event().wait(0.005)
            return [np.full(4, len(text), dtype=np.float32) for text in texts]
        finally:
            with lock:
                running[0] -= 1

    return peak, embed


@pytest.mark.parametrize("max_running", [1, 2])
async def test_the_batcher_keeps_up_to_max_running_batches_under_way(max_running: int) -> None:
    peak, embed = _concurrency_probe()
    batcher = EmbedBatcher(embed, max_batch=4, max_running=max_running)  # type: ignore[arg-type]
    texts = [f"text {'x' * i}" for i in range(12)]
    vectors = await asyncio.gather(*(batcher.embed(text) for text in texts))
    assert [int(v[0]) for v in vectors if v is not None] == [len(text) for text in texts]
    assert peak[0] == max_running
    assert sum(batcher.batch_sizes()) == len(texts)


def test_concurrent_model_calls_give_the_vectors_of_serial_ones(embedder: Embedder) -> None:
    texts = [
        "How do I renew my passport?",
        "Where can I recycle old batteries?",
        "What is the capital of Australia?",
        "How do I clean a sofa without damaging the fabric?",
    ]
    serial = [embedder.embed([text])[0] for text in texts]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            together = list(pool.map(lambda text: embedder.embed([text])[0], texts))
            for a, b in zip(serial, together, strict=True):
                np.testing.assert_allclose(a, b, atol=1e-6)
