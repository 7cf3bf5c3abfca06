"""Per-call Python cost of `lookup`, A/B against another version of the package (issue #16).

Three kinds of lookup, each p50 over many calls, rounds alternating between the versions in
one process (the machine is shared and noisy: medians of round medians, with their spread):
- exact repeat, the L1 holding the entry (L1 on, the default);
- semantic hit and semantic miss with the query's vector already memoized by the core (every
  call after the first reuses it), so what is timed is everything *but* the embedding: the
  exact-tier read, the KNN, the candidates' read, the guards.

``--baseline DIR``: a ``semcache_plugins`` source directory of the other version (e.g. from
``git archive <commit> src | tar -x -C /tmp/base``), loaded under another package name.
``python -m bench.fastpath_speed --baseline /tmp/base/src/semcache_plugins --rounds 7``
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from semcache_plugins import CacheCore, Embedder
from semcache_plugins.embedded import EmbeddedRedis, resolve_redis_url

SYSTEM = {"role": "system", "content": "Answer questions."}
# (stored, paraphrase) pairs: the paraphrase must hit its stored question
PAIRS = [
    ("How do I reset my password?", "How can I reset my password?"),
    ("What is the boiling point of water?", "What is the boiling point of water exactly?"),
    ("How long does a passport renewal take?", "How long does it take to renew a passport?"),
    ("What are the symptoms of the flu?", "What symptoms does the flu cause?"),
    ("How do I cancel my subscription?", "How can I cancel my subscription?"),
    ("What is the speed of light in vacuum?", "What is the speed of light in a vacuum?"),
    ("Why is the sky blue?", "Why does the sky look blue?"),
    ("How do I bake sourdough bread at home?", "How can I bake sourdough bread at home?"),
]  # fmt: skip
MISSES = [
    "Explain the rules of cricket in simple terms.",
    "Which programming language should a beginner learn first?",
    "What causes earthquakes along fault lines?",
    "Recommend a good book about ancient Rome.",
    "How do vaccines train the immune system?",
    "What is the tallest mountain in Africa?",
    "How do I tie a bowline knot?",
    "What does a mortgage broker do?",
]


def ask(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def exact(i: int) -> list[dict[str, str]]:
    return ask(f"What is the capital of country number {i}?")


def p50(core: Any, requests: list[list[dict[str, str]]], calls: int, want: str | None) -> float:
    """p50 ms of `lookup` over ``calls`` calls cycling through ``requests``; ``want``: the
    tier every call must hit (None: every call must miss)."""
    times = []
    for n in range(calls):
        messages = requests[n % len(requests)]
        started = time.perf_counter()
        hit = core.lookup(messages, "m")
        times.append(time.perf_counter() - started)
        if (None if hit is None else hit.tier) != want:
            raise RuntimeError(f"{messages[-1]['content']!r}: wanted {want}, got {hit}")
    return statistics.median(times) * 1000


def load_baseline(source: Path) -> Any:
    """The package at ``source`` imported as ``semcache_baseline`` (a copy in a temp dir)."""
    root = Path(tempfile.mkdtemp(prefix="semcache-baseline-"))
    shutil.copytree(source, root / "semcache_baseline")
    sys.path.insert(0, str(root))
    return importlib.import_module("semcache_baseline")


def run(url: str, baseline: Any, rounds: int, calls: int) -> None:
    embedder = Embedder()
    embedder.load()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    kinds: dict[str, Any] = {"after": CacheCore}
    if baseline is not None:
        kinds = {"before": baseline.CacheCore, "after": CacheCore}
    cores = {
        name: kind(redis_url=url, index_prefix=prefix, embedder=embedder)
        for name, kind in kinds.items()
    }
    writer = cores["after"]
    for i in range(100):
        writer.store(exact(i), {"answer": f"city {i}"}, "m")
    for stored, _ in PAIRS:
        writer.store(ask(stored), {"answer": stored[::-1]}, "m")
    cases = {
        "exact repeat (L1)": ([exact(i) for i in range(100)], "exact", calls),
        "semantic hit (vector memoized)": ([ask(p) for _, p in PAIRS], "semantic", calls // 10),
        "semantic miss (vector memoized)": ([ask(m) for m in MISSES], None, calls // 10),
    }
    for core in cores.values():  # warm-up: connections, L1, vectors
        for requests, want, _ in cases.values():
            p50(core, requests, len(requests) * 3, want)
    results = {(case, name): [] for case in cases for name in cores}
    for _ in range(rounds):
        for case, (requests, want, n) in cases.items():
            for name, core in cores.items():
                results[(case, name)].append(p50(core, requests, n, want))
    for case in cases:
        base = statistics.median(results[(case, next(iter(cores)))])
        for name in cores:
            values = results[(case, name)]
            med = statistics.median(values)
            print(
                f"{case:32s} {name:7s} p50 {med:.4f} ms (rounds {min(values):.4f}-"
                f"{max(values):.4f}) ratio {med / base:.2f}x"
            )
    for core in cores.values():
        core.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    baseline = None if args.baseline is None else load_baseline(args.baseline)
    url = resolve_redis_url()
    if url is not None:
        run(url, baseline, args.rounds, args.calls)
        return
    with EmbeddedRedis() as server:
        run(server.url, baseline, args.rounds, args.calls)


if __name__ == "__main__":
    main()
