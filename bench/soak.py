"""Soak: many concurrent async callers for minutes; errors, p99 latency over time and process RSS.

Each caller loops like an app behind an adapter: pick a question (``--repeat`` of the time one
asked before, else a new one: Quora's with ``--quora``, else the shipped datasets), ``alookup``;
on a miss, call the "LLM" (sleep ``--llm-delay``) and ``astore`` the answer. A ``SemcacheError``
is what the adapters turn into a fail-open miss: counted as *bypassed*. Any other exception is an
*error* (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from pathlib import Path

import numpy as np

from bench.core_latency import drop_cache
from bench.data import add_quora_arguments, question_rows, quora_from
from semcache_plugins import CacheCore, SemcacheError

SYSTEM = {"role": "system", "content": "Answer questions from a Q&A site."}


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class Soak:
    """Shared state of one soak run; latency samples are kept for the current window only."""

    def __init__(
        self, core: CacheCore, questions: list[str], repeat: float, llm_delay: float, seed: int
    ) -> None:
        self.core = core
        self.fresh = iter(questions)
        self.asked: list[str] = []
        self.repeat = repeat
        self.llm_delay = llm_delay
        self.random = random.Random(seed)
        self.window: list[tuple[float, str]] = []  # (cache latency ms, outcome)
        self.totals: dict[str, int] = {}

    def next_question(self) -> str:
        if self.asked and self.random.random() < self.repeat:
            return self.random.choice(self.asked)
        question = next(self.fresh, None) or f"Unique question {uuid.uuid4().hex}?"
        self.asked.append(question)
        return question

    async def one_call(self) -> None:
        messages = [SYSTEM, {"role": "user", "content": self.next_question()}]
        started = time.perf_counter()
        outcome = "miss"
        try:
            hit = await self.core.alookup(messages, "soak-llm", {"temperature": 0})
            outcome = "miss" if hit is None else hit.tier
        except SemcacheError:
            outcome = "bypassed"
        except Exception:  # a failure that would reach the user's call
            outcome = "error"
        cache_ms = (time.perf_counter() - started) * 1e3
        if outcome in ("miss", "bypassed"):
            await asyncio.sleep(self.llm_delay)  # the provider call
            started = time.perf_counter()
            try:
                await self.core.astore(messages, {"answer": "ok"}, "soak-llm", {"temperature": 0})
            except SemcacheError:
                pass  # fail open: the user already has the provider's answer
            except Exception:
                outcome = "error"
            cache_ms += (time.perf_counter() - started) * 1e3
        self.window.append((cache_ms, outcome))
        self.totals[outcome] = self.totals.get(outcome, 0) + 1

    async def caller(self, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            await self.one_call()

    def close_window(self) -> tuple[int, int, int, int, float, float]:
        """Calls, hits, bypassed, errors, p50 and p99 cache ms of the window; starts a new one."""
        chunk, self.window = self.window, []
        lat = [ms for ms, _ in chunk]
        hits = sum(o in ("exact", "semantic") for _, o in chunk)
        bypassed = sum(o == "bypassed" for _, o in chunk)
        errors = sum(o == "error" for _, o in chunk)
        p50, p99 = (float(np.percentile(lat, 50)), float(np.percentile(lat, 99))) if lat else (0, 0)
        return len(chunk), hits, bypassed, errors, p50, p99


async def run(
    redis_url: str,
    callers: int,
    seconds: float,
    repeat: float,
    window: float,
    llm_delay: float,
    quora: Path | None = None,
) -> None:
    rows = question_rows(quora)[1]
    questions = list(dict.fromkeys(r["text_a"] for r in rows))
    core = CacheCore(redis_url=redis_url, index_prefix=f"soak-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(core.embedder.load)
    soak = Soak(core, questions, repeat, llm_delay, seed=7)
    start = time.monotonic()
    stop_at = start + seconds
    print(
        f"## Soak: {callers} concurrent async callers, {repeat:.0%} repeats, "
        f"{llm_delay * 1000:.0f} ms LLM on a miss, {seconds:.0f} s\n"
    )
    print("cache ms = time spent in the cache per call (lookup, plus store on a miss)\n")
    print(
        f"{'window s':>9} {'calls':>7} {'hits':>6} {'bypass':>6} {'errors':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7}"
    )
    rss: list[tuple[float, float]] = []

    async def report() -> None:
        while time.monotonic() < stop_at:
            await asyncio.sleep(min(window, max(0.0, stop_at - time.monotonic())))
            at, mb = time.monotonic() - start, rss_mb()
            rss.append((at, mb))
            calls, hits, bypassed, errors, p50, p99 = soak.close_window()
            print(
                f"{at:9.0f} {calls:7d} {hits:6d} {bypassed:6d} {errors:6d} {p50:8.1f} "
                f"{p99:8.1f} {mb:7.1f}",
                flush=True,
            )

    await asyncio.gather(report(), *(soak.caller(stop_at) for _ in range(callers)))
    settled = [mb for at, mb in rss if at >= min(60.0, seconds / 3)]
    stats = core.stats()
    total = sum(soak.totals.values())
    print(f"\ncalls {total}: {soak.totals}; errors {soak.totals.get('error', 0)}")
    print(
        f"core: hits exact {stats['hits_exact']}, semantic {stats['hits_semantic']}, "
        f"skipped {stats['skipped_by_reason']}, errors {stats['errors']}"
    )
    if len(settled) > 1:
        print(
            f"RSS after warm-up: {settled[0]:.1f} -> {settled[-1]:.1f} MB "
            f"({settled[-1] - settled[0]:+.1f} MB)"
        )
    print(f"embedding batch sizes: max {max(core._work.batcher.batch_sizes() or [0])}")
    drop_cache(core)
    await core.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--repeat", type=float, default=0.5)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--llm-delay", type=float, default=0.4)
    add_quora_arguments(parser)
    args = parser.parse_args(argv)
    asyncio.run(
        run(
            args.redis_url,
            args.callers,
            args.seconds,
            args.repeat,
            args.window,
            args.llm_delay,
            quora_from(args),
        )
    )


if __name__ == "__main__":
    main()
