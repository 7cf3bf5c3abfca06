"""How far labelled pairs can vouch for a false-hit rate: exact binomial upper bounds.

A threshold's observed false-hit rate on k must-not-hit pairs says little about unseen traffic
when k is small: with none of 10 served, the true rate may still be 26% (95% confidence). The
calibration therefore judges a threshold by the one-sided upper confidence limit below
(Clopper-Pearson); with no false hit it is ``1 - 0.05 ** (1 / k)``, about ``3 / k`` (the rule of
three), hence a target rate r takes about ``3 / r`` must-not-hit pairs (:func:`negatives_needed`).
"""

from __future__ import annotations

from math import ceil, exp, lgamma, log, log1p

from .._errors import ConfigurationError

__all__ = ["CONFIDENCE", "check_target", "false_hit_bound", "negatives_needed"]

#: Confidence of the false-hit bound a threshold must meet its target with.
CONFIDENCE = 0.95


def check_target(target_false_hit_rate: float) -> float:
    """The target, if a false-hit rate strictly between 0 and 1 (0 can never be shown)."""
    if not 0.0 < target_false_hit_rate < 1.0:
        raise ConfigurationError(
            f"the target false-hit rate must be between 0 and 1 (exclusive), "
            f"not {target_false_hit_rate:g}"
        )
    return target_false_hit_rate


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n may be large)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = log(p), log1p(-p)
    base = lgamma(n + 1)
    return min(
        1.0,
        sum(
            exp(base - lgamma(i + 1) - lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
            for i in range(k + 1)
        ),
    )


def false_hit_bound(false_hits: int, negatives: int, confidence: float = CONFIDENCE) -> float:
    """Upper confidence limit of the false-hit rate after ``false_hits`` of ``negatives``.

    Exact one-sided Clopper-Pearson: the rate p at which seeing ``false_hits`` or fewer has
    probability ``1 - confidence``. With no false hit: ``1 - (1 - confidence) ** (1 / n)``.
    No negatives bound nothing (1.0).
    """
    if negatives <= 0 or false_hits >= negatives:
        return 1.0
    alpha = 1.0 - confidence
    if false_hits == 0:
        return 1.0 - float(alpha ** (1.0 / negatives))
    low, high = false_hits / negatives, 1.0
    for _ in range(60):  # bisection: the CDF falls as p rises
        middle = (low + high) / 2
        if _binomial_cdf(false_hits, negatives, middle) > alpha:
            low = middle
        else:
            high = middle
    return high


def negatives_needed(target_false_hit_rate: float, confidence: float = CONFIDENCE) -> int:
    """Fewest must-not-hit pairs that, none served, bound the false-hit rate within the target."""
    check_target(target_false_hit_rate)
    return max(1, ceil(log(1.0 - confidence) / log1p(-target_false_hit_rate) - 1e-9))
