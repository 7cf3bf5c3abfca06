"""Neighbour consensus (``_consensus``): pure decisions on tables of neighbourhoods, then a
warmed scope through ``CacheCore`` on a real Redis where consensus serves and where it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import pytest

from semcache_plugins import CacheCore, Embedder
from semcache_plugins._precision._answer import shown_answers
from semcache_plugins._precision._consensus import (
    ConsensusPolicy,
    close_rows,
    consensus_order,
    serving_order,
)
from semcache_plugins._records import StoredRecord
from shipped_data import banking77

POLICY = ConsensusPolicy()
THRESHOLD, MARGIN = 0.85, 0.08

Hood = list[tuple[float, Hashable]]


def _quorum(answer: str, top: float, n: int = 5, step: float = 0.01) -> Hood:
    return [(round(top - step * i, 4), answer) for i in range(n)]


# -- pure decisions ----------------------------------------------------------------------------

SERVES: list[tuple[str, Hood, list[int]]] = [
    ("clear majority below the threshold", _quorum("A", 0.83), [0, 1, 2, 3]),
    ("clear majority, a far different answer", [*_quorum("A", 0.84), (0.70, "B")], [0, 1, 2, 3, 4]),
    ("clear majority above the threshold", _quorum("A", 0.95, 6), [0, 1, 2, 3, 4, 5]),
    ("a lone candidate at the threshold", [(0.86, "A")], [0]),
    ("a lone holder, a different answer 0.09 below", [(0.90, "A"), (0.81, "B")], [0]),
    ("two clean holders (a small cache of paraphrases)", [(0.88, "A"), (0.86, "A")], [0, 1]),
    ("a quorum whose far votes are mixed", [*_quorum("A", 0.86, 4), (0.72, "B"), (0.71, "C")],
     [0, 1, 2, 3]),
]  # fmt: skip


# A quorum whose nearest different answer is clearly separated (gap >= wide_gap) may keep a few
# farther dissenters (weighted share >= wide_share); a quorum that fails its own rule is still
# served as a thin neighbourhood would be (similarity >= threshold, gap >= thin_gap).
_A4: Hood = [(0.90, "A"), (0.89, "A"), (0.88, "A"), (0.87, "A")]
WIDE_AND_MONOTONE: list[tuple[str, Hood, list[int]]] = [
    ("wide gap, share 0.88 (three dissenters 0.11 below)",
     [*_A4, (0.79, "B"), (0.79, "B"), (0.79, "B"), (0.78, "C")], [0, 1, 2, 3]),
    ("wide gap below the threshold, share 0.88",
     [(0.82, "A"), (0.81, "A"), (0.80, "A"), (0.80, "A"), (0.71, "B"), (0.71, "B"), (0.71, "B"),
      (0.70, "C")], [0, 1, 2, 3]),
    ("monotone: 4th holder far, nearest alone above the threshold, nothing else close",
     [(0.90, "A"), (0.70, "A"), (0.68, "A"), (0.66, "A")], [0]),
    ("monotone: 4th holder far, two holders above the threshold, a different answer 0.35 below",
     [(0.95, "A"), (0.88, "A"), (0.69, "A"), (0.68, "A"), (0.66, "A"), (0.60, "B")], [0, 1]),
]  # fmt: skip
WIDE_AND_MONOTONE_CONTROLS: list[tuple[str, Hood]] = [
    ("wide gap but share 0.83 (six dissenters)",
     [*_A4, *[(0.79, "B")] * 4, (0.78, "C"), (0.78, "C")]),
    ("wide gap but share 0.73", [*_A4, *[(0.79, "B")] * 7, *[(0.78, "C")] * 4]),
    ("share 0.87 but a different answer 0.07 below", [*_A4, (0.83, "B"), (0.82, "B")]),
    ("share 0.87, two answers 0.07 and 0.08 below", [*_A4, (0.83, "B"), (0.82, "C")]),
    ("monotone does not reach below the threshold",
     [(0.84, "A"), (0.69, "A"), (0.68, "A"), (0.67, "A")]),
    ("monotone needs the thin gap: a different answer 0.20 below",
     [(0.90, "A"), (0.69, "A"), (0.68, "A"), (0.67, "A"), (0.70, "B")]),
]  # fmt: skip


@pytest.mark.parametrize(("hood", "served"), [(h, s) for _, h, s in SERVES + WIDE_AND_MONOTONE],
                         ids=[name for name, _, _ in SERVES + WIDE_AND_MONOTONE])  # fmt: skip
def test_consensus_serves_the_nearest_answer_when_the_neighbourhood_vouches(
    hood: Hood, served: list[int]
) -> None:
    assert consensus_order(hood, POLICY, THRESHOLD, MARGIN) == served


MISSES: list[tuple[str, Hood]] = [
    ("a split neighbourhood (weighted share < 0.9)",
     [(0.88, "A"), (0.86, "A"), (0.85, "A"), (0.84, "A"), (0.82, "B"), (0.81, "B")]),
    ("a different answer within the quorum gap", [*_quorum("A", 0.86), (0.82, "B")]),
    ("a nearer different answer vetoes the majority", [(0.90, "B"), *_quorum("A", 0.89)]),
    ("a nearer lone answer, the majority 0.05 below", [(0.93, "B"), *_quorum("A", 0.88)]),
    ("a quorum too far away (4th holder < 0.70)",
     [(0.83, "A"), (0.75, "A"), (0.72, "A"), (0.69, "A")]),
    ("a quorum whose nearest is below the serve floor", _quorum("A", 0.79)),
    ("a lone candidate below the threshold", [(0.84, "A")]),
    ("a lone holder, a different answer within the margin", [(0.90, "A"), (0.83, "B")]),
    ("two holders, a different answer 0.2 below", [(0.90, "A"), (0.88, "A"), (0.70, "B")]),
    ("nothing above the vote floor", [(0.45, "A")]),
    ("no neighbours", []),
]  # fmt: skip


@pytest.mark.parametrize("hood", [h for _, h in MISSES + WIDE_AND_MONOTONE_CONTROLS],
                         ids=[name for name, _ in MISSES + WIDE_AND_MONOTONE_CONTROLS])  # fmt: skip
def test_consensus_misses_when_the_neighbourhood_is_split_thin_or_far(hood: Hood) -> None:
    assert consensus_order(hood, POLICY, THRESHOLD, MARGIN) == []


def test_more_holders_never_refuse_what_fewer_would_serve() -> None:
    """Adding far holders of the nearest answer to a served thin neighbourhood keeps it served."""
    thin = [(0.92, "A"), (0.88, "A"), (0.60, "B")]
    assert consensus_order(thin, POLICY, THRESHOLD, MARGIN) == [0, 1]
    for extra in range(1, 8):
        hood = [*thin[:2], *[(0.66 - 0.01 * i, "A") for i in range(extra)], thin[2]]
        assert consensus_order(sorted(hood, reverse=True), POLICY, THRESHOLD, MARGIN) == [0, 1]


def _records(hood: Hood) -> list[tuple[float, StoredRecord]]:
    return [
        (similarity, StoredRecord(str(i), "s", f"q{i}", {"answer": answer}, 0.0, False))
        for i, (similarity, answer) in enumerate(hood)
    ]


@pytest.mark.parametrize("similarity", [0.70, 0.80, 0.849, 0.85, 0.851, 0.90, 0.99, 1.0])
@pytest.mark.parametrize("margin", [0.0, 0.08])
def test_a_lone_candidate_gets_todays_rule(similarity: float, margin: float) -> None:
    candidates = _records([(similarity, "A")])
    today = serving_order(candidates, threshold=THRESHOLD, agreement_margin=margin, guards=True,
                          policy=None)  # fmt: skip
    consensus = serving_order(candidates, threshold=THRESHOLD, agreement_margin=margin,
                              guards=True, policy=POLICY)  # fmt: skip
    assert consensus == today == ([0] if similarity >= THRESHOLD else [])


TODAY: list[tuple[Hood, list[int]]] = [
    ([(0.90, "A"), (0.88, "A")], [0, 1]),
    ([(0.90, "A"), (0.85, "B")], []),  # B within the margin: the ratio test refuses
    ([(0.90, "A"), (0.80, "B")], [0]),  # B is not a candidate, and 0.10 below
    ([(0.86, "A"), (0.84, "A")], [0]),  # the second is below the threshold
]


@pytest.mark.parametrize(("hood", "order"), TODAY)
def test_without_a_policy_the_order_is_todays_ratio_test(hood: Hood, order: list[int]) -> None:
    candidates = _records(hood)
    assert serving_order(candidates, threshold=THRESHOLD, agreement_margin=MARGIN, guards=True,
                         policy=None) == order  # fmt: skip
    # without guards there is no precision stack: no agreement test, no consensus
    off = serving_order(candidates, threshold=THRESHOLD, agreement_margin=MARGIN, guards=False,
                        policy=POLICY)  # fmt: skip
    assert off == [i for i, (s, _) in enumerate(hood) if s >= THRESHOLD]


def test_answers_compare_by_what_is_shown_not_by_record() -> None:
    hood = [(0.83, "A"), (0.82, "A"), (0.81, "A"), (0.80, "A")]
    candidates = _records(hood)
    assert serving_order(candidates, threshold=THRESHOLD, agreement_margin=MARGIN, guards=True,
                         policy=POLICY) == [0, 1, 2, 3]  # fmt: skip
    candidates[2] = (0.81, StoredRecord("x", "s", "q", {"answer": "B"}, 0.0, False))
    assert serving_order(candidates, threshold=THRESHOLD, agreement_margin=MARGIN, guards=True,
                         policy=POLICY) == []  # fmt: skip


def _rows(*similarities: float) -> list[dict[str, Any]]:
    return [{"id": f"k{i}", "vector_distance": 1.0 - s} for i, s in enumerate(similarities)]


def test_close_rows_reads_votes_only_when_the_nearest_could_serve() -> None:
    rows = _rows(0.83, 0.76, 0.60, 0.49)
    kw: dict[str, Any] = {"threshold": THRESHOLD, "agreement_margin": MARGIN, "guards": True}
    assert [k for _, k in close_rows(rows, policy=None, **kw)] == ["k0"]  # from 0.77 up
    assert [k for _, k in close_rows(rows, policy=POLICY, **kw)] == ["k0", "k1", "k2"]
    assert close_rows(_rows(0.79, 0.78, 0.7), policy=POLICY, **kw) == []  # nothing read
    assert close_rows([], policy=POLICY, **kw) == []
    assert [k for _, k in close_rows(rows, policy=POLICY, **{**kw, "guards": False})] == []


# -- a warmed scope through CacheCore (real Redis, real KNN, real model) ------------------------

# Banking77 test questions (design half) whose nearest train question is 0.82-0.84 similar and
# whose 16 nearest all hold the same intent: today's threshold misses, the neighbourhood vouches.
VOUCHED = [
    "Do you support the exchange of EUR from my currency.",
    "Can I set up an automatic top-up for travel.",
    "How can I unlock my pin from too many tries?",
    "Is there a top up limit for my account?",
    "I need to update my personal details",
]
# ... and questions whose nearest train question (>= 0.85) holds ANOTHER intent, in a
# neighbourhood that is split or where a different intent sits close below: today serves the
# wrong answer, consensus refuses.
SPLIT = [
    "I requested a refund, and never received it. What can I do?",
    "The app wouldn't accept my top up.",
    "How do I use my new card?",
    "how long do money transfers take?",
    "I'm starting to think my card is lost because it still hasn't arrived, can you help?",
]

# Rows of Banking77's train.csv: the 16 nearest train questions of each query above, found once
# by brute force over the whole train split (the vectors of bench/consensus_eval.py). Warming
# just these gives each query the neighbourhood it has in the whole warmed split; the test
# checks that neighbourhood itself before it checks the answers.
WARM_ROWS = [
    11,
    32,
    38,
    46,
    149,
    150,
    187,
    198,
    201,
    224,
    251,
    269,
    273,
    883,
    916,
    932,
    936,
    937,
    938,
    961,
    965,
    966,
    967,
    977,
    981,
    988,
    996,
    997,
    998,
    1125,
    1133,
    1143,
    1145,
    1146,
    1148,
    1151,
    1162,
    1180,
    1185,
    1202,
    1207,
    1215,
    1218,
    1225,
    1228,
    1516,
    1517,
    1519,
    1522,
    1526,
    1538,
    1544,
    1550,
    1552,
    1553,
    1667,
    1677,
    1704,
    1706,
    1713,
    1727,
    1732,
    1735,
    1737,
    1743,
    1746,
    1754,
    1759,
    1774,
    1779,
    1780,
    1801,
    2249,
    2253,
    2254,
    2262,
    2267,
    2268,
    2278,
    2280,
    2285,
    2291,
    2293,
    2297,
    2302,
    2303,
    2318,
    2330,
    2719,
    2741,
    2743,
    2786,
    2820,
    3184,
    3230,
    3247,
    3249,
    3282,
    3650,
    3652,
    3663,
    3669,
    3671,
    3676,
    3695,
    3697,
    3703,
    3711,
    3733,
    3741,
    3742,
    3746,
    3761,
    3762,
    5373,
    5378,
    5397,
    5399,
    5425,
    5433,
    5470,
    5473,
    5479,
    5480,
    5491,
    5522,
    5539,
    5694,
    5702,
    5774,
    5995,
    6637,
    6647,
    6675,
    6719,
    6721,
    8062,
    8472,
    8476,
    8509,
    8511,
    8532,
    8539,
    8545,
    8563,
    8564,
    8572,
    8589,
    8671,
    8717,
    8721,
    8732,
    8769,
    9203,
    9217,
    9245,
    9295,
    9300,
    9324,
    9333,
]


def _ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _intent(hit: Any) -> str | None:
    if hit is None:
        return None
    shown = shown_answers(hit.response)
    assert shown is not None
    return shown[0].content.removeprefix("answer: ")


def test_a_warmed_scope_serves_by_consensus_and_refuses_split_neighbourhoods(
    make_core: Callable[..., CacheCore], embedder: Embedder
) -> None:
    train, test = banking77("train"), dict(banking77("test"))
    warmed = [train[j] for j in WARM_ROWS]
    vectors = np.asarray(embedder.embed([text for text, _ in warmed]), dtype=np.float32)
    queries = VOUCHED + SPLIT
    nearest = np.asarray(embedder.embed(queries), dtype=np.float32) @ vectors.T
    consensus = make_core(consensus=True)
    today = make_core(consensus=False)
    consensus.store_many(
        {"prompt": text, "response": f"answer: {intent}", "model": "m"} for text, intent in warmed
    )
    for query, row in zip(queries, nearest, strict=True):
        top = np.argsort(-row)[:16]
        intents = {warmed[int(j)][1] for j in top}
        by_consensus = _intent(consensus.lookup(_ask(query), "m"))
        by_today = _intent(today.lookup(_ask(query), "m"))
        if query in VOUCHED:
            assert 0.81 < row[top[0]] < 0.845 and intents == {test[query]}, query
            assert by_today is None, query
            assert by_consensus == test[query], query
        else:
            assert row[top[0]] >= 0.85 and warmed[int(top[0])][1] != test[query], query
            assert by_today == warmed[int(top[0])][1], query  # the trap is real
            assert by_consensus is None, query

    # the async driver runs the same flow
    async def both() -> tuple[str | None, str | None]:
        served = await consensus.alookup(_ask(VOUCHED[0]), "m")
        refused = await consensus.alookup(_ask(SPLIT[0]), "m")
        return _intent(served), _intent(refused)

    assert asyncio.run(both()) == (test[VOUCHED[0]], None)
    # control: a stored question itself still hits (exact tier)
    assert _intent(consensus.lookup(_ask(warmed[0][0]), "m")) == warmed[0][1]


@pytest.mark.parametrize(("threshold", "served"), [(0.85, [0, 1, 2, 3]), (0.90, []), (0.95, [])])
def test_the_similarities_asked_for_move_with_the_threshold(
    threshold: float, served: list[int]
) -> None:
    hood = _quorum("A", 0.84, 4)  # a quorum 0.01 below the default threshold
    assert consensus_order(hood, POLICY, threshold, MARGIN) == served
    assert consensus_order(_quorum("A", threshold - 0.01, 4), POLICY, threshold, MARGIN) == [
        0,
        1,
        2,
        3,
    ]
