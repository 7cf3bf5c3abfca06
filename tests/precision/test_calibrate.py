"""Calibration: the pure threshold sweep, then calibrate() and the CLI on the real model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semcache_plugins import CacheSettings, CalibrationError, ConfigurationError, Embedder
from semcache_plugins._calibrate import (
    CalibrationPair,
    ScoredPair,
    calibrate,
    calibration_pair,
    check_support,
    score_pairs,
    sweep,
    thresholds,
)
from semcache_plugins._precision._calibrate_bound import (
    check_target,
    false_hit_bound,
    negatives_needed,
)
from shipped_data import calibration_pairs

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


@pytest.mark.parametrize(
    ("false_hits", "negatives", "bound"),
    [
        (0, 10, 0.2589),  # 1 - 0.05 ** (1 / 10)
        (1, 10, 0.3942),  # Clopper-Pearson one-sided 95%
        (0, 100, 0.0295),
        (5, 1000, 0.0105),
        (3, 10_000, 0.000775),
        (0, 0, 1.0),  # no negatives bound nothing
        (7, 7, 1.0),
    ],
)
def test_false_hit_bound_is_the_exact_binomial_upper_limit(
    false_hits: int, negatives: int, bound: float
) -> None:
    assert false_hit_bound(false_hits, negatives) == pytest.approx(bound, rel=2e-3)


def test_false_hit_bound_follows_the_rule_of_three_and_grows_with_false_hits() -> None:
    for negatives in (100, 1000, 10_000):
        assert false_hit_bound(0, negatives) * negatives == pytest.approx(3.0, rel=0.02)
    bounds = [false_hit_bound(k, 500) for k in range(0, 20)]
    assert all(a < b for a, b in zip(bounds, bounds[1:], strict=False))
    assert all(bound > k / 500 for k, bound in enumerate(bounds))  # above the observed rate


@pytest.mark.parametrize(
    ("target", "needed"), [(0.01, 299), (0.05, 59), (0.1, 29), (0.001, 2995), (0.5, 5)]
)
def test_negatives_needed_is_the_fewest_that_can_show_the_target(
    target: float, needed: int
) -> None:
    assert negatives_needed(target) == needed
    assert false_hit_bound(0, needed) <= target < false_hit_bound(0, needed - 1)


@pytest.mark.parametrize("target", [0.0, 1.0, 2.0, -0.01, float("nan")])
def test_a_target_outside_0_1_is_refused(target: float) -> None:
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        check_target(target)
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        sweep(_scored([0.9] * 10, [0.1] * 400), target)


def test_sweep_picks_the_lowest_threshold_whose_bound_is_within_target() -> None:
    # 400 negatives: 0 served above 0.80 shows <= 1% (bound 0.75%); 2 served at 0.80 does not.
    result = sweep(_scored([0.95, 0.90, 0.85, 0.60], [0.80, 0.80] + [0.55] * 398), 0.01)
    assert result.target_met and result.threshold == 0.81
    row = result.chosen
    assert (row.served, row.true_hits, row.false_hits) == (3, 3, 0)
    assert row.hit_rate == pytest.approx(3 / 4) and row.precision == 1.0
    assert row.false_hit_bound == pytest.approx(false_hit_bound(0, 400))
    lowest = result.rows[0]
    assert lowest.threshold == 0.50 and lowest.false_hit_rate == 1.0 and lowest.false_hits == 400
    # A looser target accepts the two false hits at 0.80 (bound 1.8% <= 2%), and the lowest rows.
    assert sweep(_scored([0.95, 0.90], [0.80, 0.80] + [0.55] * 398), 0.02).threshold == 0.56


def test_sweep_judges_by_the_bound_not_the_observed_rate() -> None:
    # 8 false hits of 1000 at 0.70 is 0.8% observed, but the 95% bound is 1.4%: not within 1%.
    result = sweep(_scored([0.95, 0.75], [0.70] * 8 + [0.52] * 992), 0.01)
    at_070 = next(row for row in result.rows if row.threshold == 0.70)
    assert at_070.false_hit_rate == pytest.approx(0.008) and at_070.false_hit_bound > 0.01
    assert result.target_met and result.threshold == 0.71


@pytest.mark.parametrize(
    ("hits", "misses"),
    [
        ([0.95] * 5, [0.40] * 5),  # 10 pairs, 5 negatives, perfectly separated
        ([0.95] * 50, [0.40] * 298),  # one negative short of 1%
        ([0.95] * 10, []),  # no negatives at all
    ],
    ids=["5-negatives", "298-negatives", "no-negatives"],
)
def test_sweep_never_claims_a_target_the_negatives_cannot_show(
    hits: list[float], misses: list[float]
) -> None:
    result = sweep(_scored(hits, misses), 0.01)
    assert not result.target_met and result.threshold == 0.99
    assert "does NOT meet the target" in result.table()
    assert result.negatives_needed == 299


def test_sweep_counts_a_guard_refusal_as_not_served_only_with_guards() -> None:
    scored = _scored([0.97] * 5, [0.40] * 300) + [ScoredPair(0.96, False, guard_allowed=False)]
    guarded = sweep(scored, 0.01, guards=True)
    assert guarded.threshold == 0.50 and guarded.chosen.hit_rate == 1.0
    unguarded = sweep(scored, 0.01, guards=False)
    assert unguarded.threshold == 0.97 and unguarded.chosen.hit_rate == 1.0
    assert unguarded.rows[0].false_hits == 1


def test_sweep_without_a_safe_threshold_returns_the_highest_and_says_so() -> None:
    result = sweep(_scored([0.999], [0.995] * 400), 0.01)
    assert not result.target_met and result.threshold == 0.99
    assert result.chosen.false_hit_rate == 1.0
    table = result.table()
    assert "does NOT meet the target" in table and "needs >= 299 must-not-hit pairs" in table
    assert "* " + " " * 5 + "0.99" in table
    assert len(table.splitlines()) == 50 + 3


@pytest.mark.parametrize(
    ("should_hit", "must_not_hit", "target", "message"),
    [
        (5, 5, 0.01, "5 must-not-hit pairs cannot show a false-hit rate <= 1.00%"),
        (100, 298, 0.01, "at least 299 must-not-hit pairs"),
        (10, 0, 0.05, "at least 59 must-not-hit pairs"),
        (0, 400, 0.01, "no should-hit pairs"),
    ],
)
def test_check_support_refuses_pairs_that_cannot_support_the_target(
    should_hit: int, must_not_hit: int, target: float, message: str
) -> None:
    with pytest.raises(CalibrationError, match=re.escape(message)):
        check_support(should_hit, must_not_hit, target)


def test_check_support_accepts_enough_pairs() -> None:
    check_support(1, 299, 0.01)
    check_support(20, 59, 0.05)


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


def test_calibrate_checks_target_and_pair_counts_before_embedding(embedder: Embedder) -> None:
    counting = _CountingEmbedder(embedder)
    model: Any = counting
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        calibrate(_pairs(), 2, embedder=model)
    with pytest.raises(CalibrationError, match="at least 299 must-not-hit pairs"):
        calibrate(_pairs(), 0.01, embedder=model)  # 20 negatives
    with pytest.raises(CalibrationError, match="0 must-not-hit pairs"):
        calibrate((p for p in _pairs() if p["should_hit"]), 0.2, embedder=model)
    with pytest.raises(CalibrationError, match="no should-hit pairs"):
        calibrate([p for p in _pairs() if not p["should_hit"]], 0.2, embedder=model)
    with pytest.raises(CalibrationError, match="needs labelled pairs"):
        calibrate([], 0.2, embedder=model)
    assert counting.calls == []  # nothing was embedded


def test_calibrate_separates_the_hand_written_pairs(embedder: Embedder) -> None:
    # 20 must-not-hit pairs can show a false-hit rate of 20% (bound 13.9% with none served).
    result = calibrate(_pairs(), 0.2, embedder=embedder)
    assert result.target_met and (result.should_hit, result.must_not_hit) == (20, 20)
    assert result.chosen.hit_rate == 1.0 and result.chosen.false_hits == 0
    # Without the guards, cosine alone cannot separate them (swapped cities score 0.99+).
    unguarded = calibrate(_pairs(), 0.2, guards=False, embedder=embedder)
    assert not unguarded.target_met and unguarded.threshold == 0.99
    assert unguarded.chosen.false_hits >= 1
    # Forced on too few pairs for 1%: it calibrates, and does not claim the target.
    forced = calibrate(_pairs(), 0.01, embedder=embedder, force=True)
    assert not forced.target_met and forced.threshold == 0.99
    assert min(row.false_hits for row in forced.rows) == 0  # 0 seen is still not 1% shown


def test_calibrate_meets_a_target_on_enough_shipped_pairs(embedder: Embedder) -> None:
    """Control: fow-cache's traps and paraphrases (shipped) are enough for 5%."""
    pairs = calibration_pairs(100, 100)
    result = calibrate(pairs, 0.05, embedder=embedder)
    assert result.target_met and result.chosen.false_hit_bound <= 0.05
    assert result.chosen.hit_rate >= 0.5
    unguarded = calibrate(pairs, 0.05, guards=False, embedder=embedder)
    assert not unguarded.target_met  # the traps need the guards


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "semcache_plugins", "calibrate", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def _write(path: Path, pairs: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(pair) for pair in pairs) + "\n")
    return path


