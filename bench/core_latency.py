"""Lookup latency of CacheCore by tier (exact hit, semantic hit, miss) at several cache sizes.

Entries are real questions, all in ONE scope, the worst case for the filtered HNSW query: Quora
questions with ``--quora`` (or ``../shared/datasets/qqp_gptcache``), else the shipped datasets
(``bench.data``). Semantic hits are queried with the paired duplicate question.
Embeddings are computed once and kept under ``--cache`` so re-runs only pay for Redis.

"exact repeat" rows time entries already read once (the pairs' stored sides), through the
in-process L1 (on by default) and a second core on the same index without it, in alternating
rounds (``bench.l1_speed``'s timing); then another client deletes entries the L1 holds and the
next lookups are checked for stale hits (``bench.l1_speed.coherence``).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.data import add_quora_arguments, question_rows, quora_from
from bench.l1_speed import coherence, repeat_ms
from semcache_plugins import CacheCore, Embedder
from semcache_plugins._cache._warm import WarmItem
from semcache_plugins._cli._cache import drop_index

SYSTEM = {"role": "system", "content": "Answer questions from a Q&A site."}
PARAMS = {"temperature": 0}
MODEL = "bench-llm"
#: Exact-repeat timing: alternating rounds of L1 on / off, lookups per round.
REPEAT_ROUNDS = 5
REPEAT_CALLS = 2000
#: Invalidation trials (another client's DEL of an entry the L1 holds), at most.
INVALIDATION_TRIALS = 100


def ask(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def load_questions(
    limit: int, quora: Path | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """Distinct questions to fill the cache, and duplicate pairs (stored, query)."""
    rows = question_rows(quora)[1]
    pairs = [(r["text_a"], r["text_b"]) for r in rows if r["label"] == 1][:2000]
    seen = {a for a, _ in pairs} | {b for _, b in pairs}
    fill: list[str] = []
    for row in rows:
        for text in (row["text_a"], row["text_b"]):
            if text not in seen:
                seen.add(text)
                fill.append(text)
        if len(fill) >= limit:
            break
    return fill[:limit], pairs


def tag(quora: Path | None) -> str:
    """The prefix of disk-cached vector files: one per question source."""
    return "qqp" if quora is not None else "shipped"


def cached_vectors(embedder: Embedder, texts: list[str], cache: Path, tag: str) -> np.ndarray:
    """Embeddings of ``texts``, from ``cache`` if an identical run saved them."""
    path = cache / f"{tag}-{embedder.fingerprint.digest}-{len(texts)}.npy"
    if path.exists():
        return np.load(path)
    vectors = np.concatenate(
        [embedder.embed(texts[i : i + 256]) for i in range(0, len(texts), 256)]
    )
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def percentiles(ms: list[float]) -> str:
    if not ms:
        return "      -       -     0"
    return f"{np.percentile(ms, 50):7.2f} {np.percentile(ms, 99):7.2f} {len(ms):5d}"


def store_seeded(core: CacheCore, items: Sequence[tuple[str, Any, np.ndarray]]) -> None:
    """Store (question, answer, vector) rows, 512 per batch, their vectors seeded in the memo."""
    for start in range(0, len(items), 512):
        chunk = items[start : start + 512]
        for text, _, vector in chunk:
            core.internals.work.vectors.put(" ".join(text.split()), vector)
        core.store_many(
            (WarmItem(ask(text), answer, MODEL, PARAMS) for text, answer, _ in chunk),
            batch_size=512,
        )


def fill_cache(core: CacheCore, texts: list[str], vectors: np.ndarray) -> float:
    """Store every text (vectors pre-seeded in the memo); returns seconds taken."""
    started = time.perf_counter()
    store_seeded(
        core, [(t, {"a": i}, v) for i, (t, v) in enumerate(zip(texts, vectors, strict=True))]
    )
    return time.perf_counter() - started


def drop_cache(core: CacheCore) -> None:
    """Drop the cache's index with its entries and entry counts (as ``semcache indexes``), on a
    client of its own: dropping 100k documents outlasts the cache's 0.5 s socket timeout."""
    with redis.Redis.from_url(str(core.settings.redis_url), socket_timeout=600) as client:
        drop_index(client, core.layout.name)


