"""Soak: many concurrent async callers for minutes; errors, p99 latency over time and process RSS.

Each caller loops like an app behind an adapter: pick a question (``--repeat`` of the time one
asked before, else a new one: Quora's with ``--quora``, else the shipped datasets), ``alookup``;
on a miss, call the "LLM" (sleep ``--llm-delay``) and ``astore`` the answer. A ``SemcacheError``
is what the adapters turn into a fail-open miss: counted as *bypassed*. Any other exception is an
*error* (must be 0).

Each window also shows where the time went (``--stages``, on by default): the p50 ms of each
stage as the core awaited it (exact read, embedding incl. its queue, KNN, candidate read, guards,
entry write), the CPU share of this process and of the Redis main thread, and Redis's own
microseconds per call of FT.SEARCH and HSET (``INFO commandstats``: HSET includes indexing the
vector).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench.core_latency import cached_vectors, drop_cache, load_questions, tag
from bench.data import add_quora_arguments, question_rows, quora_from
from semcache_plugins import CacheCore, SemcacheError
from semcache_plugins._cache._warm import WarmItem

SYSTEM = {"role": "system", "content": "Answer questions from a Q&A site."}
MODEL = "soak-llm"
PREFILL_SOURCE = 100_000  # --prefill takes the first N of these questions
PARAMS = {"temperature": 0}


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


STAGES = ("ReadEntry", "embed", "Search", "ReadEntries", "guard", "WriteEntry")


class Stages:
    """Time each stage of the core as its flows await it (the core's own objects, timed only)."""

    def __init__(self, core: CacheCore, redis_url: str) -> None:
        self.ms: dict[str, list[float]] = {}
        self.redis: Any = redis.Redis.from_url(redis_url, decode_responses=True)
        self.last = self._readings()
        backend, work = core.internals.async_backend, core.internals.work
        execute, embed, guard = backend.execute, work.batcher.embed, work.guard

        async def timed_execute(op: Any, *args: Any) -> Any:
            return await self._time(type(op).__name__, lambda: execute(op, *args))

        async def timed_embed(*args: Any) -> Any:
            return await self._time("embed", lambda: embed(*args))

        def timed_guard(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return guard(*args)
            finally:
                self.ms.setdefault("guard", []).append((time.perf_counter() - started) * 1e3)

        # the core's own objects, wrapped to be timed (diagnostics only)
        setattr(backend, "execute", timed_execute)  # noqa: B010
        setattr(work.batcher, "embed", timed_embed)  # noqa: B010
        setattr(work, "guard", timed_guard)  # noqa: B010

    async def _time(self, stage: str, call: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        try:
            return await call()
        finally:
            self.ms.setdefault(stage, []).append((time.perf_counter() - started) * 1e3)

    def _readings(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = self.redis.info("cpu")
        stats = self.redis.info("commandstats")
        found = {
            "at": time.monotonic(),
            "client": usage.ru_utime + usage.ru_stime,
            "redis": float(cpu["used_cpu_user_main_thread"])
            + float(cpu["used_cpu_sys_main_thread"]),
        }
        for name in ("FT.SEARCH", "hset"):
            entry = stats.get(f"cmdstat_{name}", {})
            found[f"{name} calls"] = float(entry.get("calls", 0))
            found[f"{name} usec"] = float(entry.get("usec", 0))
        return found

    def close_window(self) -> str:
        """One line: p50 ms per stage, CPU % of this process and of Redis, Redis us per call."""
        now = self._readings()
        last, self.last = self.last, now
        span = now["at"] - last["at"]
        cells = []
        for stage in STAGES:
            ms = self.ms.pop(stage, [])
            cells.append(f"{np.percentile(ms, 50):8.2f}" if ms else f"{'-':>8}")
        self.ms.clear()
        for side in ("client", "redis"):
            cells.append(f"{100 * (now[side] - last[side]) / span:6.0f}")
        for name in ("FT.SEARCH", "hset"):
            calls = now[f"{name} calls"] - last[f"{name} calls"]
            usec = now[f"{name} usec"] - last[f"{name} usec"]
            cells.append(f"{usec / calls if calls else 0:7.0f}")
        return " ".join(cells)


def prefill_cache(
    core: CacheCore, entries: int, quora: Path | None, vectors_file: Path | None = None
) -> set[str]:
    """Store ``entries`` questions in the soak's scope before it starts (vectors computed once
    and cached as ``core_latency`` does); the soak then asks only other questions. With
    ``vectors_file`` (unit vectors computed elsewhere) the texts are placeholders."""
    if vectors_file is not None:
        vectors = np.load(vectors_file)[:entries]
        texts = [f"stored question number {i}" for i in range(len(vectors))]
    else:
        texts = load_questions(PREFILL_SOURCE, quora)[0]  # the latency bench's cached vectors
        cache = Path.home() / ".cache" / "semcache" / "bench"
        vectors = cached_vectors(core.embedder, texts, cache, f"{tag(quora)}-fill")[:entries]
        texts = texts[:entries]
    for text, vector in zip(texts, vectors, strict=True):
        core.internals.work.vectors.put(" ".join(text.split()), vector)
    started = time.perf_counter()
    core.store_many(
        (WarmItem([SYSTEM, {"role": "user", "content": t}], {"answer": "ok"}, MODEL, PARAMS))
        for t in texts
    )
    core.internals.work.vectors.clear()
    print(f"prefilled {len(texts):,} entries in {time.perf_counter() - started:.1f} s\n")
    return set(texts)


def stage_header() -> str:
    names = ("read", "embed", "knn", "cands", "guard", "write")
    return " ".join(
        [
            *(f"{n:>8}" for n in names),
            f"{'cpu%':>6}",
            f"{'redis%':>6}",
            f"{'ftus':>7}",
            f"{'hsetus':>7}",
        ]
    )


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
            hit = await self.core.alookup(messages, MODEL, PARAMS)
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
                await self.core.astore(messages, {"answer": "ok"}, MODEL, PARAMS)
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
    stages: bool = True,
    prefill: int = 0,
    prefill_vectors: Path | None = None,
) -> None:
    rows = question_rows(quora)[1]
    questions = list(dict.fromkeys(r["text_a"] for r in rows))
    core = CacheCore(redis_url=redis_url, index_prefix=f"soak-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(core.embedder.load)
    if prefill:
        stored = await asyncio.to_thread(prefill_cache, core, prefill, quora, prefill_vectors)
        questions = [q for q in questions if q not in stored]
    soak = Soak(core, questions, repeat, llm_delay, seed=7)
    timer = Stages(core, redis_url) if stages else None
    start = time.monotonic()
    stop_at = start + seconds
    print(
        f"## Soak: {callers} concurrent async callers, {repeat:.0%} repeats, "
        f"{llm_delay * 1000:.0f} ms LLM on a miss, {seconds:.0f} s\n"
    )
    print("cache ms = time spent in the cache per call (lookup, plus store on a miss)")
    if timer is not None:
        print(
            "then p50 ms per stage (read = exact tier, embed = the model incl. its queue, memo "
            "hits not counted, knn, cands = candidate records, write = store), CPU % of this "
            "process and of the Redis main thread, Redis us per FT.SEARCH and per HSET "
            "(indexing included)"
        )
    print(
        f"\n{'window s':>9} {'calls':>7} {'hits':>6} {'bypass':>6} {'errors':>6} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7}" + (f" {stage_header()}" if timer else "")
    )
    rss: list[tuple[float, float]] = []

    async def report() -> None:
        while time.monotonic() < stop_at:
            await asyncio.sleep(min(window, max(0.0, stop_at - time.monotonic())))
            at, mb = time.monotonic() - start, rss_mb()
            rss.append((at, mb))
            calls, hits, bypassed, errors, p50, p99 = soak.close_window()
            extra = f" {await asyncio.to_thread(timer.close_window)}" if timer else ""
            print(
                f"{at:9.0f} {calls:7d} {hits:6d} {bypassed:6d} {errors:6d} {p50:8.1f} "
                f"{p99:8.1f} {mb:7.1f}{extra}",
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
    print(f"embedding batch sizes: max {max(core.internals.work.batcher.batch_sizes() or [0])}")
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
    parser.add_argument(
        "--no-stages", action="store_true", help="no per-stage timings and Redis readings"
    )
    parser.add_argument(
        "--prefill", type=int, default=0, help="entries stored before the soak starts"
    )
    parser.add_argument("--prefill-vectors", type=Path, default=None, help="a .npy for --prefill")
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
            not args.no_stages,
            args.prefill,
            args.prefill_vectors,
        )
    )


if __name__ == "__main__":
    main()
