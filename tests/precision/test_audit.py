"""Audit mode and shadow mode: the pure parts (sampling, interval, answer comparison,
accounting) and the core against real Redis (demotion, shadow mode, the disagreement log)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
import redis

from semcache_plugins import CacheCore
from semcache_plugins._cache._audit_run import read_audit
from semcache_plugins._cache._stats import CacheStats
from semcache_plugins._embedding._embedder import Embedder
from semcache_plugins._precision._audit import (
    AuditRecord,
    AuditSampler,
    compare_answers,
    demoted_ids,
    false_hit_estimate,
    format_rate,
    is_demoted,
    wilson_interval,
)
from semcache_plugins._types import CacheHit

# -- Wilson interval -----------------------------------------------------------------------

# (successes, trials, low, high): the roots of (p - k/n)^2 = z^2 p (1 - p) / n, z = 1.96
WILSON = [
    (0, 10, 0.0, 0.277533),
    (5, 10, 0.236593, 0.763407),
    (10, 10, 0.722467, 1.0),
    (1, 100, 0.001767, 0.054486),
    (3, 1000, 0.001021, 0.008783),
    (50, 200, 0.195082, 0.314341),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), WILSON)
def test_wilson_interval_table(k: int, n: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(k, n)
    assert got_low == pytest.approx(low, abs=2e-6)
    assert got_high == pytest.approx(high, abs=2e-6)
    assert got_low <= k / n <= got_high


def test_wilson_interval_without_trials_is_uninformative() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (1, -1)])
def test_wilson_interval_rejects_impossible_counts(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(k, n)


def test_wilson_interval_narrows_with_more_audits() -> None:
    widths = [
        wilson_interval(n // 20, n)[1] - wilson_interval(n // 20, n)[0] for n in (20, 200, 2000)
    ]
    assert widths[0] > widths[1] > widths[2]


def test_wilson_interval_covers_the_true_rate() -> None:
    """About 95% of intervals from simulated audits hold the true false-hit rate."""
    rng = random.Random(7)
    true_rate, trials, runs = 0.05, 120, 400
    covered = 0
    for _ in range(runs):
        k = sum(rng.random() < true_rate for _ in range(trials))
        low, high = wilson_interval(k, trials)
        covered += low <= true_rate <= high
    assert 0.90 <= covered / runs <= 0.99


def test_false_hit_estimate() -> None:
    assert false_hit_estimate(0, 0) == {
        "false_hit_rate": None,
        "false_hit_rate_low": 0.0,
        "false_hit_rate_high": 1.0,
    }
    estimate = false_hit_estimate(100, 1)
    assert estimate["false_hit_rate"] == 0.01
    assert estimate["false_hit_rate_low"] == pytest.approx(0.001767, abs=2e-6)


# -- sampling ------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.5])
def test_sampler_audits_its_rate(rate: float) -> None:
    sampler = AuditSampler(rate, random.Random(42))
    draws = 20_000
    chosen = sum(sampler() for _ in range(draws))
    # 5 standard deviations: a seeded RNG, so this is a fixed number, and a wrong rate fails
    assert abs(chosen - rate * draws) <= 5 * math.sqrt(draws * rate * (1 - rate))


def test_sampler_is_reproducible_and_bounded() -> None:
    first = AuditSampler(0.3, random.Random(1))
    second = AuditSampler(0.3, random.Random(1))
    assert [first() for _ in range(200)] == [second() for _ in range(200)]
    assert not any(AuditSampler(0.0)() for _ in range(1000))
    assert all(AuditSampler(1.0)() for _ in range(1000))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="audit rate"):
            AuditSampler(bad)


# -- answer comparison ---------------------------------------------------------------------


def chat(content: Any, *, ident: str = "a", tool: tuple[str, str] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool:
        message["tool_calls"] = [
            {"id": ident, "type": "function", "function": {"name": tool[0], "arguments": tool[1]}}
        ]
    return {"id": ident, "created": 1, "choices": [{"index": 0, "message": message}]}


PARIS = "The capital of France is Paris, a city on the Seine famous for the Eiffel Tower."
PARIS_AGAIN = "Paris is the capital of France; it lies on the Seine and has the Eiffel Tower."
PASSWORD = "To reset your password, open Settings, choose Security and follow the emailed link."
WEATHER = "Tomorrow will be rainy in Berlin with a high of twelve degrees and strong winds."

COMPARISONS = [
    # (served, fresh, agree, method)
    (chat(PARIS, ident="x"), chat(PARIS, ident="y"), True, "same"),  # ids are not the answer
    (chat(PARIS), {"semcache_answer": 1, "content": PARIS, "tool_calls": None}, True, "same"),
    (chat("Yes."), chat("No."), False, "exact"),
    (chat("Yes."), chat("yes"), True, "exact"),
    (chat("42"), chat("24"), False, "exact"),
    (chat(None, tool=("f", '{"a": 1}')), chat(None, tool=("f", '{"a": 2}')), False, "exact"),
    (
        chat(None, tool=("f", '{"a":1}')),
        chat(None, tool=("f", '{"a": 1}'), ident="z"),
        True,
        "same",
    ),
    (chat(PARIS), chat(PARIS_AGAIN), True, "embedding"),
    (chat(PARIS), chat(PASSWORD), False, "embedding"),
    (chat(WEATHER), chat(PASSWORD), False, "embedding"),
]


@pytest.mark.parametrize(("served", "fresh", "agree", "method"), COMPARISONS)
def test_compare_answers(
    embedder: Embedder, served: Any, fresh: Any, agree: bool, method: str
) -> None:
    result = compare_answers(served, fresh, embedder.embed, 0.85)
    assert (result.agree, result.method) == (agree, method)
    assert -1.0 <= result.similarity <= 1.0


# -- records and accounting ----------------------------------------------------------------


def test_audit_record_round_trip() -> None:
    record = AuditRecord("ab" * 16, "q", "p", 0.93, 0.2, False, "embedding", "s", "f", 1.5)
    assert AuditRecord.from_json(record.to_json()) == record
    assert AuditRecord.from_json('{"v": 99}') is None
    assert AuditRecord.from_json("not json") is None
    assert AuditRecord.from_json('{"v": 1, "unknown": 1}') is None


@pytest.mark.parametrize(
    ("fields", "demoted"),
    [
        (None, False),
        ({}, False),
        ({"demoted": None}, False),
        ({"demoted": b""}, False),
        ({"demoted": b"1"}, True),
        ({"demoted": "1"}, True),
    ],
)
def test_is_demoted(fields: Any, demoted: bool) -> None:
    assert is_demoted(fields) is demoted


def test_stats_report_audits_and_estimate() -> None:
    stats = CacheStats()
    for _ in range(40):
        stats.count("audited")
    for _ in range(2):
        stats.count("audit_disagreements")
    stats.count("shadow_hits_semantic")
    snapshot = stats.snapshot()
    assert snapshot["audited"] == 40 and snapshot["audit_disagreements"] == 2
    assert snapshot["shadow_hits_semantic"] == 1 and snapshot["shadow_hits_exact"] == 0
    assert snapshot["false_hit_rate"] == 0.05
    low, high = wilson_interval(2, 40)
    assert (snapshot["false_hit_rate_low"], snapshot["false_hit_rate_high"]) == (low, high)


# -- the core against Redis ----------------------------------------------------------------

QUESTION = "How do I reset my online banking password?"
PARAPHRASE = "How can I reset the password for my online banking?"
ANSWER = "Open Settings, choose Security, then Reset password and follow the emailed link."
WRONG = "Your card will arrive within five working days after we have approved the order."


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def judge(core: CacheCore, hit: CacheHit, fresh: str) -> None:
    core.internals.auditor.judge_later(hit, PARAPHRASE, chat(fresh))
    assert core.drain_audits(30)


def test_disagreements_demote_an_entry_after_n(make_core: Any, redis_client: redis.Redis) -> None:
    core = make_core(audit_demote_after=2)
    entry = core.store(ask(QUESTION), chat(ANSWER), "m")
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert hit is not None and hit.tier == "semantic" and hit.entry_id == entry
    judge(core, hit, ANSWER)  # an agreement: no trust lost
    judge(core, hit, WRONG)  # one disagreement of two
    assert core.lookup(ask(PARAPHRASE), "m") is not None
    judge(core, hit, WRONG)
    assert core.lookup(ask(PARAPHRASE), "m") is None  # demoted: no longer a semantic candidate
    exact = core.lookup(ask(QUESTION), "m")
    assert exact is not None and exact.tier == "exact"  # exact repeats are still fine
    stats = core.stats()
    assert (stats["audited"], stats["audit_disagreements"]) == (3, 2)
    counts, log = read_audit(redis_client, core.layout.name)
    assert (counts["audited"], counts["disagreements"]) == (3, 2)
    assert [record.entry_id for record in log] == [entry, entry]
    assert all(record.query == PARAPHRASE and record.matched_prompt == QUESTION for record in log)
    assert redis_client.ttl(core.layout.key(entry)) == -1  # no TTL was given: none added


def test_a_demoted_entry_keeps_its_expiry(make_core: Any, redis_client: redis.Redis) -> None:
    core = make_core(audit_demote_after=1)
    entry = core.store(ask(QUESTION), chat(ANSWER), "m", ttl=600)
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert hit is not None
    judge(core, hit, WRONG)
    assert 0 < redis_client.ttl(core.layout.key(entry)) <= 600
    assert core.lookup(ask(PARAPHRASE), "m") is None


def test_a_disagreement_never_recreates_a_deleted_entry(
    make_core: Any, redis_client: redis.Redis
) -> None:
    core = make_core(audit_demote_after=1)
    entry = core.store(ask(QUESTION), chat(ANSWER), "m")
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert hit is not None and core.delete(entry)
    judge(core, hit, WRONG)
    assert not redis_client.exists(core.layout.key(entry))
    assert core.stats()["audit_disagreements"] == 1  # still counted and logged


def test_the_log_is_bounded_worst_last_written_first(
    make_core: Any, redis_client: redis.Redis
) -> None:
    core = make_core(audit_log_size=3, audit_demote_after=100)
    core.store(ask(QUESTION), chat(ANSWER), "m")
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert hit is not None
    for n in range(5):
        judge(core, hit, f"{WRONG} Order number {n}.")
    counts, log = read_audit(redis_client, core.layout.name)
    assert counts["disagreements"] == 5 and len(log) == 3
    assert 0 < redis_client.ttl(f"{core.layout.name}:audit:log") <= core.settings.audit_log_ttl


def test_shadow_mode_serves_nothing_and_judges_the_stored_answer(
    make_core: Any, redis_client: redis.Redis
) -> None:
    core = make_core(serve=False)
    core.store(ask(QUESTION), chat(ANSWER), "m")
    assert core.lookup(ask(QUESTION), "m") is None  # exact: found, not served
    assert core.lookup(ask(PARAPHRASE), "m") is None  # semantic: found, not served
    stats = core.stats()
    assert (stats["shadow_hits_exact"], stats["shadow_hits_semantic"]) == (1, 1)
    assert (stats["hits_exact"], stats["hits_semantic"], stats["misses"]) == (0, 0, 2)
    # the provider's answer to the paraphrase is stored, and judged against what would have been
    assert core.store(ask(PARAPHRASE), chat(WRONG), "m") is not None
    assert core.drain_audits(30)
    stats = core.stats()
    assert (stats["audited"], stats["audit_disagreements"]) == (1, 1)
    _, log = read_audit(redis_client, core.layout.name)
    assert len(log) == 1 and log[0].shadow and log[0].query == PARAPHRASE


def test_shadow_mode_agreement_is_counted_not_logged(
    make_core: Any, redis_client: redis.Redis
) -> None:
    core = make_core(serve=False)
    core.store(ask(QUESTION), chat(ANSWER), "m")
    assert core.lookup(ask(PARAPHRASE), "m") is None
    core.store(ask(PARAPHRASE), chat(ANSWER), "m")
    assert core.drain_audits(30)
    assert (core.stats()["audited"], core.stats()["audit_disagreements"]) == (1, 0)
    counts, log = read_audit(redis_client, core.layout.name)
    assert counts == {"audited": 1} and log == []


def test_serving_core_samples_nothing_by_default(make_core: Any) -> None:
    core = make_core()
    core.store(ask(QUESTION), chat(ANSWER), "m")
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert hit is not None and hit.tier == "semantic"
    assert not core.internals.auditor.served(hit)
    assert core.stats()["shadow_hits_semantic"] == 0


# -- semcache audit / stats, Prometheus ---------------------------------------------------


def test_cli_audit_lists_disagreements_worst_first(
    make_core: Any, redis_url: str, index_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from semcache_plugins._cli._main import main

    core = make_core(audit_demote_after=100)
    entry = core.store(ask(QUESTION), chat(ANSWER), "m")
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert hit is not None
    judge(core, hit, ANSWER)  # agrees: counted, not listed
    judge(core, hit, WRONG)  # far from the cached answer
    judge(core, hit, "Open Settings, choose Privacy, then Delete account and confirm by email.")
    capsys.readouterr()
    assert main(["audit", "--redis-url", redis_url, "--index-prefix", index_prefix]) == 0
    out = capsys.readouterr().out
    assert "audited 3, disagreements 2" in out
    rate = format_rate(false_hit_estimate(3, 2))
    assert rate in out and "95% interval" in out
    assert out.index(WRONG[:40]) < out.index("Delete account")  # worst (least similar) first
    assert out.count(f"semcache delete --index-prefix {index_prefix} {entry}") == 2

    assert main(["audit", "--json", "--redis-url", redis_url, "--index-prefix", index_prefix]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    similarities = [row["answer_similarity"] for row in report["worst"]]
    assert similarities == sorted(similarities) and len(similarities) == 2
    assert report["false_hit_rate"] == pytest.approx(2 / 3)

    assert main(["stats", "--redis-url", redis_url, "--index-prefix", index_prefix]) == 0
    assert f"audited 3, disagreements 2, est. false-hit rate {rate}" in capsys.readouterr().out


def test_prometheus_reports_audits_and_the_estimate(make_core: Any) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from semcache_plugins.metrics import PrometheusMetrics

    registry = CollectorRegistry()
    core = make_core(serve=False)
    PrometheusMetrics(core, registry)
    text = generate_latest(registry).decode()
    assert 'semcache_false_hit_rate{bound="estimate"} NaN' in text  # no audit yet
    core.store(ask(QUESTION), chat(ANSWER), "m")
    assert core.lookup(ask(PARAPHRASE), "m") is None  # shadow mode
    core.store(ask(PARAPHRASE), chat(WRONG), "m")
    assert core.drain_audits(30)
    text = generate_latest(registry).decode()
    assert 'semcache_shadow_hits_total{tier="semantic"} 1.0' in text
    assert "semcache_audited_total 1.0" in text
    assert "semcache_audit_disagreements_total 1.0" in text
    assert 'semcache_false_hit_rate{bound="estimate"} 1.0' in text
    low = wilson_interval(1, 1)[0]
    assert f'semcache_false_hit_rate{{bound="low"}} {low}' in text


# A close neighbour of QUESTION: the agreement test weighs both against PARAPHRASE.
NEIGHBOUR = "How do I reset my online banking password quickly?"


@pytest.mark.parametrize(
    ("neighbour_answer", "served"),
    [(WRONG, None), (ANSWER, ANSWER)],
    ids=["other-answer-still-vetoes", "same-answer-serves"],
)
def test_a_demoted_entry_is_a_neighbour_but_never_an_answer(
    make_core: Any, neighbour_answer: str, served: str | None
) -> None:
    core = make_core(audit_demote_after=1)
    entry = core.store(ask(QUESTION), chat(ANSWER), "m")
    core.store(ask(NEIGHBOUR), chat(neighbour_answer), "m")
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert (hit and hit.entry_id) == (entry if served else None)  # before: nearest, or vetoed
    nearest = CacheHit(chat(ANSWER), "semantic", 0.99, QUESTION, entry, 0.0)
    judge(core, nearest, WRONG)  # demotes the nearest entry
    after = core.lookup(ask(PARAPHRASE), "m")
    if served is None:  # the demoted entry's other answer keeps the neighbour from answering
        assert after is None
    else:  # the neighbour holds the same answer and may serve it
        assert after is not None and after.entry_id != entry
        assert after.response["choices"][0]["message"]["content"] == served
    exact = core.lookup(ask(QUESTION), "m")
    assert exact is not None and exact.tier == "exact"


def test_demoted_ids_reads_the_flag_of_each_candidate() -> None:
    close = [(0.99, "p:s2.x:aa"), (0.95, "p:s2.x:bb"), (0.9, "p:s2.x:cc")]
    found: list[dict[str, Any] | None] = [{"demoted": b"1"}, {"demoted": None}, None]
    assert demoted_ids(close, found) == frozenset({"aa"})


def test_audits_after_close_are_dropped(make_core: Any) -> None:
    core = make_core()
    core.store(ask(QUESTION), chat(ANSWER), "m")
    hit = core.lookup(ask(PARAPHRASE), "m")
    assert hit is not None
    core.close()
    core.internals.auditor.judge_later(hit, PARAPHRASE, chat(WRONG))
    core.internals.auditor.run_call(lambda: None)
    assert core.drain_audits(5) and core.stats()["audited"] == 0