def exact_repeats(
    on: CacheCore, off: CacheCore, stored: list[str], url: str, trials: int, out: Any, size: int
) -> None:
    """Rows "exact repeat (L1)" / "(no L1)": lookups of ``stored`` questions (each read once
    already), L1 on and off in alternating rounds; p50 = median of round medians (spread in
    the note), p99 over all; then another client's DEL of an entry ``on``'s L1 holds."""

    def request(i: int) -> tuple[list[dict[str, str]], str, dict[str, Any]]:
        return ask(stored[i]), MODEL, PARAMS

    times: dict[str, list[list[float]]] = {"L1": [], "no L1": []}
    for core in (on, off):  # warm-up: every entry read through each core once more
        repeat_ms(core, request, len(stored), len(stored))
    for _ in range(REPEAT_ROUNDS):
        for name, core in (("L1", on), ("no L1", off)):
            times[name].append(repeat_ms(core, request, REPEAT_CALLS, len(stored)))
    medians = {name: [statistics.median(r) for r in rounds] for name, rounds in times.items()}
    for name, rounds in times.items():
        pooled = [ms for r in rounds for ms in r]
        p50 = statistics.median(medians[name])
        out(
            f"{size:>8} {'exact repeat (' + name + ')':<20} {p50:7.3f} "
            f"{np.percentile(pooled, 99):7.3f} {len(pooled):5d}"
        )
    spread = {name: f"{min(m):.3f}-{max(m):.3f}" for name, m in medians.items()}
    ratio = statistics.median(medians["L1"]) / statistics.median(medians["no L1"])
    found = coherence(on, url, trials)
    out(
        f"{size:>8} {'(L1 notes)':<20} exact repeats of {len(stored)} entries read once before, "
        f"{REPEAT_ROUNDS} alternating rounds x {REPEAT_CALLS} lookups; p50 = median of round "
        f"medians (rounds: L1 {spread['L1']}, no L1 {spread['no L1']} ms; L1/no L1 "
        f"{ratio:.2f}x)"
    )
    out(f"{size:>8} {'(L1 invalidation)':<20} {found.summary()}")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - started) * 1000


def run(
    redis_url: str,
    sizes: list[int],
    samples: int,
    cache: Path,
    out: Any = print,
    quora: Path | None = None,
) -> None:
    embedder = Embedder()
    embedder.load()
    fill, pairs = load_questions(max(sizes), quora)
    if len(fill) < max(sizes):
        raise SystemExit(f"only {len(fill)} distinct questions; pass --quora or smaller --sizes")
    fill_vectors = cached_vectors(embedder, fill, cache, f"{tag(quora)}-fill")
    pairs = pairs[:samples]
    out("## Lookup latency by tier (ms; one scope; MiniLM fp32 on this machine)\n")
    out(f"questions: {question_rows(quora)[0]}\n")
    out(f"{'entries':>8} {'tier':<20} {'p50':>7} {'p99':>7} {'n':>5}")
    for size in sizes:
        core = CacheCore(
            redis_url=redis_url, index_prefix=f"bench-{uuid.uuid4().hex[:8]}", embedder=embedder
        )
        load_s = fill_cache(core, fill[:size], fill_vectors[:size])
        core.store_many(
            WarmItem(ask(a), {"pair": i}, MODEL, PARAMS) for i, (a, _) in enumerate(pairs)
        )
        core.internals.work.vectors.clear()  # queries must pay for their own embedding
        exact = [timed(partial(core.lookup, ask(a), MODEL, PARAMS))[1] for a, _ in pairs]
        semantic: list[float] = []
        miss: list[float] = []
        for i, (_, b) in enumerate(pairs):
            hit, ms = timed(partial(core.lookup, ask(b), MODEL, PARAMS))
            if hit is None:
                miss.append(ms)
            elif hit.response == {"pair": i}:
                semantic.append(ms)
        out(f"{size:>8} {'exact hit (1st read)':<20} {percentiles(exact)}")
        out(f"{size:>8} {'semantic hit':<20} {percentiles(semantic)}")
        out(f"{size:>8} {'miss':<20} {percentiles(miss)}")
        without_l1 = CacheCore(
            redis_url=redis_url,
            index_prefix=core.settings.index_prefix,
            embedder=embedder,
            l1_cache=False,
        )
        stored = [a for a, _ in pairs]
        trials = min(INVALIDATION_TRIALS, len(pairs))
        exact_repeats(core, without_l1, stored, redis_url, trials, out, size)
        out(f"{size:>8} {'(load)':<20} {load_s:7.1f}s for {size} entries")
        without_l1.close()
        drop_cache(core)
        core.close()
    embed_ms = [timed(partial(embedder.embed, [b]))[1] for _, b in pairs[:100]]
    out(
        f"\nembedding alone (one query): p50 {np.percentile(embed_ms, 50):.2f} ms, "
        f"p99 {np.percentile(embed_ms, 99):.2f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "semcache" / "bench")
    add_quora_arguments(parser)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    run(args.redis_url, sizes, args.samples, args.cache, quora=quora_from(args))


if __name__ == "__main__":
    main()
