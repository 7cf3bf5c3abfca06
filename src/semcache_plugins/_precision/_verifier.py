"""The learned verifier: a second opinion on semantic candidates, from features of the pair.

Cosine similarity of whole texts cannot tell a paraphrase from a one-word trap, and a threshold
high enough to stop traps throws most paraphrases away. The verifier looks at what *differs*:
the two texts are aligned with the guards' tokenizer (``_guards``), and the features describe
the differing spans (their cosine, their share of the text, one-sided edits, numbers, negators,
question words). A logistic regression over them (weights shipped as versioned JSON, rebuilt by
``python -m bench.train_verifier``) says whether the cached answer may serve the query.

No feature looks at a text's style (e.g. a shared first word): in adversarial pair sets that
marks a trap, in natural traffic a paraphrase.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from importlib import resources
from typing import Any

import numpy as np

from .._errors import ConfigurationError
from . import _guard_lexicon as lex
from ._guards import _tokenize

__all__ = [
    "FEATURE_NAMES",
    "VERIFIER_FORMAT",
    "Verifier",
    "differing_spans",
    "load_verifier",
    "pair_features",
    "served_floor",
    "span_texts",
    "verifier_from_json",
]

#: The weights file format this code reads; another one is refused (the verifier is then off).
VERIFIER_FORMAT = 1
WEIGHTS_FILE = "verifier_weights.json"

FEATURE_NAMES = (
    "cosine",  # of the whole texts (the KNN similarity)
    "span_cosine",  # of the differing spans (1 when nothing differs, 0 when one side is empty)
    "diff_share",  # share of the words (fillers left out) that are in a differing span
    "one_sided",  # words only added (or only dropped): nothing replaced
    "edits",  # how many places differ (0..3, capped)
    "number_mismatch",  # the numbers differ (as multisets)
    "negation_mismatch",  # an odd number of negators on one side only
    "overlap",  # Jaccard overlap of the content-word stems
    "length_ratio",  # shorter / longer, in content words
    "question_mismatch",  # both ask with a question word, and not the same one
)

_QUESTION_WORDS = frozenset(("what", "how", "why", "when", "where", "who", "which", "whose"))

Embed = Callable[[Sequence[str]], "Sequence[Any] | np.ndarray"]


def differing_spans(query: str, cached: str) -> tuple[list[str], list[str], int]:
    """The differing spans of the two texts (aligned by the guards' token stems, fillers left
    out) as text, one per place, and how many places differ."""
    ta = [t for t in _tokenize(query) if t.norm not in lex.FILLERS]
    tb = [t for t in _tokenize(cached) if t.norm not in lex.FILLERS]
    matcher = SequenceMatcher(None, [t.key for t in ta], [t.key for t in tb], autojunk=False)
    spans_a: list[str] = []
    spans_b: list[str] = []
    places = 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        places += 1
        if i2 > i1:
            spans_a.append(" ".join(t.word or t.norm for t in ta[i1:i2]))
        if j2 > j1:
            spans_b.append(" ".join(t.word or t.norm for t in tb[j1:j2]))
    return spans_a, spans_b, places


def span_texts(query: str, cached: str) -> tuple[str, str] | None:
    """The two texts whose cosine is ``span_cosine``, or None when no embedding is needed."""
    spans_a, spans_b, _ = differing_spans(query, cached)
    if not spans_a or not spans_b:
        return None
    return " ".join(spans_a), " ".join(spans_b)


def _question_word(norms: Sequence[str]) -> str:
    return next((w for w in norms if w in _QUESTION_WORDS), "")


def pair_features(
    query: str, cached: str, similarity: float, span_cosine: float | None = None, *,
    embed: Embed | None = None,
) -> np.ndarray:  # fmt: skip
    """The feature vector (``FEATURE_NAMES``) of a pair whose whole-text cosine is
    ``similarity``. ``span_cosine`` is given, or computed with ``embed`` (texts -> unit
    vectors) when both sides have a differing span; missing both, it is a ``ValueError``."""
    ta, tb = _tokenize(query), _tokenize(cached)
    spans_a, spans_b, places = differing_spans(query, cached)
    if not spans_a and not spans_b:
        span = 1.0
    elif not spans_a or not spans_b:
        span = 0.0
    elif span_cosine is not None:
        span = span_cosine
    elif embed is not None:
        va, vb = (np.asarray(v, dtype=np.float32) for v in embed([" ".join(spans_a),
                                                                  " ".join(spans_b)]))  # fmt: skip
        span = float(va @ vb)
    else:
        raise ValueError("pair_features needs span_cosine or embed for a two-sided edit")
    ca = [t for t in ta if t.norm not in lex.IGNORABLE]
    cb = [t for t in tb if t.norm not in lex.IGNORABLE]
    keys_a, keys_b = {t.key for t in ca}, {t.key for t in cb}
    union = keys_a | keys_b
    words = sum(t.norm not in lex.FILLERS for t in [*ta, *tb])
    differing = sum(len(span.split()) for span in [*spans_a, *spans_b])
    nums_a = Counter(t.norm for t in ta if t.norm.startswith("#"))
    nums_b = Counter(t.norm for t in tb if t.norm.startswith("#"))
    neg_a = sum(t.norm in lex.NEGATORS for t in ta)
    neg_b = sum(t.norm in lex.NEGATORS for t in tb)
    qa, qb = _question_word([t.norm for t in ta]), _question_word([t.norm for t in tb])
    longer = max(len(ca), len(cb))
    return np.array(
        [
            similarity,
            span,
            min(differing / words, 1.0) if words else 0.0,
            float(bool(spans_a) != bool(spans_b)),
            min(places, 3) / 3.0,
            float(nums_a != nums_b),
            float(neg_a % 2 != neg_b % 2),
            len(keys_a & keys_b) / len(union) if union else 1.0,
            min(len(ca), len(cb)) / longer if longer else 1.0,
            float(bool(qa and qb and qa != qb)),
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class Verifier:
    """A logistic regression over standardized ``FEATURE_NAMES``; serves when p >= cutoff."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    cutoff: float
    floor: float  # the lowest similarity it was trained for
    digest: str = ""  # sha256 of the weights file

    def probability(self, features: np.ndarray) -> float:
        z = float(((features - self.mean) / self.scale) @ self.weights) + self.bias
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def allows(self, features: np.ndarray) -> bool:
        return self.probability(features) >= self.cutoff

    def verify(
        self, query: str, cached: str, similarity: float, *, embed: Embed | None = None
    ) -> bool:
        """May the answer cached for ``cached`` serve ``query``?"""
        return self.allows(pair_features(query, cached, similarity, embed=embed))


