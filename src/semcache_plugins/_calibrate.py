"""Threshold calibration: sweep cosine thresholds over labelled pairs, pick the lowest safe one.

"Safe" is a claim about traffic the pairs have not seen, so it is judged by a bound, not by the
observed rate: at each threshold, the false-hit rate is bounded by the one-sided 95% upper
confidence limit (exact binomial, Clopper-Pearson) of the false hits among the must-not-hit pairs.
A threshold meets a target only when that bound is within it. With none of k negatives served
the bound is 1 - 0.05**(1/k), about 3/k (the rule of three), so a target rate r needs at least
:func:`negatives_needed` (about 3/r) must-not-hit pairs: 299 for 1%, 59 for 5%. :func:`calibrate`
refuses fewer (:class:`CalibrationError`) before embedding anything, unless ``force``.

The sweep (:func:`sweep`) is pure: it takes one :class:`ScoredPair` per labelled pair (cosine
plus the guard verdict) so it is testable without the model. :func:`calibrate` does the I/O:
batched embeddings and one guard check per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ._cache._scope import normalize_text
from ._embedding._embedder import Embedder
from ._errors import CalibrationError, ConfigurationError
from ._precision._calibrate_bound import check_target, false_hit_bound, negatives_needed
from ._precision._guards import check_guards

__all__ = [
    "CalibrationPair",
    "CalibrationResult",
    "CalibrationRow",
    "ScoredPair",
    "calibrate",
    "calibration_pair",
    "check_support",
    "sweep",
    "thresholds",
]

_BATCH = 64


def check_support(should_hit: int, must_not_hit: int, target_false_hit_rate: float) -> None:
    """Raise :class:`CalibrationError` when the pair counts cannot support the target."""
    needed = negatives_needed(target_false_hit_rate)
    if must_not_hit < needed:
        claim = false_hit_bound(0, must_not_hit)
        raise CalibrationError(
            f"{must_not_hit} must-not-hit pairs cannot show a false-hit rate <= "
            f"{target_false_hit_rate:.2%}: even with none served, the 95% bound is {claim:.2%}; "
            f"it takes at least {needed} must-not-hit pairs (rule of three: ~3/target)"
        )
    if should_hit == 0:
        raise CalibrationError("no should-hit pairs: the hit rate a threshold keeps is unknown")


def thresholds() -> list[float]:
    """The swept thresholds: 0.50, 0.51, ... 0.99."""
    return [round(0.50 + i / 100, 2) for i in range(50)]


@dataclass(frozen=True)
class CalibrationPair:
    """A cached prompt, a new query, and whether the cached answer should serve the query."""

    cached: str
    query: str
    should_hit: bool


@dataclass(frozen=True)
class ScoredPair:
    """A labelled pair reduced to what the sweep needs: its cosine and the guard verdict."""

    similarity: float
    should_hit: bool
    guard_allowed: bool = True


@dataclass(frozen=True)
class CalibrationRow:
    """The cache's behaviour on the pairs at one threshold."""

    threshold: float
    served: int  # pairs the cache would answer
    true_hits: int  # served pairs that should hit
    false_hits: int  # served pairs that must not hit
    hit_rate: float  # true_hits / should-hit pairs
    false_hit_rate: float  # false_hits / must-not-hit pairs
    precision: float  # true_hits / served (1.0 when nothing is served)
    false_hit_bound: float = 1.0  # 95% upper limit of the false-hit rate (see the module doc)


@dataclass(frozen=True)
class CalibrationResult:
    """The chosen threshold, whether it meets the target (its bound), and the whole sweep."""

    threshold: float
    target_false_hit_rate: float
    target_met: bool
    guards: bool
    should_hit: int
    must_not_hit: int
    rows: list[CalibrationRow]

    @property
    def negatives_needed(self) -> int:
        """Must-not-hit pairs needed to show the target at all (none of them served)."""
        return negatives_needed(self.target_false_hit_rate)

    @property
    def chosen(self) -> CalibrationRow:
        """The row of the chosen threshold."""
        return next(row for row in self.rows if row.threshold == self.threshold)

    def table(self) -> str:
        """A fixed-width table of the sweep, the chosen row marked with ``*``."""
        lines = [
            f"pairs: {self.should_hit} should hit, {self.must_not_hit} must not hit; "
            f"guards {'on' if self.guards else 'off'}; "
            f"target false-hit rate <= {self.target_false_hit_rate:.2%} (95% bound; needs >= "
            f"{self.negatives_needed} must-not-hit pairs)",
            f"  {'threshold':>9} {'hit rate':>9} {'false hits':>11} {'95% bound':>10}"
            f" {'precision':>10} {'served':>7}",
        ]
        for row in self.rows:
            mark = "*" if row.threshold == self.threshold else " "
            lines.append(
                f"{mark} {row.threshold:>9.2f} {row.hit_rate:>9.1%} {row.false_hit_rate:>11.1%}"
                f" {row.false_hit_bound:>10.1%} {row.precision:>10.1%} {row.served:>7}"
            )
        verdict = "meets the target" if self.target_met else "does NOT meet the target"
        lines.append(f"chosen threshold: {self.threshold:.2f} ({verdict})")
        return "\n".join(lines)


