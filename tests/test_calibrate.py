"""Calibration: the pure threshold sweep, then calibrate() and the CLI on the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semcache_plugins import CacheSettings, ConfigurationError, Embedder
from semcache_plugins._calibrate import (
    CalibrationPair,
    ScoredPair,
    calibrate,
    calibration_pair,
    score_pairs,
    sweep,
    thresholds,
)

PAIRS = [
    # should hit: paraphrases of the same request
    ("How do I reset my password?", "I forgot my password, how can I reset it?", True),
    ("How can I cancel my subscription?", "I want to cancel my subscription, how?", True),
    ("How can I cancel my subscription?", "How do I cancel my subscription?", True),
    ("What is your refund policy?", "Can you explain your refund policy?", True),
    ("How do I change my email address?", "How can I update my email address?", True),
    ("Where can I download my invoices?", "Where do I download my invoices?", True),
    (
        "How do I enable two-factor authentication?",
        "How can I turn on two-factor authentication?",
        True,
    ),
    ("What payment methods do you accept?", "Which payment methods do you accept?", True),
    ("How do I delete my account?", "How can I delete my account?", True),
    ("Do you ship internationally?", "Do you offer international shipping?", True),
    ("How do I export my data to CSV?", "How can I export my data as a CSV file?", True),
    ("How do I contact customer support?", "How can I reach customer support?", True),
    ("Can I change my username?", "Is it possible to change my username?", True),
    (
        "How do I add a team member to my workspace?",
        "How can I add a team member to my workspace?",
        True,
    ),
    ("Why was my card declined?", "Why did my card get declined?", True),
    ("How do I upgrade my plan?", "How can I upgrade my plan?", True),
    (
        "What is the difference between the Pro and Team plans?",
        "What's the difference between the Pro and Team plans?",
        True,
    ),
    ("How do I reset my password?", "how do i reset my password", True),
    ("Can I pause my subscription?", "Is it possible to pause my subscription?", True),
    ("How do I connect my bank account?", "How can I link my bank account?", True),
    # must not hit: different question, different number, negation, unrelated
    ("What is the status of order 48213?", "What is the status of order 48231?", False),
    ("Convert 5 km to miles", "Convert 6 km to miles", False),
    ("Cancel my subscription", "Do not cancel my subscription", False),
    ("How do I reset my password?", "What are your opening hours?", False),
    ("How do I enable dark mode?", "How do I disable dark mode?", False),
    ("What is the weather in Paris today?", "What is the weather in Berlin today?", False),
    ("How do I delete my account?", "How do I create an account?", False),
    ("Translate 'good morning' into French", "Translate 'good morning' into German", False),
    ("What is your refund policy?", "Do you ship internationally?", False),
    ("How many users can the Pro plan have?", "How many users can the Team plan have?", False),
    ("Book a table for 2 people at 7pm", "Book a table for 4 people at 7pm", False),
    ("How do I upgrade my plan?", "How do I downgrade my plan?", False),
    (
        "Is the API rate limit 100 requests per minute?",
        "Is the API rate limit 100 requests per second?",
        False,
    ),
    ("Write a poem about the sea", "Write a poem about the mountains", False),
    ("How do I install the app on iOS?", "How do I install the app on Android?", False),
    ("What time does the store open on Monday?", "What time does the store open on Sunday?", False),
    ("Show me flights from London to Rome", "Show me flights from Rome to London", False),
    ("How can I contact customer support?", "What payment methods do you accept?", False),
    ("Why was my card declined?", "Why was my card charged twice?", False),
    ("How do I export my data to CSV?", "How do I import my data from CSV?", False),
]


def _scored(hits: list[float], misses: list[float]) -> list[ScoredPair]:
    return [ScoredPair(s, True) for s in hits] + [ScoredPair(s, False) for s in misses]


def test_thresholds_are_050_to_099() -> None:
    values = thresholds()
    assert values[0] == 0.50 and values[-1] == 0.99 and len(values) == 50
    assert all(round(b - a, 2) == 0.01 for a, b in zip(values, values[1:], strict=False))


def test_sweep_picks_the_lowest_threshold_within_target() -> None:
    result = sweep(_scored([0.95, 0.90, 0.80], [0.85, 0.70, 0.60]), 0.0)
    assert result.target_met and result.threshold == 0.86
    row = result.chosen
    assert (row.served, row.true_hits, row.false_hits) == (2, 2, 0)
    assert row.hit_rate == pytest.approx(2 / 3) and row.precision == 1.0
    lowest = result.rows[0]
    assert lowest.threshold == 0.50 and lowest.false_hit_rate == 1.0 and lowest.precision == 0.5
    # A looser target accepts one of three false hits: the first threshold above 0.70.
    assert sweep(_scored([0.95, 0.90, 0.80], [0.85, 0.70, 0.60]), 0.34).threshold == 0.71
    assert sweep(_scored([0.95, 0.90, 0.80], [0.85, 0.70, 0.60]), 0.30).threshold == 0.86


def test_sweep_counts_a_guard_refusal_as_not_served_only_with_guards() -> None:
    scored = [ScoredPair(0.97, True), ScoredPair(0.96, False, guard_allowed=False)]
    guarded = sweep(scored, 0.0, guards=True)
    assert guarded.threshold == 0.50 and guarded.chosen.hit_rate == 1.0
    unguarded = sweep(scored, 0.0, guards=False)
    assert unguarded.threshold == 0.97 and unguarded.chosen.hit_rate == 1.0
    assert unguarded.rows[0].false_hits == 1


def test_sweep_without_a_safe_threshold_returns_the_highest_and_says_so() -> None:
    result = sweep(_scored([0.999], [0.995]), 0.01)
    assert not result.target_met and result.threshold == 0.99
    assert result.chosen.false_hit_rate == 1.0
    table = result.table()
    assert "does NOT meet the target" in table
    assert "* " + " " * 5 + "0.99" in table
    assert len(table.splitlines()) == 50 + 3


def test_sweep_rates_with_one_class_missing_and_bad_target() -> None:
    result = sweep(_scored([0.9, 0.4], []), 0.01)
    assert result.threshold == 0.50 and result.chosen.hit_rate == 0.5
    assert result.rows[-1].served == 0 and result.rows[-1].precision == 1.0
    with pytest.raises(ConfigurationError):
        sweep(_scored([0.9], [0.1]), 1.5)


def test_calibration_pair_from_mapping_or_object() -> None:
    assert calibration_pair({"cached": "a", "query": "b", "should_hit": True}) == (
        CalibrationPair("a", "b", True)
    )
    assert calibration_pair(CalibrationPair("x", "y", False)).query == "y"
    with pytest.raises(ConfigurationError, match="boolean"):
        calibration_pair({"cached": "a", "query": "b", "should_hit": "yes"})
    with pytest.raises(ConfigurationError, match="string"):
        calibration_pair({"cached": "a", "should_hit": True})


def _pairs() -> list[dict[str, Any]]:
    return [{"cached": c, "query": q, "should_hit": h} for c, q, h in PAIRS]


class _CountingEmbedder:
    """Delegates to the real embedder and counts batch calls."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self.inner.embed(texts)


