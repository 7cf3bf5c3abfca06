"""Train the learned verifier and write ``src/semcache_plugins/_precision/verifier_weights.json``.

Run ``python -m bench.train_verifier`` from a checkout: it prints the sha256 of the file it
writes (recorded in ``bench/results/latest.md``); the same checkout rebuilds the same digest
(sorted data, no randomness, Newton steps from zero, values rounded). Embeddings are cached
under ``--cache`` like ``guards_eval``'s (a cold run embeds ~27k texts).

Training data, only train-side rows of the shipped ``datasets/`` (never the Quora pairs, never
an evaluation half):
- fow-cache: the *design* half of the pairs (``guards_eval._half`` of the id is even);
- Banking77 train and CLINC150 train (+ oos_train): the train split's even half (by
  ``_half`` of the text) is the cache, each odd-half question meets its nearest neighbour
  there; should-hit iff same intent (never for oos);
- synthetic pairs from train questions: hard negatives by controlled edits (numbers,
  negations, ordinals, units, dates, comparatives, entities) and positives by edits that keep
  the answer (politeness, fillers, contractions, question frames).
Pairs with similarity >= ``TRAIN_FLOOR`` are trained on (the traps the rules catch teach the
model too); the cutoff is chosen on those the lexical rules allow (what the verifier sees).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import guards_eval as ge
from semcache_plugins._precision._guards import DEFAULT_SIMILARITY_THRESHOLD, check_guards
from semcache_plugins._precision._verifier import (
    FEATURE_NAMES,
    VERIFIER_FORMAT,
    pair_features,
    span_texts,
)

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "semcache_plugins" / "_precision" / "verifier_weights.json"
TRAIN_FLOOR = 0.65  # lowest similarity trained on (the setting's floor is above it)
FLOOR = 0.72  # the default ``verifier_floor``
L2 = 1.0
TARGET_PRECISION = 0.99  # the cutoff is the lowest one reaching this on every natural source


@dataclass(frozen=True)
class Pair:
    query: str
    cached: str
    similarity: float
    same: bool
    source: str


def _sample(texts: Sequence[str], every: int, salt: str) -> list[str]:
    """A deterministic 1-in-``every`` sample (by CRC32), sorted."""
    return sorted(t for t in set(texts) if zlib.crc32((salt + t).encode()) % every == 0)


def _nearest_pairs(
    emb: ge.CachedEmbedder,
    name: str,
    rows: list[tuple[str, str]],
    extra_ask: Sequence[tuple[str, str]] = (),
    never: str = "oos",
) -> list[Pair]:
    """Within a train split: even half cached, odd half (+ ``extra_ask``) asked."""
    vectors = emb.corpus(f"{name}-warm", [t for t, _ in rows])
    warm = [i for i, (t, _) in enumerate(rows) if ge._half(t)]
    ask = [i for i, (t, _) in enumerate(rows) if not ge._half(t)]
    ask_rows = [rows[i] for i in ask] + list(extra_ask)
    ask_vectors = vectors[ask]
    if extra_ask:
        ask_vectors = np.vstack(
            [ask_vectors, emb.corpus(f"{name}-extra", [t for t, _ in extra_ask])]
        )
    warm_vectors = vectors[warm]
    out = []
    sims = ask_vectors @ warm_vectors.T
    best = sims.argmax(axis=1)
    for row, j in enumerate(best):
        text, label = ask_rows[row]
        cached, cached_label = rows[warm[int(j)]]
        same = label == cached_label and label != never
        out.append(Pair(text, cached, float(sims[row, j]), same, name))
    return out


# (pattern, replacement) edits; a negative changes the answer, a positive keeps it.
_NEGATIVE_EDITS: list[tuple[str, str]] = [
    (r"\b(\d+)\b", "NUM"),
    (r"\b(can|do|does|did|is|are|was|will|should|could|would) (i|you|we|it|they|my)\b",
     r"\1n't \2"),
    (r"\b(first)\b", "second"), (r"\b(second)\b", "third"), (r"\b(last)\b", "first"),
    (r"\b(today)\b", "tomorrow"), (r"\b(tomorrow)\b", "yesterday"),
    (r"\b(monday)\b", "friday"), (r"\b(friday)\b", "sunday"), (r"\b(week)\b", "month"),
    (r"\b(month)\b", "year"), (r"\b(morning)\b", "evening"),
    (r"\b(dollars?)\b", "euros"), (r"\b(miles)\b", "kilometers"), (r"\b(pounds)\b", "kilograms"),
    (r"\b(cheaper|cheapest)\b", "more expensive"), (r"\b(more)\b", "less"),
    (r"\b(higher)\b", "lower"), (r"\b(before)\b", "after"), (r"\b(fast|faster)\b", "slow"),
    (r"\b(visa)\b", "mastercard"), (r"\b(france)\b", "germany"), (r"\b(london)\b", "paris"),
    (r"\b(card)\b", "account"), (r"\b(add)\b", "remove"), (r"\b(open)\b", "close"),
    (r"\b(increase)\b", "decrease"), (r"\b(activate)\b", "deactivate"),
]  # fmt: skip
_POSITIVE_EDITS: list[tuple[str, str]] = [
    (r"^", "please "), (r"^", "hey, "), (r"^", "can you tell me "), (r"\??$", " please?"),
    (r"\bi want to\b", "i would like to"), (r"\bhow do i\b", "how can i"),
    (r"\bwhat is\b", "what's"), (r"\bi am\b", "i'm"), (r"\bdo not\b", "don't"),
    (r"\bcan i\b", "am i able to"), (r"\bthe\b ", ""), (r"\bmy\b", "my own"),
    (r"[?.!]$", ""), (r"$", " thanks"),
]  # fmt: skip


def _edit(text: str, pattern: str, replacement: str) -> str:
    lower = text.lower()
    if replacement == "NUM":
        return re.sub(pattern, lambda m: str(int(m.group(1)) + 3), lower, count=1)
    return re.sub(pattern, replacement, lower, count=1)


def synthetic_pairs(emb: ge.CachedEmbedder, texts: Sequence[str]) -> list[Pair]:
    """Edited copies of sampled train questions, paired with the original."""
    made: list[tuple[str, str, bool]] = []  # ("can" -> "cann't": the tokenizer reads "can not")
    for text in texts:
        for label, edits in ((False, _NEGATIVE_EDITS), (True, _POSITIVE_EDITS)):
            for pattern, replacement in edits:
                if re.search(pattern, text.lower()):
                    edited = _edit(text, pattern, replacement)
                    if edited != text.lower():
                        made.append((edited, text, label))
    made = sorted(set(made))
    edited_vectors = emb.corpus("verifier-synth-a", [e for e, _, _ in made])
    original_vectors = emb.corpus("verifier-synth-b", [o for _, o, _ in made])
    sims = np.einsum("ij,ij->i", edited_vectors, original_vectors)
    return [
        Pair(e, o, float(s), label, "synthetic")
        for (e, o, label), s in zip(made, sims, strict=True)
        if not label or zlib.crc32(e.encode()) % 4 == 0  # a quarter of the (many) positives
    ]


def training_pairs(data: Path, emb: ge.CachedEmbedder) -> list[Pair]:
    fow = [
        Pair(lk.query, lk.cached, lk.similarity, lk.should_hit, "fow-design")
        for lk in ge.fow_pairs(data, emb, "different")
        if lk.design
    ]
    banking_train, _ = ge.banking_split(data)
    clinc_train, _ = ge.clinc_split(data)
    full = json.loads((data / "clinc150" / "data_full.json").read_text())
    oos_train = [(t, i) for t, i in full["oos_train"]]
    pairs = fow + _nearest_pairs(emb, "banking77", banking_train)
    pairs += _nearest_pairs(emb, "clinc150", clinc_train, oos_train)
    seeds = _sample([t for t, _ in banking_train], 8, "b") + _sample(
        [t for t, _ in clinc_train], 12, "c"
    )
    pairs += synthetic_pairs(emb, seeds)
    return [p for p in pairs if p.similarity >= TRAIN_FLOOR]


def features(pairs: list[Pair], emb: ge.CachedEmbedder) -> np.ndarray:
    """Feature rows; every differing span embedded in one (disk-cached) corpus call."""
    spans = {p: span_texts(p.query, p.cached) for p in pairs}
    unique = sorted({s for two in spans.values() if two for s in two})
    vectors = emb.corpus("verifier-spans", unique) if unique else np.zeros((0, 384))
    index = {s: i for i, s in enumerate(unique)}
    rows = []
    for p in pairs:
        two = spans[p]
        cos = None if two is None else float(vectors[index[two[0]]] @ vectors[index[two[1]]])
        rows.append(pair_features(p.query, p.cached, p.similarity, cos))
    return np.round(np.array(rows), 6)


def fit(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float = L2
) -> tuple[np.ndarray, float]:
    """Weighted L2 logistic regression by Newton steps from zero (deterministic)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(xb.shape[1])
    ridge = np.eye(xb.shape[1]) * l2
    ridge[-1, -1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(xb @ beta)))
        gradient = xb.T @ (weight * (p - y)) + ridge @ beta
        hessian = (xb * (weight * p * (1 - p))[:, None]).T @ xb + ridge
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def choose_cutoff(prob: np.ndarray, pairs: list[Pair], threshold: float) -> float:
    """The lowest cutoff (0.01 steps) at which no source is less precise, over pairs at or
    above the floor, than the rules alone at ``threshold`` on that source (the cache today),
    nor below ``TARGET_PRECISION`` where today reaches it."""
    keep = np.array([p.similarity >= FLOOR for p in pairs])
    today = np.array([p.similarity >= threshold for p in pairs])
    y = np.array([p.same for p in pairs])
    src = np.array([p.source for p in pairs])
    targets = {}
    for source in sorted(set(src.tolist())):
        mine = src == source
        served = today & mine
        targets[source] = min(TARGET_PRECISION, (served & y).sum() / max(served.sum(), 1))
    for cutoff in np.round(np.arange(0.05, 1.0, 0.01), 2):
        served = keep & (prob >= cutoff)
        if all(
            (served & (src == s) & y).sum() >= target * (served & (src == s)).sum()
            for s, target in targets.items()
        ):
            return float(cutoff)
    return 0.99