def _rate(part: int, whole: int, empty: float = 0.0) -> float:
    return part / whole if whole else empty


def sweep(
    scored: Sequence[ScoredPair], target_false_hit_rate: float = 0.01, *, guards: bool = True
) -> CalibrationResult:
    """Evaluate every threshold; choose the lowest whose false-hit bound is within the target.

    A pair is served when its cosine is >= the threshold and (with ``guards``) the guards allow
    it. When no threshold meets the target (too few must-not-hit pairs, or too many served), the
    highest one is chosen and ``target_met`` is False.
    """
    check_target(target_false_hit_rate)
    positives = sum(1 for pair in scored if pair.should_hit)
    negatives = len(scored) - positives
    rows: list[CalibrationRow] = []
    for threshold in thresholds():
        served = [
            pair
            for pair in scored
            if pair.similarity >= threshold and (pair.guard_allowed or not guards)
        ]
        true_hits = sum(1 for pair in served if pair.should_hit)
        false_hits = len(served) - true_hits
        rows.append(
            CalibrationRow(
                threshold=threshold,
                served=len(served),
                true_hits=true_hits,
                false_hits=false_hits,
                hit_rate=_rate(true_hits, positives),
                false_hit_rate=_rate(false_hits, negatives),
                precision=_rate(true_hits, len(served), empty=1.0),
                false_hit_bound=false_hit_bound(false_hits, negatives),
            )
        )
    safe = [row for row in rows if row.false_hit_bound <= target_false_hit_rate]
    chosen = safe[0] if safe else rows[-1]
    return CalibrationResult(
        threshold=chosen.threshold,
        target_false_hit_rate=target_false_hit_rate,
        target_met=bool(safe),
        guards=guards,
        should_hit=positives,
        must_not_hit=negatives,
        rows=rows,
    )


def calibration_pair(item: Any) -> CalibrationPair:
    """A pair from a mapping or an object with ``cached``, ``query`` and ``should_hit``."""
    get: Callable[[str], Any]
    if isinstance(item, Mapping):
        get = item.get
    else:

        def get(name: str) -> Any:
            return getattr(item, name, None)

    cached, query, should_hit = get("cached"), get("query"), get("should_hit")
    if not isinstance(cached, str) or not isinstance(query, str):
        raise ConfigurationError("each pair needs string 'cached' and 'query'")
    if not isinstance(should_hit, bool):
        raise ConfigurationError("each pair needs a boolean 'should_hit'")
    return CalibrationPair(cached, query, should_hit)


def _score_chunk(
    chunk: list[CalibrationPair], embedder: Embedder, guards: bool
) -> list[ScoredPair]:
    texts = [normalize_text(text) for pair in chunk for text in (pair.query, pair.cached)]
    vectors = embedder.embed(texts)  # one batched call per chunk
    scored = []
    for i, pair in enumerate(chunk):
        query, cached = texts[2 * i], texts[2 * i + 1]
        similarity = min(float(vectors[2 * i] @ vectors[2 * i + 1]), 1.0)
        allowed = True
        if guards:
            allowed = check_guards(query, cached, similarity, embed=embedder.embed).allowed
        scored.append(ScoredPair(similarity, pair.should_hit, allowed))
    return scored


def score_pairs(
    pairs: Iterable[Any],
    *,
    embedder: Embedder,
    guards: bool = True,
    batch_size: int = _BATCH,
    progress: Callable[[int], None] | None = None,
) -> list[ScoredPair]:
    """Cosine (and guard verdict) for every pair, embedding ``batch_size`` pairs per call."""
    iterator = (calibration_pair(item) for item in pairs)
    scored: list[ScoredPair] = []
    while chunk := list(islice(iterator, batch_size)):
        scored.extend(_score_chunk(chunk, embedder, guards))
        if progress is not None:
            progress(len(chunk))
    return scored


def calibrate(
    pairs: Iterable[Any],
    target_false_hit_rate: float = 0.01,
    *,
    guards: bool = True,
    embedder: Embedder | None = None,
    progress: Callable[[int], None] | None = None,
    force: bool = False,
) -> CalibrationResult:
    """Pick the lowest similarity threshold whose false-hit bound on ``pairs`` is within target.

    ``pairs``: mappings or objects with ``cached``, ``query`` and ``should_hit``. ``progress``
    is called with the number of pairs done after each batch. The target and the pair counts
    are checked before anything is embedded: too few must-not-hit pairs for the target (see
    :func:`negatives_needed`) or no should-hit pair raise :class:`CalibrationError`, unless
    ``force`` (the result then says whether the target is met).
    """
    check_target(target_false_hit_rate)
    labelled = [calibration_pair(item) for item in pairs]
    if not labelled:
        raise CalibrationError("calibration needs labelled pairs")
    positives = sum(pair.should_hit for pair in labelled)
    if not force:
        check_support(positives, len(labelled) - positives, target_false_hit_rate)
    model = embedder if embedder is not None else Embedder()
    scored = score_pairs(labelled, embedder=model, guards=guards, progress=progress)
    return sweep(scored, target_false_hit_rate, guards=guards)