def test_pairs_are_embedded_in_one_batch_per_chunk(embedder: Embedder) -> None:
    counting = _CountingEmbedder(embedder)
    scored = score_pairs(_pairs(), embedder=counting, guards=False, batch_size=16)  # type: ignore[arg-type]
    assert counting.calls == [32, 32, 16]
    assert len(scored) == len(PAIRS) == 40
    assert scored[17].similarity == pytest.approx(1.0, abs=0.01)  # case-only difference


def test_calibrate_separates_the_hand_written_pairs(embedder: Embedder) -> None:
    result = calibrate(_pairs(), 0.01, embedder=embedder)
    assert result.target_met and (result.should_hit, result.must_not_hit) == (20, 20)
    assert result.chosen.hit_rate == 1.0 and result.chosen.false_hits == 0
    # Without the guards, cosine alone cannot separate them (swapped cities score 0.99+).
    unguarded = calibrate(_pairs(), 0.01, guards=False, embedder=embedder)
    assert not unguarded.target_met and unguarded.threshold == 0.99
    assert unguarded.chosen.false_hits >= 1


def test_cli_calibrate_writes_the_settings_file(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(pair) for pair in _pairs()[:10] + _pairs()[20:30]))
    env_file = tmp_path / ".env"
    env_file.write_text("SEMCACHE_NAMESPACE=tenant-a\nSEMCACHE_SIMILARITY_THRESHOLD=0.42\n")
    cmd = [sys.executable, "-m", "semcache_plugins", "calibrate", str(data)]
    done = subprocess.run(
        [*cmd, "--write-settings", str(env_file)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "chosen threshold: 0.50 (meets the target)" in done.stdout
    assert env_file.read_text().splitlines() == [
        "SEMCACHE_NAMESPACE=tenant-a",
        "SEMCACHE_SIMILARITY_THRESHOLD=0.50",
    ]
    settings = CacheSettings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.similarity_threshold == 0.50 and settings.namespace == "tenant-a"
    data.write_text('{"cached": "a", "query": "b", "should_hit": true}\n\n{"cached": "a"}\n')
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert (
        bad.stderr.strip()
        == f"semcache: error: {data}:3: each pair needs string 'cached' and 'query'"
    )
