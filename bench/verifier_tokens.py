"""Does token-level alignment from the model move the verifier's frontier? (#18, an experiment)

Run ``python -m bench.verifier_tokens`` (after a ``bench.train_verifier`` run has warmed the
embedding cache). It does not change the shipped weights; it measures candidates for the next
verifier and prints markdown tables (``bench/results/fragments/verifier2.md`` quotes them):

- token alignment (BERTScore-style): MiniLM's hidden states before pooling, word pieces merged
  into words; for each content word of one text its best cosine to the other text's words. A
  changed number, entity or ordinal leaves a word with no good match ("5" vs "6" in "convert
  5 km to miles": 0.54, while the shared words match at 0.9-0.99). Four features: the worse
  and the better of the two sides' worst match, the mean best match, and how many content
  words match below 0.7;
- models: the shipped ten features, and those plus the four token features, each a logistic
  regression trained like ``train_verifier`` (same data and weighting); and a rule: the
  token-alignment worst match as a veto on what the rules serve at 0.85.

Selection uses only design rows: fow-cache design half by 5-fold cross-validation (the other
folds plus the natural train pairs and the synthetic pairs train each fold), Banking77 and
CLINC150 test design halves with the model trained on all training rows. The settings chosen
there (``CANDIDATES``) are then scored once on the held-out halves.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench import guards_eval as ge
from bench import train_verifier as tv
from semcache_plugins._embedding._embedder import Embedder
from semcache_plugins._precision import _guard_lexicon as lex
from semcache_plugins._precision._guards import DEFAULT_SIMILARITY_THRESHOLD, check_guards

RESULTS = Path(__file__).resolve().parent / "results"
TOKEN_FEATURES = ("tok_worst", "tok_worst_other_side", "tok_mean", "tok_low")
LOW_MATCH = 0.7
#: What is left of a contraction after the tokenizer splits at the apostrophe ("what ' s").
CONTRACTION_PIECES = frozenset(("s", "t", "d", "m", "ll", "re", "ve", "nt"))
VERSION = 2  # of the features: part of the cache key
EVAL_FLOOR = 0.65  # lookups below this never reach a verifier in any candidate
Words = tuple[list[str], np.ndarray]


def token_states(embedder: Embedder, texts: Sequence[str]) -> list[Words]:
    """Per text, its word pieces and their unit hidden states (special tokens left out)."""
    model = embedder._state().engine.model  # the session fastembed runs, before pooling
    encodings = model.tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    hidden = np.asarray(model.model.run(None, feeds)[0], dtype=np.float32)
    out = []
    for row, enc in enumerate(encodings):
        keep = [i for i, s in enumerate(enc.special_tokens_mask) if not s and mask[row, i]]
        states = hidden[row, keep]
        states /= np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
        out.append(([enc.tokens[i] for i in keep], states))
    return out


def merge_words(pieces: Words) -> Words:
    """Word pieces merged into words (mean state), punctuation left out."""
    words: list[str] = []
    groups: list[list[np.ndarray]] = []
    for piece, state in zip(*pieces, strict=True):
        if piece.startswith("##") and words:
            words[-1] += piece[2:]
            groups[-1].append(state)
        else:
            words.append(piece)
            groups.append([state])
    keep = [i for i, w in enumerate(words) if any(c.isalnum() for c in w)]
    if not keep:
        return [], np.zeros((0, 1), dtype=np.float32)
    vectors = np.array([np.mean(groups[i], axis=0) for i in keep])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return [words[i] for i in keep], vectors


def _content(word: str) -> bool:
    return word not in lex.IGNORABLE and word not in CONTRACTION_PIECES


def token_features(a: Words, b: Words) -> np.ndarray:
    """``TOKEN_FEATURES`` of two texts' word states (``merge_words``)."""
    (wa, va), (wb, vb) = a, b
    if not wa or not wb:
        return np.array([0.0, 0.0, 0.0, 1.0])
    sim = va @ vb.T
    content_a = [i for i, w in enumerate(wa) if _content(w)]
    content_b = [j for j, w in enumerate(wb) if _content(w)]
    best_a = sim.max(axis=1)[content_a] if content_a else np.ones(1)
    best_b = sim.max(axis=0)[content_b] if content_b else np.ones(1)
    worst_a, worst_b = float(best_a.min()), float(best_b.min())
    low = int((best_a < LOW_MATCH).sum() + (best_b < LOW_MATCH).sum())
    mean = float(np.concatenate([best_a, best_b]).mean())
    return np.array([min(worst_a, worst_b), max(worst_a, worst_b), mean, min(low, 3) / 3])