ENV = "SEMCACHE_NAMESPACE=tenant-a\nSEMCACHE_SIMILARITY_THRESHOLD=0.42\n"


@pytest.mark.parametrize(
    ("pairs", "options", "message"),
    [
        (_pairs(), ["--target", "2"], "the target false-hit rate must be between 0 and 1"),
        (_pairs(), ["--target", "0"], "the target false-hit rate must be between 0 and 1"),
        (
            _pairs()[:5] + _pairs()[20:25],  # the 10 pairs, 5 negatives
            [],
            "5 must-not-hit pairs cannot show a false-hit rate <= 1.00%: even with none served, "
            "the 95% bound is 45.07%; it takes at least 299 must-not-hit pairs (rule of three: "
            "~3/target); --force calibrates anyway",
        ),
        (_pairs()[:20], ["--target", "0.05"], "0 must-not-hit pairs cannot show"),
        (_pairs()[20:], ["--target", "0.2"], "no should-hit pairs"),
        (_pairs(), ["--target", "0.2", "--write-settings", "/nonexistent/dir/.env"], "--write"),
        ([], [], "no labelled pairs"),
    ],
    ids=[
        "target-2",
        "target-0",
        "5-negatives",
        "no-negatives",
        "no-positives",
        "bad-path",
        "empty",
    ],
)
def test_cli_calibrate_refuses_in_one_line_before_embedding(
    tmp_path: Path, pairs: list[dict[str, Any]], options: list[str], message: str
) -> None:
    data = _write(tmp_path / "pairs.jsonl", pairs)
    env_file = tmp_path / ".env"
    env_file.write_text(ENV)
    write = [] if "--write-settings" in options else ["--write-settings", str(env_file)]
    done = _run_cli(str(data), *options, *write)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("semcache: error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line: no progress, no traceback
    assert env_file.read_text() == ENV


def test_cli_calibrate_force_calibrates_too_few_pairs_and_warns(tmp_path: Path) -> None:
    data = _write(tmp_path / "pairs.jsonl", _pairs()[:5] + _pairs()[20:25])
    env_file = tmp_path / ".env"
    env_file.write_text(ENV)
    done = _run_cli(str(data), "--write-settings", str(env_file), "--force")
    assert done.returncode == 0, done.stderr
    assert "chosen threshold: 0.99 (does NOT meet the target)" in done.stdout
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 2 and "at least 299" in warnings[0]
    assert "does not meet the target" in warnings[1]
    assert env_file.read_text().splitlines()[-1] == "SEMCACHE_SIMILARITY_THRESHOLD=0.99"


def test_cli_calibrate_never_writes_a_threshold_that_misses_its_target(tmp_path: Path) -> None:
    # 60 must-not-hit pairs whose two sides are the same text: served at every threshold.
    traps = [
        {"cached": f"What is fact {i}?", "query": f"What is fact {i}?", "should_hit": False}
        for i in range(60)
    ]
    data = _write(tmp_path / "pairs.jsonl", _pairs()[:10] + traps)
    env_file = tmp_path / ".env"
    env_file.write_text(ENV)
    done = _run_cli(str(data), "--target", "0.1", "--write-settings", str(env_file))
    assert done.returncode == 1
    assert "chosen threshold: 0.99 (does NOT meet the target)" in done.stdout
    assert done.stderr.splitlines()[-1] == (
        f"semcache: error: threshold 0.99 does not meet the target; {env_file} not written "
        "(--force writes it anyway)"
    )
    assert "Traceback" not in done.stderr
    assert env_file.read_text() == ENV
    # Asked for no settings file, it shows the table and warns (nothing to refuse to write).
    shown = _run_cli(str(data), "--target", "0.1")
    assert shown.returncode == 0 and "(does NOT meet the target)" in shown.stdout
    assert shown.stderr.splitlines()[-1] == (
        "semcache: WARNING: threshold 0.99 does not meet the target false-hit rate 10.00%"
    )


def test_cli_calibrate_writes_the_settings_file_on_enough_pairs(tmp_path: Path) -> None:
    """Control: 60 + 60 shipped fow-cache pairs support a 10% target, and it is written."""
    data = _write(tmp_path / "pairs.jsonl", calibration_pairs(60, 60))
    env_file = tmp_path / ".env"
    env_file.write_text(ENV)
    done = _run_cli(str(data), "--target", "0.1", "--write-settings", str(env_file))
    assert done.returncode == 0, done.stderr
    assert "(meets the target)" in done.stdout and "WARNING" not in done.stderr
    chosen = re.search(r"chosen threshold: (0\.\d\d)", done.stdout)
    assert chosen is not None
    assert env_file.read_text().splitlines() == [
        "SEMCACHE_NAMESPACE=tenant-a",
        f"SEMCACHE_SIMILARITY_THRESHOLD={chosen.group(1)}",
    ]
    settings = CacheSettings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.similarity_threshold == float(chosen.group(1))
    assert settings.namespace == "tenant-a"


def test_cli_calibrate_names_the_bad_line(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"cached": "a", "query": "b", "should_hit": true}\n\n{"cached": "a"}\n')
    bad = _run_cli(str(data))
    assert bad.returncode == 1
    assert (
        bad.stderr.strip()
        == f"semcache: error: {data}:3: each pair needs string 'cached' and 'query'"
    )
