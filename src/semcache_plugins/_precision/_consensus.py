"""Which semantic candidate may be served: today's ratio test, or the neighbourhood's consensus.

A warmed cache (many questions, one canned answer per intent) holds the same answer under many
records. Its single nearest record is a noisy witness (Banking77: it carries another intent's
answer for 1 query in 12), but the *neighbourhood* says how safe serving is: whether several
close records hold the nearest answer, how much of the similarity-weighted vote it has, and how
far below it the nearest *different* answer sits. ``serving_order`` turns the candidates (in
scope, nearest first) into the indices that may serve, nearest first; the flow then tries each
against the audit demotion, the notation check and the guards, and serves the first that passes.

Consensus rule (``ConsensusPolicy``; tuned on the design halves, see
``bench/results/fragments/consensus.md``), with *a* = the nearest candidate's answer, *holders*
= the candidates holding *a* (from ``floor`` up), *gap* = nearest similarity minus that of the
nearest candidate holding another answer (or minus ``floor`` when none does):

- one holder (a lone candidate, e.g. a scope holding one entry): today's rule, similarity >=
  ``threshold`` and gap >= the agreement margin;
- 2 to ``quorum - 1`` holders: today's rule, with a gap of at least ``thin_gap`` (a thin
  neighbourhood must be clean: a small cache of paraphrases with one answer still serves);
- ``quorum`` holders or more: similarity >= threshold - ``reach`` (the neighbourhood vouches
  for a little less similarity), gap >= ``gap``, weighted share of *a* >= ``share`` (or >=
  ``wide_share`` when the gap is at least ``wide_gap``: a clearly separated answer may have a
  few farther dissenters) and the ``quorum``-th holder at least threshold - ``quorum_reach``
  similar. Failing that, it is still served as a thin neighbourhood would be (similarity >=
  threshold, gap >= ``thin_gap``): more holders never refuse what fewer would serve.

The similarities asked for move with the threshold (a stricter threshold stays stricter); the
vote floor and the gaps do not.

Only holders of *a* are ever served: a majority answer with a different answer nearer than all
its holders is never served (that nearer answer is *a*, and its gap decides). A record an audit
demoted still votes with its answer, as it still counts in today's ratio test; the flow never
serves it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from .._records import StoredRecord
from ._answer import answer_content, answers_agree

__all__ = [
    "ConsensusPolicy",
    "close_rows",
    "consensus_order",
    "serving_order",
]


@dataclass(frozen=True)
class ConsensusPolicy:
    """The consensus rule's constants (defaults tuned on the design halves only)."""

    neighbours: int = 16  # KNN rows asked for (today's lookup asks for 4)
    floor: float = 0.50  # neighbours from this similarity up count as votes
    reach: float = 0.05  # with a quorum: served from the threshold minus this (0.80 at 0.85)
    gap: float = 0.05  # with a quorum: nearest different answer at least this far below
    share: float = 0.90  # with a quorum: the answer's share of the weighted vote
    temperature: float = 0.05  # vote weight exp((similarity - 1) / temperature)
    quorum: int = 4  # holders needed to serve below the threshold
    quorum_reach: float = 0.15  # ... the quorum-th of them from the threshold minus this
    thin_gap: float = 0.25  # 2..quorum-1 holders: the gap today's rule must also keep
    wide_gap: float = 0.10  # with a quorum and a gap this wide ...
    wide_share: float = 0.85  # ... this weighted share suffices (see b77.md)


def consensus_order(
    neighbours: Sequence[tuple[float, Hashable]],
    policy: ConsensusPolicy,
    threshold: float,
    agreement_margin: float,
) -> list[int]:
    """Indices of ``neighbours`` ((similarity, answer), nearest first) that may serve, nearest
    first; all hold the nearest neighbour's answer. Empty: a miss. ``threshold`` and
    ``agreement_margin`` are today's rule, which a lone candidate keeps."""
    close = [
        (similarity, answer) for similarity, answer in neighbours if similarity >= policy.floor
    ]
    if not close:
        return []
    best, answer = close[0]
    holders = [index for index, (_, other) in enumerate(close) if other == answer]
    others = [similarity for similarity, other in close if other != answer]
    gap = best - (max(others) if others else policy.floor)
    allowed, lowest = False, threshold
    if len(holders) >= policy.quorum:
        weights = [math.exp((similarity - 1.0) / policy.temperature) for similarity, _ in close]
        share = sum(weights[index] for index in holders) / sum(weights)
        allowed = (
            gap >= policy.gap
            and (share >= policy.share or (gap >= policy.wide_gap and share >= policy.wide_share))
            and close[holders[policy.quorum - 1]][0] >= threshold - policy.quorum_reach
        )
        if allowed:
            lowest = threshold - policy.reach
    if not allowed:  # today's rule; a quorum failing its own is served as 2..quorum-1 would be
        margin = agreement_margin if len(holders) == 1 else max(agreement_margin, policy.thin_gap)
        allowed = gap >= margin
    if not allowed or best < lowest:
        return []
    return [index for index in holders if close[index][0] >= lowest]


def close_rows(
    rows: Sequence[dict[str, Any]],
    *,
    threshold: float,
    agreement_margin: float,
    guards: bool,
    policy: ConsensusPolicy | None,
) -> list[tuple[float, str]]:
    """(similarity, key) of the KNN rows (nearest first) whose records must be read. Today's
    rule: those from ``threshold - agreement_margin`` up (further ones can neither hit nor
    disagree with a hit). With ``policy`` (and guards): the votes from ``policy.floor`` up, but
    only when the nearest row could be served at all (else a miss with nothing read)."""
    policy = policy if guards else None
    if policy is None:
        floor = threshold - (agreement_margin if guards else 0.0)
    elif not rows or _similarity(rows[0]) < threshold - policy.reach:
        return []
    else:
        floor = policy.floor
    close = []
    for row in rows:
        similarity = _similarity(row)
        if similarity < floor:
            break  # nearest first
        close.append((similarity, str(row["id"])))
    return close


def _similarity(row: dict[str, Any]) -> float:
    return 1.0 - float(row.get("vector_distance", 2.0))


def serving_order(
    candidates: Sequence[tuple[float, StoredRecord]],
    *,
    threshold: float,
    agreement_margin: float,
    guards: bool,
    policy: ConsensusPolicy | None,
) -> list[int]:
    """Indices of ``candidates`` (in scope, nearest first) that may serve, in the order to try.

    Without ``policy`` (or without guards: no precision stack) it is today's lookup: from the
    nearest while the similarity reaches ``threshold`` and, with guards, until a neighbour
    within ``agreement_margin`` holds another answer (``_answer.answers_agree``)."""
    if policy is None or not guards:
        order = []
        for index, (similarity, _) in enumerate(candidates):
            if similarity < threshold:
                break  # nearest first
            if guards and not answers_agree(candidates, index, agreement_margin):
                break  # the query sits between two answers
            order.append(index)
        return order
    neighbours = [
        (similarity, answer_content(record.response)) for similarity, record in candidates
    ]
    return consensus_order(neighbours, policy, threshold, agreement_margin)
