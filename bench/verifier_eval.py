"""Held-out figures of the learned verifier: threshold only, rules, rules + verifier.

Run ``python -m bench.verifier_eval`` after ``python -m bench.train_verifier``. It reads the
shipped weights (``_precision/verifier_weights.json``) and evaluates on data the verifier
never trained on (see ``bench/train_verifier.py`` for what it trained on):
- fow-cache: the held-out half of the pairs (``guards_eval._half`` of the id is odd);
- Banking77: every test question meets its nearest train question (warm-then-ask);
- CLINC150: test + oos_test against train (oos never should hit).
For Banking77 and CLINC150 the rules were tuned on the test split's design half, so the odd
(held-out) half is reported beside the whole split. Writes a precision/hit-rate plot.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench import guards_eval as ge
from bench.train_verifier import Pair, features
from semcache_plugins._embedding._embedder import Embedder
from semcache_plugins._precision._guards import DEFAULT_SIMILARITY_THRESHOLD
from semcache_plugins._precision._verifier import load_verifier

RESULTS = Path(__file__).resolve().parent / "results"


def _rates(served: np.ndarray, should: np.ndarray) -> tuple[float, float, int, int]:
    """(hit rate over should-hit lookups, precision, served, wrong)."""
    tp = int((served & should).sum())
    n = int(served.sum())
    return tp / max(int(should.sum()), 1), tp / n if n else 1.0, n, n - tp


Curve = list[tuple[float, float]]
Plot = list[tuple[str, dict[str, Curve], tuple[float, float]]]


def evaluate(name: str, lookups: list[ge.Lookup], emb: ge.CachedEmbedder, plot: Plot) -> list[str]:
    verifier = load_verifier()
    threshold = DEFAULT_SIMILARITY_THRESHOLD
    sims = np.array([lk.similarity for lk in lookups])
    should = np.array([lk.should_hit for lk in lookups])
    rules = np.array([v.allowed for v in ge.verdicts(lookups, emb)])
    gray = (sims >= verifier.floor) & rules
    idx = np.flatnonzero(gray)
    pairs = [Pair(lookups[i].query, lookups[i].cached, lookups[i].similarity, False, name)
             for i in idx]  # fmt: skip
    prob = np.zeros(len(lookups))
    if len(idx):
        x = features(pairs, emb)
        prob[idx] = [verifier.probability(row) for row in x]
    systems = {
        "threshold only": sims >= threshold,
        "rules": (sims >= threshold) & rules,
        "rules + verifier": gray & (prob >= verifier.cutoff),
        "rules + verifier (gray zone only)": ((sims >= threshold) & rules)
        | (gray & (sims < threshold) & (prob >= verifier.cutoff)),
    }
    rows = []
    for half, keep in (("all", np.ones(len(lookups), bool)),
                       ("held-out half", ~np.array([lk.design for lk in lookups]))):  # fmt: skip
        for system, served in systems.items():
            hit, precision, n, wrong = _rates(served & keep, should & keep)
            rows.append(
                f"| {name} | {half} | {system} | {int(keep.sum())} | {hit:.3f} | "
                f"{precision:.4f} | {n} | {wrong} |"
            )
    curves: dict[str, Curve] = {
        "threshold only": [_rates(sims >= t, should)[:2] for t in np.arange(0.70, 1.0, 0.01)],
        "rules": [_rates((sims >= t) & rules, should)[:2] for t in np.arange(0.70, 1.0, 0.01)],
        "rules + verifier": [
            _rates(gray & (prob >= c), should)[:2] for c in np.arange(0.05, 1.0, 0.01)
        ],
    }
    default = _rates(systems["rules + verifier"], should)[:2]
    plot.append((name, curves, default))
    return rows


def draw(plot: Plot, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plot), figsize=(5 * len(plot), 4.2))
    for ax, (name, curves, default) in zip(np.atleast_1d(axes), plot, strict=True):
        for label, points in curves.items():
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
        ax.plot(*default, "k*", markersize=10, label="verifier at shipped cutoff")
        ax.set_title(name)
        ax.set_xlabel("hit rate (served should-hit / should-hit)")
        ax.set_ylabel("precision")
        ax.set_ylim(0.5, 1.005)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def latency(lookups: list[ge.Lookup], rounds: int = 200) -> str:
    """p50 of one query embedding vs the verifier on a gray-zone candidate (features plus
    its one span embedding, not memoized), on the real model; figures, not assertions."""
    embedder = Embedder()
    verifier = load_verifier()
    embedder.embed(["warm up"])
    gray = [lk for lk in lookups if verifier.floor <= lk.similarity][:rounds]
    query_ms, verify_ms = [], []
    for lk in gray:
        started = time.perf_counter()
        embedder.embed([lk.query])
        query_ms.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        verifier.verify(lk.query, lk.cached, lk.similarity, embed=embedder.embed)
        verify_ms.append(1000 * (time.perf_counter() - started))
    q, v = float(np.median(query_ms)), float(np.median(verify_ms))
    return (
        f"latency over {len(gray)} candidates: query embedding p50 {q:.2f} ms, "
        f"verifier p50 {v:.2f} ms ({v / q:.2f}x)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ge.DATASETS)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "guards_cache")
    parser.add_argument("--plot", type=Path, default=RESULTS / "latest-verifier.png")
    args = parser.parse_args(argv)
    emb = ge.CachedEmbedder(args.cache)
    verifier = load_verifier()
    print(f"verifier weights sha256 {verifier.digest}  floor {verifier.floor}  "
          f"cutoff {verifier.cutoff}  threshold {DEFAULT_SIMILARITY_THRESHOLD}")  # fmt: skip
    print("| data | rows | system | lookups | hit rate | precision | served | wrong |")
    print("|---|---|---|---|---|---|---|---|")
    plot: Plot = []
    fow = [lk for lk in ge.fow_pairs(args.data, emb, "different") if not lk.design]
    for name, lookups in (
        ("fow-cache held-out", fow),
        ("Banking77 test", ge.banking(args.data, emb)),
        ("CLINC150 test+oos", ge.clinc(args.data, emb)),
    ):
        for row in evaluate(name, lookups, emb, plot):
            print(row, flush=True)
    draw(plot, args.plot)
    print(latency(fow))
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