def served_floor(threshold: float, verifier_floor: float | None) -> float:
    """The lowest similarity a candidate may be served from: the threshold, or with the
    verifier on (``verifier_floor`` not None) the lower of it and the verifier's floor."""
    return threshold if verifier_floor is None else min(threshold, verifier_floor)


def verifier_from_json(text: str) -> Verifier:
    """Parse a weights file; a ``ConfigurationError`` names what is wrong with it."""
    try:
        data = json.loads(text)
        version = data.get("format") if isinstance(data, dict) else None
        if version != VERIFIER_FORMAT:
            raise ConfigurationError(
                f"verifier weights have format {version!r}; this version reads {VERIFIER_FORMAT}"
            )
        if tuple(data["features"]) != FEATURE_NAMES:
            raise ConfigurationError("verifier weights are for other features")
        arrays = [np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "weights")]
        if any(a.shape != (len(FEATURE_NAMES),) for a in arrays) or np.any(arrays[1] <= 0):
            raise ConfigurationError("verifier weights have the wrong shape")
        digest = hashlib.sha256(text.encode()).hexdigest()
        mean, scale, weights = arrays
        bias, cutoff, floor = (float(data[k]) for k in ("bias", "cutoff", "floor"))
        return Verifier(mean, scale, weights, bias, cutoff, floor, digest)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"verifier weights unreadable: {exc}") from None


def load_verifier() -> Verifier:
    """The verifier whose weights ship in the package."""
    text = resources.files("semcache_plugins._precision").joinpath(WEIGHTS_FILE).read_text("utf-8")
    return verifier_from_json(text)