def pair_token_features(
    emb: ge.CachedEmbedder, pairs: Sequence[tv.Pair], cache: Path
) -> np.ndarray:
    """Token features of every pair; all texts through the model in batches of 32 (cached)."""
    texts = sorted({t for p in pairs for t in (p.query, p.cached)}, key=lambda t: (len(t), t))
    key = hashlib.sha256("\n".join(f"{p.query}\t{p.cached}" for p in pairs).encode()).hexdigest()
    path = cache / f"verifier-tokens{VERSION}-{emb.embedder.fingerprint.digest}-{key[:16]}.npy"
    if path.exists():
        return np.asarray(np.load(path))
    words: dict[str, Words] = {}
    for start in range(0, len(texts), 32):
        chunk = texts[start : start + 32]
        for text, pieces in zip(chunk, token_states(emb.embedder, chunk), strict=True):
            words[text] = merge_words(pieces)
    x = np.round(np.array([token_features(words[p.query], words[p.cached]) for p in pairs]), 6)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


class Rows:
    """Pairs with both feature sets, the rules' verdict, labels, sources and halves."""

    def __init__(self, emb: ge.CachedEmbedder, pairs: list[tv.Pair], design: np.ndarray,
                 cache: Path) -> None:  # fmt: skip
        self.pairs = pairs
        self.base = tv.features(pairs, emb)
        self.both = np.hstack([self.base, pair_token_features(emb, pairs, cache)])
        self.rules = np.array([check_guards(p.query, p.cached, p.similarity, embed=emb).allowed
                               for p in pairs])  # fmt: skip
        self.y = np.array([p.same for p in pairs])
        self.sim = np.array([p.similarity for p in pairs])
        self.src = np.array([p.source for p in pairs])
        self.design = design


def fit_lr(x: np.ndarray, y: np.ndarray, src: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``train_verifier``'s model: standardized features, weighted L2 logistic regression."""
    groups = {(s, c): int(((src == s) & (y == c)).sum()) for s in set(src.tolist()) for c in (0, 1)}
    n_src = len(set(src.tolist()))
    weight = np.array(
        [len(y) / (2 * n_src * groups[s, int(c)]) for s, c in zip(src, y, strict=True)]
    )
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3)
    w, b = tv.fit((x - mean) / scale, y.astype(float), weight)
    return lambda z: 1.0 / (1.0 + np.exp(-(((z - mean) / scale) @ w + b)))


