"""The learned verifier (``_verifier``): features of a pair, the shipped weights and their
loader, fail-closed use in the guard step, and a gray-zone lookup through ``CacheCore`` with
real Redis and the real model."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import Any

import numpy as np
import pytest

from semcache_plugins import CacheCore, ConfigurationError
from semcache_plugins._cache._compute import ModelWork
from semcache_plugins._cache._flows import GuardCheck
from semcache_plugins._cache._stats import CacheStats
from semcache_plugins._embedding._embedder import Embedder
from semcache_plugins._precision._verifier import (
    FEATURE_NAMES,
    VERIFIER_FORMAT,
    Verifier,
    differing_spans,
    load_verifier,
    pair_features,
    served_floor,
    verifier_from_json,
)

F = {name: i for i, name in enumerate(FEATURE_NAMES)}

# (query, cached, feature that must be 1, feature that must be 0)
FLAGGED = [
    ("Convert 5 km to miles", "Convert 6 km to miles", "number_mismatch", "one_sided"),
    ("Book 2 seats for tonight", "Book 3 seats for tonight", "number_mismatch",
     "negation_mismatch"),
    ("Cancel my subscription", "Don't cancel my subscription", "negation_mismatch",
     "number_mismatch"),
    ("Is the shop open now?", "Is the shop not open now?", "negation_mismatch",
     "question_mismatch"),
    ("What is the capital of France?", "Why is the capital of France?", "question_mismatch",
     "one_sided"),
    ("Where do I send the form?", "When do I send the form?", "question_mismatch",
     "number_mismatch"),
    ("Reset my password", "Reset my password for the bank app", "one_sided", "number_mismatch"),
    ("How do I top up my card quickly?", "How do I top up my card?", "one_sided",
     "negation_mismatch"),
]  # fmt: skip


@pytest.mark.parametrize(("query", "cached", "on", "off"), FLAGGED)
def test_features_flag_what_differs(query: str, cached: str, on: str, off: str) -> None:
    x = pair_features(query, cached, 0.9, 0.5)
    assert x.shape == (len(FEATURE_NAMES),)
    assert x[F[on]] == 1.0 and x[F[off]] == 0.0
    assert x[F["cosine"]] == 0.9 and 0.0 < x[F["diff_share"]] <= 1.0


@pytest.mark.parametrize(
    ("query", "cached"),
    [
        ("How do I reset my password?", "how do I reset my password"),
        ("What is Redis?", "what is redis"),
        ("Cancel my order, please", "cancel my order please"),
    ],
)
def test_features_of_texts_that_differ_only_in_case_and_punctuation(
    query: str, cached: str
) -> None:
    x = pair_features(query, cached, 0.97)  # no span to embed: no embed needed
    assert x[F["span_cosine"]] == 1.0 and x[F["diff_share"]] == 0.0
    assert x[F["overlap"]] == 1.0 and x[F["length_ratio"]] == 1.0 and x[F["edits"]] == 0.0


def test_span_cosine_comes_from_the_differing_spans_only() -> None:
    seen: list[list[str]] = []

    def embed(texts: Sequence[str]) -> list[np.ndarray]:
        seen.append(list(texts))
        return [np.array([1.0, 0.0]), np.array([0.6, 0.8])]

    x = pair_features("How do I freeze my card?", "How do I block my card?", 0.88, embed=embed)
    assert seen == [["freeze", "block"]]
    assert x[F["span_cosine"]] == pytest.approx(0.6)
    assert differing_spans("pay 5 dollars now", "pay 7 dollars now") == (["#5"], ["#7"], 1)
    with pytest.raises(ValueError):
        pair_features("How do I freeze my card?", "How do I block my card?", 0.88)


def test_served_floor() -> None:
    assert served_floor(0.85, None) == 0.85
    assert served_floor(0.85, 0.72) == 0.72
    assert served_floor(0.70, 0.72) == 0.70


# -- weights and loader -------------------------------------------------------------------


def _shipped() -> dict[str, Any]:
    text = (
        resources.files("semcache_plugins._precision").joinpath("verifier_weights.json").read_text()
    )
    data: dict[str, Any] = json.loads(text)
    return data


def test_shipped_weights_load_and_name_their_features() -> None:
    data = _shipped()
    verifier = load_verifier()
    assert data["format"] == VERIFIER_FORMAT and tuple(data["features"]) == FEATURE_NAMES
    assert len(verifier.digest) == 64 and 0.0 < verifier.cutoff < 1.0
    assert 0.5 <= verifier.floor < 0.85
    # no pair source but the shipped train-side data (never Quora, never a held-out half)
    assert set(data["training"]["pairs"]) <= {"fow-design", "banking77", "clinc150", "synthetic"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": VERIFIER_FORMAT + 1}, "format"),
        ({"format": None}, "format"),
        ({"features": ["cosine"]}, "other features"),
        ({"weights": [1.0, 2.0]}, "shape"),
        ({"scale": [0.0] * len(FEATURE_NAMES)}, "shape"),
        ({"bias": "x"}, "unreadable"),
    ],
)
def test_unusable_weights_are_a_clear_error(change: dict[str, Any], message: str) -> None:
    data = {**_shipped(), **change}
    with pytest.raises(ConfigurationError, match=message):
        verifier_from_json(json.dumps(data))
    with pytest.raises(ConfigurationError):
        verifier_from_json("[1, 2]")


# -- the guard step: fail closed ------------------------------------------------------------


class _Raising(Verifier):
    def verify(self, *args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("broken verifier")


def _work(embedder: Embedder) -> tuple[ModelWork, CacheStats]:
    stats = CacheStats()
    return ModelWork(embedder, stats), stats


def test_a_verifier_error_is_a_miss_not_an_error(embedder: Embedder) -> None:
    work, stats = _work(embedder)
    shipped = load_verifier()
    work.verifier = _Raising(shipped.mean, shipped.scale, shipped.weights, shipped.bias,
                             shipped.cutoff, shipped.floor)  # fmt: skip
    query, cached = "How do I reset my password?", "How can I reset my password?"
    assert not work.guard(GuardCheck(query, cached, 0.95, 0.85, True))
    assert stats.snapshot()["guard_rejections"] == 1
    # control: the same candidate without the verifier passes the rule guards
    assert work.guard(GuardCheck(query, cached, 0.95, 0.85, False))


def test_weights_that_cannot_load_turn_the_verifier_off(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable() -> Verifier:
        return verifier_from_json(json.dumps({**_shipped(), "format": 99}))

    monkeypatch.setattr("semcache_plugins._cache._compute.load_verifier", unreadable)
    work, _ = _work(embedder)
    query, cached = "How do I reset my password?", "How can I reset my password?"
    assert not work.guard(GuardCheck(query, cached, 0.80, 0.85, True))  # gray zone: a miss
    assert work.guard(GuardCheck(query, cached, 0.95, 0.85, True))  # the threshold still serves


# -- through CacheCore, real Redis and model ------------------------------------------------

# (stored, query): paraphrases whose cosine is in the gray zone (0.72 .. 0.85)
GRAY_PARAPHRASES = [
    ("How do I close my account?", "I want to shut down my account"),
    ("Can I use my card abroad?", "Does my card work in other countries?"),
    ("How do I reset my password?", "Help me change my password please"),
]
# (stored, query): traps the threshold alone would serve or whose cosine is in the gray zone
GRAY_TRAPS = [
    ("How do I freeze my card?", "How do I unfreeze my card?"),
    (
        "What's the fee for international transfers?",
        "What's the limit for international transfers?",
    ),
    ("What's the exchange rate for euros?", "What's the exchange rate for pounds?"),
    ("How do I open a savings account?", "How do I close a savings account?"),
]


@pytest.fixture
async def cores(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> AsyncIterator[tuple[CacheCore, CacheCore]]:
    """Two cores on one index: the default (verifier off) and one with the verifier on. The
    latter's verifier is the shipped model at a lower cutoff (0.25): the shipped cutoff serves
    few gray-zone pairs (see bench/results/latest.md), and this test is about the path."""
    plain = CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder,
                      lookup_timeout=10.0)  # fmt: skip
    verifying = CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder,
                          lookup_timeout=10.0, verifier=True)  # fmt: skip
    verifying.internals.work.verifier = dataclasses.replace(load_verifier(), cutoff=0.25)
    yield plain, verifying
    await plain.aclose()
    await verifying.aclose()


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_gray_zone_paraphrases_hit_only_with_the_verifier_and_traps_do_not(
    cores: tuple[CacheCore, CacheCore],
) -> None:
    plain, verifying = cores
    assert plain.settings.verifier is False and verifying.config.verifier_floor == 0.72
    for n, (stored, _) in enumerate(GRAY_PARAPHRASES + GRAY_TRAPS):
        plain.store(_user(stored), f"answer {n}", "m")
    for n, (_, query) in enumerate(GRAY_PARAPHRASES):
        assert plain.lookup(_user(query), "m") is None, query
        hit = verifying.lookup(_user(query), "m")
        assert hit is not None and hit.tier == "semantic" and hit.response == f"answer {n}"
        assert 0.72 <= hit.similarity < 0.85
    for _, query in GRAY_TRAPS:
        assert plain.lookup(_user(query), "m") is None, query
        assert verifying.lookup(_user(query), "m") is None, query
    # control: an exact repeat is served by both
    stored = GRAY_TRAPS[0][0]
    assert verifying.lookup(_user(stored), "m").tier == "exact"  # type: ignore[union-attr]


# -- the shipped model's decisions on a table of pairs (real model, no Redis) -----------------

ACCEPTED = [
    ("How do I reset my password?", "I forgot my password, how can I reset it?"),
    ("What is the capital of France?", "Which city is France's capital?"),
    ("Why was my card declined?", "My card got declined, why?"),
    ("How do I change my PIN?", "I need to change the PIN on my card"),
    ("How do I reset my password?", "I need to reset my password, how?"),
    ("How can I cancel my order?", "I want to cancel the order I placed"),
]
REFUSED = [
    ("How do I reset my password?", "How do I reset my username?"),
    ("Can I get a refund for my order?", "Can I get a refund for my flight?"),
    (
        "What's the fee for international transfers?",
        "What's the limit for international transfers?",
    ),
    ("Is my card contactless?", "Is my card virtual?"),
    ("How do I add money to my account?", "How do I withdraw money from my account?"),
    ("How do I set up a direct debit?", "How do I cancel a direct debit?"),
    ("Where can I find my account number?", "I can't find my account number, where is it?"),
]


DECISIONS = [(*p, True) for p in ACCEPTED] + [(*p, False) for p in REFUSED]


@pytest.mark.parametrize(("query", "cached", "expected"), DECISIONS)
def test_shipped_verifier_decisions(
    embedder: Embedder, query: str, cached: str, expected: bool
) -> None:
    vq, vc = embedder.embed([query, cached])
    verifier = load_verifier()
    assert verifier.verify(query, cached, float(vq @ vc), embed=embedder.embed) is expected


def test_verifier_settings(redis_url: str, index_prefix: str, embedder: Embedder) -> None:
    with pytest.raises(ConfigurationError, match="verifier_floor"):
        CacheCore(redis_url=redis_url, index_prefix=index_prefix, verifier_floor=0.2)
    off = CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder,
                    verifier=True, guards=False)  # fmt: skip
    try:  # the verifier runs after the rule guards: without them it is off
        assert off.config.verifier_floor is None
    finally:
        off.close()


# Token alignment (``bench.verifier_tokens``, an experiment for the next verifier): a word of one
# text with no good match in the other marks a changed number, entity or ordinal.
def _words(*pairs: tuple[str, list[float]]) -> tuple[list[str], np.ndarray]:
    from bench.verifier_tokens import merge_words

    vectors = np.array([v for _, v in pairs], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return merge_words(([w for w, _ in pairs], vectors))


def test_word_pieces_merge_and_punctuation_drops() -> None:
    words, vectors = _words(("re", [1, 0]), ("##fund", [1, 0]), ("?", [0, 1]), ("now", [0, 1]))
    assert words == ["refund", "now"]
    assert vectors.shape == (2, 2)


def test_token_features_of_synthetic_states() -> None:
    from bench.verifier_tokens import token_features

    same = _words(("convert", [1, 0, 0]), ("km", [0, 1, 0]))
    changed = _words(("convert", [1, 0, 0]), ("mi", [0, 0, 1]))
    worst, other, mean, low = token_features(same, same)
    assert (worst, other, mean, low) == pytest.approx((1.0, 1.0, 1.0, 0.0))
    worst, other, mean, low = token_features(same, changed)
    assert worst == pytest.approx(0.0) and low == pytest.approx(2 / 3)
    stop_only = _words(("the", [0, 1, 0]))  # no content word: none of its words is unmatched
    assert token_features(changed, stop_only)[:2] == pytest.approx([0.0, 1.0])
    assert token_features(([], np.zeros((0, 3))), same)[3] == 1.0


TOKEN_TRAPS = [
    ("Convert 5 km to miles", "Convert 6 km to miles"),
    ("What is the capital of France?", "What is the capital of Germany?"),
    ("Who was the first president of the United States?",
     "Who was the third president of the United States?"),
    ("How do I transfer money to my Visa card?", "How do I transfer money to my Mastercard?"),
]  # fmt: skip
TOKEN_CONTROLS = [
    ("How do I cancel my subscription?", "Cancel my subscription please"),
    ("What is the capital of France?", "what's the capital of france"),
    ("Convert 5 km to miles", "convert 5 km into miles please"),
    ("How do I transfer money to my Visa card?", "How can I transfer money to my Visa card"),
]  # fmt: skip


def test_token_alignment_finds_the_changed_word_on_the_real_model(embedder: Embedder) -> None:
    from bench.verifier_tokens import merge_words, token_features, token_states

    def worst(a: str, b: str) -> float:
        wa, wb = (merge_words(s) for s in token_states(embedder, [a, b]))
        return float(token_features(wa, wb)[0])

    traps = [worst(a, b) for a, b in TOKEN_TRAPS]
    controls = [worst(a, b) for a, b in TOKEN_CONTROLS]
    assert max(traps) < 0.8, traps
    assert min(controls) > 0.85, controls
