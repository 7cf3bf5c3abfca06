"""``semcache demo``: the cache on the embedded Redis, end to end, in a few seconds."""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from ._core import CacheCore
from .embedded import EmbeddedRedis, resolve_redis_url

__all__ = ["register", "run_demo"]

SYSTEM = {"role": "system", "content": "You are a concise support agent for Acme Cloud."}
CACHED = [
    ("How do I reset my password?", "Open Settings > Security and click 'Reset password'."),
    ("What is the status of order 48213?", "Order 48213 shipped yesterday."),
    ("Cancel my subscription", "Your subscription is cancelled; you keep access until the 30th."),
]
QUERIES = [
    "How do I reset my password?",  # exact repeat
    "I forgot my password, how can I reset it?",  # paraphrase
    "What is the status of order 48231?",  # one digit changed: must miss
    "Do not cancel my subscription",  # negation: must miss
    "What are your opening hours?",  # unrelated
]


def _messages(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def run_demo(redis_url: str, *, out: Any = print) -> list[dict[str, Any]]:
    """Store a few answers, look up repeats, paraphrases and traps; return one row per query."""
    prefix = f"semcache-demo-{uuid.uuid4().hex[:8]}"
    rows: list[dict[str, Any]] = []
    with CacheCore(redis_url=redis_url, index_prefix=prefix) as core:
        started = time.perf_counter()
        core.embedder.load()
        out(
            f"model: {core.embedder.fingerprint.model_id} (loaded in "
            f"{time.perf_counter() - started:.2f}s), redis: {redis_url}"
        )
        for question, answer in CACHED:
            core.store(_messages(question), answer, model="demo-llm", params={"temperature": 0})
        out(f"stored {len(CACHED)} answers\n")
        out(f"{'query':<45} {'result':<14} {'similarity':>10} {'ms':>7}  matched")
        for query in QUERIES:
            t0 = time.perf_counter()
            hit = core.lookup(_messages(query), "demo-llm", {"temperature": 0})
            ms = (time.perf_counter() - t0) * 1000
            row = {
                "query": query,
                "result": f"hit/{hit.tier}" if hit else "miss",
                "similarity": hit.similarity if hit else None,
                "ms": ms,
                "matched": hit.matched_prompt if hit else "",
            }
            rows.append(row)
            sim = f"{hit.similarity:.3f}" if hit else "-"
            out(f"{query:<45} {row['result']:<14} {sim:>10} {ms:>7.1f}  {row['matched']}")
        stats = core.stats()
        out(
            f"\nlookups {stats['lookups']}: {stats['hits_exact']} exact, "
            f"{stats['hits_semantic']} semantic, {stats['misses']} misses "
            f"({stats['guard_rejections']} refused by the precision guards)"
        )
        core.clear()
    return rows


def _run(args: argparse.Namespace) -> int:
    url = args.redis_url or resolve_redis_url()
    if url:
        run_demo(url)
        return 0
    with EmbeddedRedis() as server:
        print(f"started embedded Redis at {server.url}")
        run_demo(server.url)
    return 0


def register(groups: Any) -> None:
    """Add ``semcache demo``."""
    parser = groups.add_parser(
        "demo",
        help="run a short scripted session on the embedded Redis",
        description="Start the embedded Redis (unless SEMCACHE_REDIS_URL/REDIS_URL is set), "
        "cache a few answers and show exact hits, semantic hits and guarded misses.",
    )
    parser.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    parser.set_defaults(handler=_run)
