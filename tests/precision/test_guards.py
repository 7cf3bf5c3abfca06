"""Unit tests of the precision guards (hand-written examples, not taken from any data set)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from semcache_plugins._cache._flows import answers_agree
from semcache_plugins._precision._guards import (
    DEFAULT_SIMILARITY_THRESHOLD,
    GuardVerdict,
    check_guards,
    diff_spans,
)
from semcache_plugins._records import StoredRecord


def verdict(a: str, b: str, embed: FakeEmbed | None = None, sim: float = 0.9) -> GuardVerdict:
    return check_guards(a, b, sim, embed=embed)


class FakeEmbed:
    """Bag-of-words unit vectors; words in one ``same`` group share a dimension."""

    def __init__(self, same: Sequence[set[str]] = ()) -> None:
        self.same = list(same)
        self.calls: list[list[str]] = []
        self.slots: dict[str, int] = {}

    def slot(self, word: str) -> int:
        group = next((min(g) for g in self.same if word in g), word)
        return self.slots.setdefault(group, len(self.slots))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, self.slot(word)] += 1.0
            out[row] /= max(float(np.linalg.norm(out[row])), 1e-9)
        return out


def test_default_threshold_is_a_cosine() -> None:
    assert 0.7 <= DEFAULT_SIMILARITY_THRESHOLD < 1.0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I renew my passport?", "how do i renew my passport"),
        ("How do I renew my passport?", "HOW DO I RENEW MY PASSPORT??"),
        ("How do I renew my passport?", "Hey there, how do I renew my passport? Thanks a lot"),
        ("How do I renew my passport?", "um so how do i renew my passport please"),
        ("Can I park my bike outside the library?", "Outside the library, can I park my bike?"),
        ("How do I renew my passport?", "How do I renew my pasport?"),
        ("Where can I recycle old batteries?", "Where can I recylce old batteries?"),
        ("What are the library opening hours?", "What're the library opening hours?"),
        ("Why doesn't the printer work?", "Why won't the printer work?"),
        ("How do I book a table for 4 people?", "How can I book a table for four people?"),
        ("Show the weather for tomorrow", "Show tomorrow's weather"),
        ("Which trains go to Leeds?", "Which trains go to leeds"),
    ],
)
def test_harmless_differences_are_allowed(a: str, b: str) -> None:
    result = verdict(a, b)
    assert result.allowed, result
    assert result.reason in ("ok", "identical")


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("Convert 5 km to miles", "Convert 6 km to miles", "number_mismatch"),
        ("Is bus 12 late?", "Is bus 21 late?", "number_mismatch"),
        ("Book a room for two nights", "Book a room for three nights", "number_mismatch"),
        ("What is 3.5 times 2?", "What is 3.25 times 2?", "number_mismatch"),
        ("Ring me at 8:30", "Ring me at 8:45", "number_mismatch"),
        ("Should I water the lawn?", "Should I not water the lawn?", "negation_mismatch"),
        ("Can I pay by cheque?", "Can't I pay by cheque?", "negation_mismatch"),
        ("Can I travel with a cold?", "Can I travel without a cold?", "negation_mismatch"),
        ("How do I show hidden files?", "How do I hide hidden files?", "antonym"),
        ("Is the museum cheap?", "Is the museum expensive?", "antonym"),
        ("Is this mushroom edible?", "Is this mushroom inedible?", "antonym"),
        ("How do I encrypt a disk?", "How do I decrypt a disk?", "antonym"),
        ("How do I log in?", "How do I log out?", "antonym"),
        ("What is the weather today?", "What is the weather tomorrow?", "time_mismatch"),
        ("Is the gym open on Monday?", "Is the gym open on Thursday?", "time_mismatch"),
        ("Wake me at 6 am", "Wake me at 6 pm", "time_mismatch"),
        ("How heavy is 3 kg in pounds?", "How heavy is 3 kg in ounces?", "unit_mismatch"),
        ("Do all plans include support?", "Do some plans include support?", "quantifier_mismatch"),
        ("How do I read a file in Rust?", "How do I read a file in Kotlin?", "tech_mismatch"),
        ("How do I read a file in Rust?", "How do I read a file in Go?", "entity_mismatch"),
        ("Export the report as csv", "Export the report as json", "tech_mismatch"),
        ("How tall is Ben Nevis?", "How tall is Mont Blanc?", "entity_mismatch"),
        ("Send the invoice to Priya", "Send the invoice to Tomasz", "entity_mismatch"),
        ("Fly from Berlin to Rome", "Fly from Rome to Berlin", "order_swap"),
        (
            "Move cash from my wallet to the bank",
            "Move cash from the bank to my wallet",
            "order_swap",
        ),
        ("Is the river water safe to drink?", "Is the river water unsafe to drink?", "antonym"),
        ("Is parking free for full-time staff?", "Is parking free for part-time staff?", "antonym"),
        ("Can I return shoes within a month?", "Can I return shoes after a month?", "antonym"),
    ],
)
def test_rules_fire(a: str, b: str, reason: str) -> None:
    result = verdict(a, b)
    assert result == GuardVerdict(False, reason)
    assert verdict(b, a).reason == reason


def test_negation_needs_a_shared_negated_word() -> None:
    assert verdict("My parcel has not arrived, where is it?", "Where is my parcel?").allowed
    assert verdict("The total was not correct", "The total was incorrect").allowed
    assert verdict("I cant log in", "I cannot log in").allowed
    assert verdict("Is it safe to swim here?", "Is it not safe to swim here?").reason == (
        "negation_mismatch"
    )


def test_number_words_and_one_sided_numbers() -> None:
    assert verdict("Renew after one year", "Renew after five years").reason == "number_mismatch"
    assert verdict("Book seats for 2 adults", "Book seats for two adults").allowed
    assert verdict("Where is order 5521?", "Where is my order?").allowed  # left to the edit check


def test_one_as_pronoun_is_not_a_number() -> None:
    assert verdict(
        "Which one is cheaper, tea or coffee?", "Which is cheaper, tea or coffee?"
    ).allowed


def test_double_negation_keeps_polarity() -> None:
    assert verdict("Why won't the tap stop dripping?", "Why does the tap keep dripping?").allowed


def test_false_prefix_is_no_antonym() -> None:
    assert verdict("What does the cover include?", "What did you discover?").reason != "antonym"


def test_synonym_entities_are_allowed() -> None:
    assert verdict("Visa rules for the UK", "Visa rules for Britain").allowed
    assert verdict("Shipping time to the US", "Shipping time to the United States").allowed


def test_diff_spans_folds_case_plurals_and_fillers_are_kept() -> None:
    assert diff_spans("Hi, where are the Keys?", "where is the key") == (["hi"], [])
    assert diff_spans("Is the gate open?", "Is the gate closed?") == (["open"], ["closed"])
    assert diff_spans("Track parcel 381", "track parcel 318") == (["#381"], ["#318"])


def test_non_ascii_text_is_compared() -> None:
    assert diff_spans("Où est le café ?", "où est le CAFÉ") == ([], [])
    assert diff_spans("我的卡在哪里", "我的订单在哪里") == (["我的卡在哪里"], ["我的订单在哪里"])


def test_diff_spans_tolerates_typos() -> None:
    assert diff_spans("How do I unblock my acount?", "How do I unblock my account?") == ([], [])


def test_no_embed_call_when_identical_decided_or_reworded() -> None:
    embed = FakeEmbed()
    assert verdict("Where is my parcel?", "where is my parcel", embed).reason == "identical"
    assert verdict("Turn the heating on", "Turn the heating off", embed).reason == "antonym"
    assert verdict("Hello, where is my parcel?", "where is my parcel", embed).allowed
    assert verdict("Morning! Where is my parcel?", "Where is my parcel?", embed).allowed
    reworded = ("How can I get my parcel tracked today?", "Where is the parcel I ordered?")
    assert verdict(*reworded, embed).allowed
    assert verdict("How do I clean a sofa?", "How do I clean a carpet?", embed, sim=0.95).allowed
    assert embed.calls == []


def test_small_edit_is_judged_on_the_edited_phrase() -> None:
    embed = FakeEmbed(same=[{"sofa", "couch"}])
    assert verdict("How do I clean a sofa?", "How do I clean a couch?", embed).allowed
    rejected = verdict("How do I clean a sofa?", "How do I clean a carpet?", embed)
    assert rejected == GuardVerdict(False, "content_mismatch")
    added = verdict("How do I clean a sofa?", "How do I clean a soft leather sofa?", embed)
    assert added == GuardVerdict(False, "content_mismatch")
    assert embed.calls == [
        ["clean sofa", "clean couch"],
        ["clean sofa", "clean carpet"],
        ["clean sofa", "clean soft leather sofa"],
    ]


def test_without_embed_only_lexical_rules_apply() -> None:
    assert verdict("How do I clean a sofa?", "How do I clean a carpet?").allowed


def _candidate(similarity: float, answer: str) -> tuple[float, StoredRecord]:
    return similarity, StoredRecord(f"id-{answer}", "scope", "prompt", answer, 0.0, False)


def test_answers_agree_is_a_ratio_test_over_the_neighbours() -> None:
    near = [_candidate(0.95, "A"), _candidate(0.90, "B"), _candidate(0.80, "C")]
    assert not answers_agree(near, 0, margin=0.08)  # B is within 0.08 of A
    assert answers_agree(near, 0, margin=0.04)  # B is 0.05 away: A stands out
    assert not answers_agree(near, 1, margin=0.04)  # a nearer neighbour (A) disagrees with B
    assert answers_agree(near, 0, margin=0.0)  # 0 turns the check off
    same = [_candidate(0.95, "A"), _candidate(0.94, "A"), _candidate(0.60, "Z")]
    assert answers_agree(same, 0, margin=0.08) and answers_agree(same, 1, margin=0.08)