def probabilities(train: Rows, evals: dict[str, Rows], kind: str) -> dict[str, np.ndarray]:
    """fow-cache design rows by 5-fold cross-validation; every other row from one model
    trained on all training rows (fow-cache held-out rows never train anything)."""
    pick: Callable[[Rows], np.ndarray] = (
        (lambda r: r.base) if kind == "base" else (lambda r: r.both)
    )
    natural = train.src != "fow-design"
    fow = evals["fow-cache"]
    folds = np.array([zlib.crc32(p.query.encode()) % 5 for p in fow.pairs])
    out = {name: np.zeros(len(r.y)) for name, r in evals.items()}

    def model(extra: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        x = np.vstack([pick(train)[natural], pick(fow)[extra]])
        y = np.concatenate([train.y[natural], fow.y[extra]])
        src = np.concatenate([train.src[natural], np.array(["fow-design"] * int(extra.sum()))])
        return fit_lr(x, y, src)

    for k in range(5):
        out["fow-cache"][fow.design & (folds == k)] = model(fow.design & (folds != k))(
            pick(fow)[fow.design & (folds == k)]
        )
    full = model(fow.design)
    out["fow-cache"][~fow.design] = full(pick(fow)[~fow.design])
    for name, rows in evals.items():
        if name != "fow-cache":
            out[name] = full(pick(rows))
    return out


Served = Callable[[Rows, np.ndarray, float], np.ndarray]
THRESHOLD = DEFAULT_SIMILARITY_THRESHOLD


def rules_today(r: Rows, p: np.ndarray, setting: float) -> np.ndarray:
    return r.rules & (r.sim >= setting)


def rules_and_model(floor: float) -> Served:
    return lambda r, p, cutoff: r.rules & (r.sim >= floor) & (p >= cutoff)


def token_veto(threshold: float) -> Served:
    """The rules at ``threshold``, and no content word matched below the cut."""
    return lambda r, p, cut: (
        r.rules & (r.sim >= threshold) & (r.both[:, len(tv.FEATURE_NAMES)] >= cut)
    )


# (label, model kind, policy, the setting chosen on design rows, sweep for the plot)
CANDIDATES: list[tuple[str, str, Served, float, Sequence[float]]] = [
    ("rules (threshold swept)", "base", rules_today, THRESHOLD, np.arange(0.70, 1.0, 0.01)),
    ("rules + shipped features, floor 0.72", "base", rules_and_model(0.72), 0.5,
     np.arange(0.05, 1.0, 0.01)),
    ("rules + shipped + token features, floor 0.72", "both", rules_and_model(0.72), 0.5,
     np.arange(0.05, 1.0, 0.01)),
    ("rules at 0.85 + token veto", "both", token_veto(THRESHOLD), 0.4, np.arange(0.0, 0.9, 0.02)),
    ("rules at 0.82 + token veto", "both", token_veto(0.82), 0.3, np.arange(0.0, 0.9, 0.02)),
]  # fmt: skip


def rates(
    served: np.ndarray, rows: Rows, keep: np.ndarray, positives: int
) -> tuple[float, float, int, int]:
    s = served & keep
    tp = int((s & rows.y).sum())
    return tp / max(positives, 1), tp / max(int(s.sum()), 1), int(s.sum()), int(s.sum()) - tp


def load(
    data: Path, emb: ge.CachedEmbedder, cache: Path
) -> tuple[Rows, dict[str, Rows], dict[str, tuple[int, int]]]:
    train_pairs = tv.training_pairs(data, emb)
    train = Rows(emb, train_pairs, np.ones(len(train_pairs), bool), cache)
    evals, positives = {}, {}
    for name, lookups in (("fow-cache", ge.fow_pairs(data, emb, "different")),
                          ("Banking77 test", ge.banking(data, emb)),
                          ("CLINC150 test+oos", ge.clinc(data, emb))):  # fmt: skip
        near = [lk for lk in lookups if lk.similarity >= EVAL_FLOOR]
        pairs = [tv.Pair(lk.query, lk.cached, lk.similarity, lk.should_hit, name) for lk in near]
        evals[name] = Rows(emb, pairs, np.array([lk.design for lk in near]), cache)
        positives[name] = (sum(lk.should_hit for lk in lookups if lk.design),
                           sum(lk.should_hit for lk in lookups if not lk.design))  # fmt: skip
    return train, evals, positives


def latency(embedder: Embedder, pairs: Sequence[tv.Pair], rounds: int = 5) -> str:
    """A,B interleaved per pair: one query embedding (A) vs the token features of the pair (B: both
    texts through the model in one call, plus numpy); median of round medians and spread."""
    import time

    embedder.embed(["warm up"])
    medians: dict[str, list[float]] = {"query": [], "tokens": []}
    for round_ in range(rounds):
        took: dict[str, list[float]] = {"query": [], "tokens": []}
        for i, p in enumerate(pairs):  # A,B per pair, the order alternating
            for label in ("query", "tokens") if (i + round_) % 2 else ("tokens", "query"):
                started = time.perf_counter()
                if label == "query":
                    embedder.embed([p.query])
                else:
                    wa, wb = (merge_words(s) for s in token_states(embedder, [p.query, p.cached]))
                    token_features(wa, wb)
                took[label].append(1000 * (time.perf_counter() - started))
        for label, values in took.items():
            medians[label].append(float(np.median(values)))
    q, t = (float(np.median(medians[k])) for k in ("query", "tokens"))
    spread = {k: f"{min(v):.2f}-{max(v):.2f}" for k, v in medians.items()}
    return (
        f"latency ({rounds} interleaved rounds x {len(pairs)} pairs): query embedding p50 "
        f"{q:.2f} ms (rounds {spread['query']}), token features p50 {t:.2f} ms "
        f"(rounds {spread['tokens']}): {t / q:.2f}x"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ge.DATASETS)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "guards_cache")
    parser.add_argument("--plot", type=Path, default=RESULTS / "verifier-tokens.png")
    parser.add_argument("--latency", action="store_true", help="only the latency figures")
    args = parser.parse_args(argv)
    emb = ge.CachedEmbedder(args.cache)
    if args.latency:
        fow = [lk for lk in ge.fow_pairs(args.data, emb, "different") if not lk.design]
        near = [tv.Pair(lk.query, lk.cached, lk.similarity, lk.should_hit, "fow")
                for lk in fow if lk.similarity >= 0.72][:100]  # fmt: skip
        print(latency(emb.embedder, near))
        return 0
    train, evals, positives = load(args.data, emb, args.cache)
    probs = {kind: probabilities(train, evals, kind) for kind in ("base", "both")}
    plot: dict[str, dict[str, list[tuple[float, float]]]] = {}
    print("| data | rows | system | setting | hit rate | precision | served | wrong |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for half in ("design", "held-out", "all"):
        for name, rows in evals.items():
            keep = rows.design == (half == "design") if half != "all" else rows.design | True
            pos = sum(positives[name]) if half == "all" else positives[name][half != "design"]
            for label, kind, served, setting, sweep in CANDIDATES:
                p = probs[kind][name]
                hit, prec, n, wrong = rates(served(rows, p, setting), rows, keep, pos)
                print(f"| {name} | {half} | {label} | {setting} | {hit:.3f} | {prec:.4f} | "
                      f"{n} | {wrong} |")  # fmt: skip
                if half == "held-out":
                    plot.setdefault(name, {})[label] = [
                        rates(served(rows, p, s), rows, keep, pos)[:2] for s in sweep
                    ]
    draw(plot, args.plot)
    print(f"plot: {args.plot}")
    return 0


def draw(plot: dict[str, dict[str, list[tuple[float, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plot), figsize=(5 * len(plot), 4.2))
    for ax, (name, curves) in zip(np.atleast_1d(axes), plot.items(), strict=True):
        for label, points in curves.items():
            ax.plot([q[0] for q in points], [q[1] for q in points], label=label)
        ax.set_title(f"{name} (held-out half)")
        ax.set_xlabel("hit rate")
        ax.set_ylabel("precision")
        ax.set_ylim(0.8, 1.005)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    raise SystemExit(main())
