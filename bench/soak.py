"""Soak: many concurrent async callers for minutes; errors, p99 latency over time and process RSS.

Each caller loops: pick a question (``--repeat`` of the time one asked before, else a new Quora
question), ``alookup``; on a miss, ``astore`` an answer. Every error is counted (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from pathlib import Path

import numpy as np

from semcache_plugins import CacheCore

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "qqp_gptcache"
SYSTEM = {"role": "system", "content": "Answer questions from a Q&A site."}


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class Soak:
    """Shared state of one soak run."""

    def __init__(self, core: CacheCore, questions: list[str], repeat: float, seed: int) -> None:
        self.core = core
        self.fresh = iter(questions)
        self.asked: list[str] = []
        self.repeat = repeat
        self.random = random.Random(seed)
        self.samples: list[tuple[float, float, str]] = []  # (time, latency ms, outcome)
        self.errors = 0

    def next_question(self) -> str:
        if self.asked and self.random.random() < self.repeat:
            return self.random.choice(self.asked)
        question = next(self.fresh, None) or f"Unique question {uuid.uuid4().hex}?"
        self.asked.append(question)
        return question

    async def caller(self, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            messages = [SYSTEM, {"role": "user", "content": self.next_question()}]
            started = time.perf_counter()
            try:
                hit = await self.core.alookup(messages, "soak-llm", {"temperature": 0})
                if hit is None:
                    await self.core.astore(
                        messages, {"answer": "ok"}, "soak-llm", {"temperature": 0}
                    )
                outcome = "miss" if hit is None else hit.tier
            except Exception:  # every failure is counted: the goal is zero
                self.errors += 1
                outcome = "error"
            self.samples.append((time.monotonic(), (time.perf_counter() - started) * 1e3, outcome))


async def run(redis_url: str, callers: int, seconds: float, repeat: float, window: float) -> None:
    rows = json.loads((DATA / "similiar_qqp_full.json").read_text())
    questions = list(dict.fromkeys(r["text_a"] for r in rows))
    core = CacheCore(redis_url=redis_url, index_prefix=f"soak-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(core.embedder.load)
    soak = Soak(core, questions, repeat, seed=7)
    start = time.monotonic()
    stop_at = start + seconds
    rss: list[tuple[float, float]] = [(0.0, rss_mb())]

    async def sample_rss() -> None:
        while time.monotonic() < stop_at:
            await asyncio.sleep(window)
            rss.append((time.monotonic() - start, rss_mb()))

    await asyncio.gather(sample_rss(), *(soak.caller(stop_at) for _ in range(callers)))
    print(f"## Soak: {callers} concurrent async callers, {repeat:.0%} repeats, {seconds:.0f} s\n")
    print(
        f"{'window s':>9} {'lookups':>8} {'hits':>6} {'errors':>6} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'RSS MB':>7}"
    )
    for i, (at, mb) in enumerate(rss[1:], start=1):
        lo, hi = start + rss[i - 1][0], start + at
        chunk = [(ms, o) for t, ms, o in soak.samples if lo <= t < hi]
        lat = [ms for ms, _ in chunk]
        hits = sum(o in ("exact", "semantic") for _, o in chunk)
        errors = sum(o == "error" for _, o in chunk)
        p50, p99 = (np.percentile(lat, 50), np.percentile(lat, 99)) if lat else (0, 0)
        print(f"{at:9.0f} {len(chunk):8d} {hits:6d} {errors:6d} {p50:8.1f} {p99:8.1f} {mb:7.1f}")
    settled = [mb for at, mb in rss if at >= min(60.0, seconds / 3)]
    growth = (settled[-1] - settled[0]) if len(settled) > 1 else 0.0
    stats = core.stats()
    print(
        f"\ntotal lookups {len(soak.samples)}, errors {soak.errors}, "
        f"hits exact {stats['hits_exact']} semantic {stats['hits_semantic']}, "
        f"skipped {stats['skipped_by_reason']}"
    )
    print(
        f"RSS after warm-up: {settled[0]:.1f} -> {settled[-1]:.1f} MB ({growth:+.1f} MB)"
        if settled
        else "RSS: too short to judge"
    )
    print(f"embedding batch sizes: max {max(core._work.batcher.batch_sizes() or [0])}")
    await core.ainvalidate(namespace=core.settings.namespace)
    await core.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--repeat", type=float, default=0.5)
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args(argv)
    asyncio.run(run(args.redis_url, args.callers, args.seconds, args.repeat, args.window))


if __name__ == "__main__":
    main()
