"""Audit of served semantic hits, the pure part: sampling, answer comparison, the false-hit
estimate (Wilson interval) and the audit record format.

A sampled semantic hit is still sent to the provider; the fresh answer is compared with the
served one (``compare_answers``) and the verdict recorded (``_audit_run``). The share of
disagreements among audited hits estimates the live false-hit rate.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._answer import answer_content

__all__ = [
    "AUDIT_RECORD_VERSION",
    "AnswerComparison",
    "AuditRecord",
    "AuditSampler",
    "DEMOTED_FIELD",
    "SHORT_ANSWER_CHARS",
    "answer_text",
    "compare_answers",
    "demoted_ids",
    "false_hit_estimate",
    "format_rate",
    "is_demoted",
    "wilson_interval",
]

AUDIT_RECORD_VERSION = 1
#: Answers shorter than this (or with tool calls) must match exactly: an embedding cannot tell
#: "Yes." from "No." or "42" from "24".
SHORT_ANSWER_CHARS = 40
#: The entry hash field set once an entry has had enough disagreements (never signed: it can
#: only withdraw an entry from semantic serving, see ``is_demoted``).
DEMOTED_FIELD = "demoted"
_Z95 = 1.959963984540054
_PUNCT = re.compile(r"[\s.,;:!?'\"`()\[\]]+")


def wilson_interval(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default); (0, 1) for no
    trials. Unlike the normal approximation it stays inside [0, 1] and is honest at 0/n."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def false_hit_estimate(audited: int, disagreements: int) -> dict[str, float | None]:
    """The estimated false-hit rate of semantic hits and its 95% Wilson interval (None, 0, 1
    before any audit)."""
    low, high = wilson_interval(disagreements, audited)
    rate = disagreements / audited if audited else None
    return {"false_hit_rate": rate, "false_hit_rate_low": low, "false_hit_rate_high": high}


def format_rate(estimate: Mapping[str, Any]) -> str:
    """A ``false_hit_estimate`` as one phrase: "1.25% (95% interval 0.40% - 3.90%)"."""
    rate = estimate.get("false_hit_rate")
    if rate is None:
        return "no audits yet"
    low, high = estimate["false_hit_rate_low"], estimate["false_hit_rate_high"]
    return f"{rate:.2%} (95% interval {low:.2%} - {high:.2%})"


class AuditSampler:
    """Decides which semantic hits are audited: each with probability ``rate`` (thread-safe;
    a seeded ``rng`` makes the choice reproducible)."""

    def __init__(self, rate: float, rng: random.Random | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"audit rate must be in [0, 1], not {rate}")
        self.rate = rate
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - sampling
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        if self.rate <= 0.0:
            return False
        if self.rate >= 1.0:
            return True
        with self._lock:
            return self._rng.random() < self.rate


@dataclass(frozen=True)
class AnswerComparison:
    """Whether a fresh answer agrees with the served one, and how it was judged."""

    agree: bool
    similarity: float  # cosine of the answer texts (1.0 / 0.0 when compared exactly)
    method: str  # "same" | "exact" | "embedding"


def answer_text(response: Any) -> str:
    """The text a response shows (choices joined by blank lines; tool calls as name(args))."""
    content: Any = answer_content(response)
    if isinstance(content, tuple) and content and content[0] == "json":
        return str(content[1])
    parts = []
    for text, calls in content:
        shown = [text] + [f"{name}({args})" for name, args in calls]
        parts.append("\n".join(part for part in shown if part))
    return "\n\n".join(parts)


def _has_calls_or_is_raw(content: Any) -> bool:
    if isinstance(content, tuple) and content and content[0] == "json":
        return True
    return any(calls for _, calls in content)


def _folded(text: str) -> str:
    return _PUNCT.sub(" ", text.casefold()).strip()


def compare_answers(
    served: Any,
    fresh: Any,
    embed: Callable[[Sequence[str]], np.ndarray],
    threshold: float,
) -> AnswerComparison:
    """Compare what was served with what the provider answers now, by what is shown
    (``answer_content``: text and tool calls, no ids or usage). Tool calls, raw values and short
    answers must match exactly (case and punctuation aside); longer texts agree when the
    cosine of their embeddings (the cache's own model) reaches ``threshold``."""
    served_content: Any = answer_content(served)
    fresh_content: Any = answer_content(fresh)
    if served_content == fresh_content:
        return AnswerComparison(True, 1.0, "same")
    served_text, fresh_text = answer_text(served), answer_text(fresh)
    if (
        _has_calls_or_is_raw(served_content)
        or _has_calls_or_is_raw(fresh_content)
        or min(len(served_text.strip()), len(fresh_text.strip())) < SHORT_ANSWER_CHARS
    ):
        same = _folded(served_text) == _folded(fresh_text)
        return AnswerComparison(same, 1.0 if same else 0.0, "exact")
    vectors = np.asarray(embed([served_text, fresh_text]), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    similarity = float(vectors[0] @ vectors[1] / max(float(norms[0] * norms[1]), 1e-12))
    similarity = max(-1.0, min(1.0, similarity))
    return AnswerComparison(similarity >= threshold, round(similarity, 6), "embedding")


@dataclass(frozen=True)
class AuditRecord:
    """One audited hit: the query, the entry that answered it, and both answers."""

    entry_id: str
    query: str  # the prompt of the request that got the hit
    matched_prompt: str  # the prompt the entry was stored under
    similarity: float  # of the prompts (the hit's)
    answer_similarity: float
    agree: bool
    method: str
    served: str
    fresh: str
    at: float
    shadow: bool = False  # found in shadow mode (nothing was served)

    def to_json(self) -> str:
        return json.dumps(
            {"v": AUDIT_RECORD_VERSION, **asdict(self)}, ensure_ascii=True, separators=(",", ":")
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> AuditRecord | None:
        """The record, or None for a value of another version or shape."""
        try:
            value = json.loads(text)
            if not isinstance(value, dict) or value.pop("v", None) != AUDIT_RECORD_VERSION:
                return None
            return cls(**value)
        except (ValueError, TypeError):
            return None


def is_demoted(fields: Mapping[str, Any] | None) -> bool:
    """Whether a stored entry's fields carry the demotion flag (excluded from semantic hits)."""
    if not fields:
        return False
    value = fields.get(DEMOTED_FIELD)
    return value not in (None, b"", "", b"0", "0")


def demoted_ids(
    close: Sequence[tuple[float, str]], found: Sequence[Mapping[str, Any] | None]
) -> frozenset[str]:
    """The entry ids among a lookup's candidates (``close``: (similarity, key); ``found``:
    their fields) that an audit demoted. The lookup keeps them as neighbours, so a demoted
    entry with another answer still makes a close neighbour a miss, but never serves them."""
    return frozenset(
        key.rsplit(":", 1)[-1]
        for (_, key), fields in zip(close, found, strict=True)
        if is_demoted(fields)
    )
