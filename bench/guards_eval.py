"""Precision/recall of the semantic cache with and without the precision guards.

Run ``python bench/guards_eval.py`` (fow-cache and Banking77; ``--all`` adds CLINC150 and QQP).
Data: the repository's ``datasets/`` folder (or ``--data``); the Quora pairs are not shipped and
are read only from ``--qqp`` or ``../shared/datasets/qqp_gptcache`` when that exists.
Embeddings are cached as .npy under ``--cache`` (default $TMPDIR/guards_cache): a cold run
embeds ~11k texts (~3 min on 2 cores; ``--all`` ~33k, ~11 min), a warm one takes seconds.

Protocols (one lookup = a new query and the cached text it would be answered from):
- fow-cache pairs: each pair is a lookup; should-hit iff ``same_answer``; the 8 ``ambiguous``
  rows count as must-not-hit unless ``--ambiguous same|skip``.
- Banking77: warm with train, each test query meets its nearest train neighbour; should-hit iff
  same category. CLINC150: same with train vs test + oos_test (oos lookups never should hit).
- QQP (GPTCache subset, first 5000 rows): each pair is a lookup; should-hit iff label 1.
Rows are split in two halves by a CRC32 of the id (fow-cache), query text (Banking77, CLINC150)
or pair text (QQP): even -> ``design`` (the rules are tuned on it), odd -> ``holdout`` (never
tuned on; reported beside the design figures).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semcache_plugins._embedding._embedder import Embedder
from semcache_plugins._precision._guards import (
    DEFAULT_SIMILARITY_THRESHOLD,
    GuardVerdict,
    check_guards,
)

THRESHOLDS = [round(0.70 + 0.01 * i, 2) for i in range(26)]
TARGET_PRECISION = 0.95


@dataclass(frozen=True)
class Lookup:
    query: str
    cached: str
    similarity: float
    should_hit: bool
    design: bool


class CachedEmbedder:
    """Embeds through the real Embedder; whole data sets are cached on disk, spans in memory."""

    def __init__(self, cache: Path) -> None:
        self.embedder = Embedder()
        self.cache = cache
        self.memo: dict[str, np.ndarray] = {}
        self.calls = 0

    def corpus(self, name: str, texts: Sequence[str]) -> np.ndarray:
        digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
        tag = self.embedder.fingerprint.digest
        path = self.cache / f"{name}-{tag}-{digest}.npy"
        if path.exists():
            return np.asarray(np.load(path), dtype=np.float32)
        started = time.perf_counter()
        vectors = self.embedder.embed(texts)
        self.cache.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        print(
            f"  embedded {len(texts)} {name} texts in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
        return vectors

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
                self.memo[text] = vector
        return np.stack([self.memo[t] for t in texts])


def _half(key: str) -> bool:
    return zlib.crc32(key.encode()) % 2 == 0


def fow_pairs(data: Path, emb: CachedEmbedder, ambiguous: str) -> list[Lookup]:
    rows = [json.loads(line) for line in (data / "fow_cache" / "pairs.jsonl").open()]
    if ambiguous == "skip":
        rows = [r for r in rows if not r.get("ambiguous")]
    va = emb.corpus("fow-a", [r["a"] for r in rows])
    vb = emb.corpus("fow-b", [r["b"] for r in rows])
    sims = np.einsum("ij,ij->i", va, vb)
    return [
        Lookup(
            r["a"],
            r["b"],
            float(s),
            bool(r["same_answer"]) or (ambiguous == "same" and bool(r.get("ambiguous"))),
            _half(r["id"]),
        )
        for r, s in zip(rows, sims, strict=True)
    ]


def _nearest(
    emb: CachedEmbedder,
    name: str,
    warm: list[tuple[str, str]],
    stream: list[tuple[str, str]],
    never: str | None = None,
) -> list[Lookup]:
    wv = emb.corpus(f"{name}-warm", [t for t, _ in warm])
    sv = emb.corpus(f"{name}-stream", [t for t, _ in stream])
    out: list[Lookup] = []
    for start in range(0, len(stream), 1024):
        sims = sv[start : start + 1024] @ wv.T
        best = sims.argmax(axis=1)
        for row, j in enumerate(best):
            text, label = stream[start + row]
            cached, cached_label = warm[int(j)]
            out.append(
                Lookup(
                    text,
                    cached,
                    float(sims[row, j]),
                    label == cached_label and label != never,
                    _half(text),
                )
            )
    return out


Split = tuple[list[tuple[str, str]], list[tuple[str, str]]]


def banking_split(data: Path) -> Split:
    """Banking77 (train, test) as (text, category) rows."""

    def read(name: str) -> list[tuple[str, str]]:
        with (data / "banking77" / name).open(newline="") as handle:
            return [(r["text"], r["category"]) for r in csv.DictReader(handle)]

    return read("train.csv"), read("test.csv")


def clinc_split(data: Path) -> Split:
    """CLINC150 (train, test + oos_test) as (text, intent) rows; oos rows have intent "oos"."""
    full = json.loads((data / "clinc150" / "data_full.json").read_text())
    return [(t, i) for t, i in full["train"]], [(t, i) for t, i in full["test"] + full["oos_test"]]


def banking(data: Path, emb: CachedEmbedder) -> list[Lookup]:
    return _nearest(emb, "banking77", *banking_split(data))


def clinc(data: Path, emb: CachedEmbedder) -> list[Lookup]:
    return _nearest(emb, "clinc150", *clinc_split(data), never="oos")


REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / "datasets"
#: Where the (non-shipped) Quora pairs may sit: beside the repository or beside its worktree root.
QQP_PLACES = (REPO.parent / "shared" / "datasets", REPO.parents[1] / "shared" / "datasets")


def qqp_dir(data: Path | None = None) -> Path | None:
    """The Quora pairs folder: under ``data`` if given and present, else beside the repository."""
    places = [data] if data is not None else []
    for place in [*places, *QQP_PLACES]:
        if (place / "qqp_gptcache" / "similiar_qqp_full.json").exists():
            return place / "qqp_gptcache"
    return None


def qqp(data: Path | None, emb: CachedEmbedder, rows: int = 5000) -> list[Lookup]:
    folder = qqp_dir(data)
    if folder is None:
        raise FileNotFoundError("Quora pairs (qqp_gptcache) not found: pass --qqp")
    pairs = json.loads((folder / "similiar_qqp_full.json").read_text())[:rows]
    va = emb.corpus("qqp-a", [p["text_a"] for p in pairs])
    vb = emb.corpus("qqp-b", [p["text_b"] for p in pairs])
    sims = np.einsum("ij,ij->i", va, vb)
    return [
        Lookup(
            p["text_a"],
            p["text_b"],
            float(s),
            p["label"] == 1,
            _half(p["text_a"] + "\n" + p["text_b"]),
        )
        for p, s in zip(pairs, sims, strict=True)
    ]


def verdicts(
    lookups: list[Lookup], embed: Callable[[Sequence[str]], np.ndarray]
) -> list[GuardVerdict]:
    """Guard verdict per lookup (computed only where some threshold could serve it)."""
    skipped = GuardVerdict(False, "below_thresholds")
    return [
        check_guards(lk.query, lk.cached, lk.similarity, embed=embed)
        if lk.similarity >= THRESHOLDS[0]
        else skipped
        for lk in lookups
    ]


def score(
    lookups: list[Lookup], allowed: list[bool] | None, threshold: float
) -> tuple[float, float, float, int]:
    """(served should-hit %, false-hit %, precision, served)."""
    tp = fp = pos = neg = 0
    for i, lk in enumerate(lookups):
        served = lk.similarity >= threshold and (allowed is None or allowed[i])
        pos += lk.should_hit
        neg += not lk.should_hit
        tp += served and lk.should_hit
        fp += served and not lk.should_hit
    precision = tp / (tp + fp) if tp + fp else 1.0
    return 100 * tp / max(pos, 1), 100 * fp / max(neg, 1), precision, tp + fp


def table(name: str, lookups: list[Lookup], allowed: list[bool], default: float) -> None:
    """Rows over THRESHOLDS; ``*`` marks precision >= 0.95 with >= 50% of should-hits served."""
    pos = sum(lk.should_hit for lk in lookups)
    print(f"\n## {name}: {len(lookups)} lookups, {pos} should-hit, {len(lookups) - pos} must-not")
    print(" thr  | raw: hit%  false%  prec  | guards: hit%  false%  prec")
    for t in THRESHOLDS:
        rh, rf, rp, _ = score(lookups, None, t)
        gh, gf, gp, _ = score(lookups, allowed, t)
        mark = " <- default" if abs(t - default) < 1e-9 else ""
        ok = "*" if gp >= TARGET_PRECISION and gh >= 50 else " "
        print(
            f" {t:.2f} |     {rh:5.1f}  {rf:5.1f}  {rp:.3f} |       {gh:5.1f}  {gf:5.1f}  "
            f"{gp:.3f} {ok}{mark}"
        )
    met = [t for t in THRESHOLDS if score(lookups, allowed, t)[2] >= TARGET_PRECISION
           and score(lookups, allowed, t)[0] >= 50]  # fmt: skip
    print(f"  target met (*) at: {', '.join(f'{t:.2f}' for t in met) or 'no threshold'}")


def reasons(lookups: list[Lookup], found: list[GuardVerdict], default: float) -> None:
    """Why the guards blocked lookups that the raw threshold would have served."""
    blocked: dict[str, list[int]] = {}
    for lk, verdict in zip(lookups, found, strict=True):
        if lk.similarity >= default and not verdict.allowed:
            blocked.setdefault(verdict.reason, [0, 0])[lk.should_hit] += 1
    rows = sorted(blocked.items(), key=lambda item: -sum(item[1]))
    print("  blocked at the default (rule: traps / should-hits): "
          + ", ".join(f"{reason} {n[0]}/{n[1]}" for reason, n in rows))  # fmt: skip


def split_summary(name: str, lookups: list[Lookup], allowed: list[bool], default: float) -> None:
    """Design and held-out rows at ``default``; the last columns are a markdown table row."""
    for label, keep in (("design", True), ("holdout", False)):
        idx = [i for i, lk in enumerate(lookups) if lk.design == keep]
        sub, sub_allowed = [lookups[i] for i in idx], [allowed[i] for i in idx]
        rh, rf, rp, _ = score(sub, None, default)
        gh, gf, gp, served = score(sub, sub_allowed, default)
        pos = sum(lk.should_hit for lk in sub)
        wrong = served - round(gh * max(pos, 1) / 100)
        print(
            f"  {name:<10} {label:<8} n={len(sub):5d} | raw hit {rh:5.1f}% false {rf:5.1f}% "
            f"prec {rp:.3f} | guards hit {gh:5.1f}% false {gf:5.1f}% prec {gp:.3f}"
        )
        row = f"{name} | {label} | {len(sub)} | {pos} | {gh:.2f} | {gp:.4f} | {served} | {wrong}"
        print(f"  | {row} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DATASETS)
    parser.add_argument("--qqp", type=Path, default=None, help="folder holding qqp_gptcache/")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "guards_cache")
    parser.add_argument("--ambiguous", choices=("different", "same", "skip"), default="different")
    parser.add_argument(
        "--only",
        nargs="*",
        default=["fow", "banking77"],
        choices=("fow", "banking77", "clinc150", "qqp"),
    )
    parser.add_argument("--all", action="store_true", help="also CLINC150 and QQP (if present)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_SIMILARITY_THRESHOLD)
    args = parser.parse_args(argv)
    if args.all:
        args.only = ["fow", "banking77", "clinc150"] + (["qqp"] if qqp_dir(args.qqp) else [])
    emb = CachedEmbedder(args.cache)
    loaders: dict[str, Callable[[], list[Lookup]]] = {
        "fow": lambda: fow_pairs(args.data, emb, args.ambiguous),
        "banking77": lambda: banking(args.data, emb),
        "clinc150": lambda: clinc(args.data, emb),
        "qqp": lambda: qqp(args.qqp, emb),
    }
    summaries = []
    for name in args.only:
        started = time.perf_counter()
        lookups = loaders[name]()
        found = verdicts(lookups, emb)
        allowed = [verdict.allowed for verdict in found]
        took = time.perf_counter() - started
        table(
            f"{name} (ambiguous={args.ambiguous})" if name == "fow" else name,
            lookups,
            allowed,
            args.threshold,
        )
        reasons(lookups, found, args.threshold)
        print(f"  ({took:.1f}s, {emb.calls} guard embed calls so far)")
        summaries.append((name, lookups, allowed))
    print(f"\n## threshold {args.threshold:.2f}: design vs held-out halves (raw | with guards)")
    for name, lookups, allowed in summaries:
        split_summary(name, lookups, allowed, args.threshold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
