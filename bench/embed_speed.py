"""One query's embedding, fastembed's ONNX Runtime session against ours (issue #16).

fastembed opens its session with ``ORT_ENABLE_ALL`` and ORT's default thread pool, whose
workers spin while waiting for work; ours (``_embedder._tune_session``) turns spinning off.
Interleaved A/B rounds in one process, medians of round medians (the machine is shared and
noisy); outputs are compared too (they must be identical).
``python -m bench.embed_speed --rounds 7 --calls 200``
"""

from __future__ import annotations

import argparse
import statistics
import time

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
    args = parser.parse_args()
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