def _report(prob: np.ndarray, pairs: list[Pair], cutoff: float, threshold: float) -> None:
    """Training figures per source: the rules at ``threshold`` and the verifier at ``cutoff``."""
    y = np.array([p.same for p in pairs])
    sims = np.array([p.similarity for p in pairs])
    src = np.array([p.source for p in pairs])
    for source in sorted(set(src.tolist())):
        mine = src == source
        for label, served in (
            ("rules", sims >= threshold),
            ("verifier", (sims >= FLOOR) & (prob >= cutoff)),
        ):
            s = served & mine
            tp = int((s & y).sum())
            print(
                f"  train {source:<11} {label:<8} hit {tp / max(int((y & mine).sum()), 1):.3f} "
                f"prec {tp / max(int(s.sum()), 1):.4f} served {int(s.sum())}",
                file=sys.stderr,
            )


def train(data: Path, cache: Path) -> dict[str, object]:
    emb = ge.CachedEmbedder(cache)
    pairs = training_pairs(data, emb)
    allowed = np.array([check_guards(p.query, p.cached, p.similarity).allowed for p in pairs])
    x = features(pairs, emb)
    y = np.array([float(p.same) for p in pairs])
    counts = {s: sum(p.source == s for p in pairs) for s in sorted({p.source for p in pairs})}
    groups = {
        (s, y): sum(p.source == s and p.same == y for p in pairs)
        for s in counts
        for y in (False, True)
    }
    # every source weighs the same, and within it both classes
    weight = np.array([len(pairs) / (2 * len(counts) * groups[p.source, p.same]) for p in pairs])
    mean = np.round(x.mean(axis=0), 6)
    scale = np.round(np.maximum(x.std(axis=0), 1e-3), 6)
    weights, bias = fit((x - mean) / scale, y, weight)
    weights, bias = np.round(weights, 6), round(bias, 6)
    prob = 1.0 / (1.0 + np.exp(-(((x - mean) / scale) @ weights + bias)))
    # the lexical rules (no embedding) stand for the guards the verifier runs after
    rule_pairs = [p for p, ok in zip(pairs, allowed, strict=True) if ok]
    cutoff = choose_cutoff(prob[allowed], rule_pairs, DEFAULT_SIMILARITY_THRESHOLD)
    _report(prob[allowed], rule_pairs, cutoff, DEFAULT_SIMILARITY_THRESHOLD)
    for source, n in counts.items():
        pos = sum(p.same for p in pairs if p.source == source)
        print(f"  {source:<11} {n:6d} pairs ({pos} should-hit)", file=sys.stderr)
    return {
        "format": VERIFIER_FORMAT,
        "model": "logistic regression over standardized features",
        "features": list(FEATURE_NAMES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "weights": weights.tolist(),
        "bias": bias,
        "cutoff": cutoff,
        "floor": FLOOR,
        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
        "training": {
            "pairs": counts,
            "train_floor": TRAIN_FLOOR,
            "l2": L2,
            "target_precision": TARGET_PRECISION,
        },  # fmt: skip
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ge.DATASETS)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "guards_cache")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    model = train(args.data, args.cache)
    text = json.dumps(model, indent=1, sort_keys=True) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}  sha256 {hashlib.sha256(text.encode()).hexdigest()}")
    for name, w in zip(FEATURE_NAMES, model["weights"], strict=True):  # type: ignore[call-overload]
        print(f"  {name:<18} {w:+.3f}")
    print(f"  bias {model['bias']:+.3f}  cutoff {model['cutoff']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
