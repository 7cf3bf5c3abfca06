"""One query's embedding, fastembed's ONNX Runtime session against ours (issue #16).

fastembed opens its session with ``ORT_ENABLE_ALL`` and ORT's default thread pool, whose
workers spin while waiting for work; ours (``_embedder._tune_session``) turns spinning off.
Interleaved A/B rounds in one process, medians of round medians (the machine is shared and
noisy); outputs are compared too (they must be identical).
``python -m bench.embed_speed --rounds 7 --calls 200``

``--options`` instead compares our session with variants of its ONNX Runtime options (same
model, vectors within float rounding) and model batch sizes, each interleaved with ours.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort

from semcache_plugins import Embedder

QUERIES = [
    "How do I reset my password on the website?",
    "What is the capital of France?",
    "Why is the sky blue during the day but red at sunset?",
    "Can I get a refund for a cancelled flight?",
    "how long does a card transfer take",
]


def fastembed_session(embedder: Embedder) -> None:
    """Put back the session fastembed itself would open (ENABLE_ALL, default threads)."""
    model = embedder._state().engine.model
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    path = embedder.model_dir / embedder._state().resolved.model_file
    model.model = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def reopen(embedder: Embedder, **config: str) -> Callable[[Any], None]:
    """A variant of our session: the same options plus ``config`` and ``setup(options)``."""

    def apply(setup: Any) -> None:
        model = embedder._state().engine.model
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        for key, value in config.items():
            options.add_session_config_entry(key, value)
        setup(options)
        path = embedder.model_dir / embedder._state().resolved.model_file
        model.model = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    return apply


def _threads(n: int) -> Callable[[Any], None]:
    def setup(options: Any) -> None:
        options.intra_op_num_threads = n
        options.inter_op_num_threads = n

    return setup


def _set(**attributes: Any) -> Callable[[Any], None]:
    def setup(options: Any) -> None:
        for name, value in attributes.items():
            setattr(options, name, value)

    return setup


#: name -> (session config entries, SessionOptions setup)
OPTIONS: dict[str, tuple[dict[str, str], Callable[[Any], None]]] = {
    "denormal as zero": ({"session.set_denormal_as_zero": "1"}, _set()),
    "no memory pattern": ({}, _set(enable_mem_pattern=False)),
    "no cpu arena": ({}, _set(enable_cpu_mem_arena=False)),
    "parallel execution": ({}, _set(execution_mode=ort.ExecutionMode.ORT_PARALLEL)),
    "extended graph opt": (
        {},
        _set(graph_optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
    ),
}


def compare_options(rounds: int, calls: int, batches: tuple[int, ...]) -> None:
    """Every ``OPTIONS`` variant against our session, interleaved; same queries."""
    ours = Embedder()
    ours.load()
    for name, (config, setup) in OPTIONS.items():
        other = Embedder()
        other.load()
        reopen(other, **config)(setup)
        diff = np.abs(ours.embed(QUERIES) - other.embed(QUERIES)).max()
        for batch in batches:
            a: list[float] = []
            b: list[float] = []
            for _ in range(rounds):
                a.append(p50(ours, calls, batch))
                b.append(p50(other, calls, batch))
            ratios = [y / x for x, y in zip(a, b, strict=True)]
            print(
                f"| {name} | {batch} | {statistics.median(a):.2f} | {statistics.median(b):.2f} "
                f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
                f"| {diff:.1e} |",
                flush=True,
            )


def p50(embedder: Embedder, calls: int, batch: int) -> float:
    times = []
    for n in range(calls):
        texts = [QUERIES[(n + i) % len(QUERIES)] for i in range(batch)]
        started = time.perf_counter()
        embedder.embed(texts)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--options", action="store_true", help="our session vs option variants")
    parser.add_argument("--batches", default="1,16", help="texts per call (--options)")
    args = parser.parse_args()
    if args.options:
        print("| variant | batch | ours p50 ms | variant p50 ms | ratio (rounds) | max diff |")
        print("|---|---:|---:|---:|---:|---:|")
        compare_options(args.rounds, args.calls, tuple(int(b) for b in args.batches.split(",")))
        return
    fastembed, ours = Embedder(), Embedder()
    fastembed.load()
    ours.load()
    fastembed_session(fastembed)
    same = np.abs(fastembed.embed(QUERIES) - ours.embed(QUERIES)).max()
    print(f"max |difference| of the vectors: {same:.2e}")
    for batch in (1, 16):
        results: dict[str, list[float]] = {"fastembed": [], "ours": []}
        for _ in range(args.rounds):
            for name, embedder in (("fastembed", fastembed), ("ours", ours)):
                results[name].append(p50(embedder, args.calls, batch))
        base = statistics.median(results["fastembed"])
        for name, values in results.items():
            med = statistics.median(values)
            print(
                f"batch {batch:2d} {name:9s} p50 {med:.3f} ms "
                f"(rounds {min(values):.3f}-{max(values):.3f}) ratio {med / base:.2f}x"
            )


if __name__ == "__main__":
    main()
