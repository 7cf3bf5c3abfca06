"""``semcache demo`` end to end, its pure table helpers, and the package's fake LLM server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

from semcache_plugins._cli._demo import SCRIPT, DemoRow, format_table, format_totals
from semcache_plugins._cli._fake_llm import FakeLLM, fake_answer, token_count
from semcache_plugins._types import CacheHit


def _post(url: str, body: dict[str, Any]) -> tuple[str, bytes]:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL built by the test
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.headers["Content-Type"], response.read()


def _row(prompt: str, tier: str | None, guarded: bool = False) -> DemoRow:
    hit = None if tier is None else CacheHit({}, tier, 0.9123, prompt, "id", 0.0)  # type: ignore[arg-type]
    seconds = 0.010 if hit else 0.450
    return DemoRow("litellm", prompt, hit, guarded, seconds, 60 if hit else 0, 0.5 if hit else 0)


def test_demo_runs_the_scripted_session_under_a_minute(redis_url: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "semcache_plugins", "demo", "--redis-url", redis_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert elapsed < 60, f"demo took {elapsed:.1f}s"
    rows = [
        line.split() for line in done.stdout.splitlines() if line.startswith(("litellm", "lang"))
    ]
    assert len(rows) == len(SCRIPT)
    by_prompt = {" ".join(r): r for r in rows}
    exact = [r for r in by_prompt if "HIT exact 1.000" in r]
    semantic = [r for r in by_prompt if "HIT semantic 0.9" in r]
    guarded = [r for r in by_prompt if "miss (guarded)" in r]
    assert any("How do I reset my password?" in r for r in exact)
    assert any("I forgot my password" in r for r in semantic)
    assert any("order 48231?" in r for r in guarded)
    assert any("first invoice" in r for r in guarded)
    assert any(r.startswith("langchain stream") for r in exact)
    assert not any("order 48213?" in r and "HIT" in r for r in by_prompt)
    assert "TOTAL 9 calls: 4 hits (2 exact, 2 semantic), 5 misses (2 guarded); 5 LLM requests" in (
        done.stdout
    )
    saved = [line for line in done.stdout.splitlines() if line.startswith("mean latency")]
    assert saved and "saved 0 tokens" not in saved[0] and "$0.000000" not in saved[0]


def test_format_table_shows_hit_tier_similarity_and_savings() -> None:
    long = "What is the status of order 48231 placed last Tuesday by my colleague?"
    table = format_table([_row("hello", "semantic"), _row(long, None, guarded=True)])
    head, rule, hit, miss = table.splitlines()
    assert head.split()[:5] == ["via", "prompt", "result", "tier", "sim"]
    assert set(rule) == {"-"}
    assert hit.split() == ["litellm", "hello", "HIT", "semantic", "0.912", "10ms", "60", "0.500000"]
    assert "miss (guarded)" in miss and long[:41] + "..." in miss and "450ms" in miss
    assert miss.split()[-4:] == ["-", "450ms", "-", "-"]


def test_format_totals_counts_outcomes_and_sums_savings() -> None:
    rows = [_row("a", None), _row("a", "exact"), _row("b", "semantic"), _row("c", None, True)]
    assert [r.outcome for r in rows] == ["miss", "exact", "semantic", "guarded"]
    first, second = format_totals(rows, llm_requests=2).splitlines()
    assert first == (
        "TOTAL 4 calls: 2 hits (1 exact, 1 semantic), 2 misses (1 guarded); 2 LLM requests"
    )
    assert second == "mean latency: hit 10 ms, miss 450 ms; saved 120 tokens, $1.000000"
    assert "hit -" in format_totals([_row("a", None)], 1)


def test_fake_llm_answers_deterministically_with_usage_and_delay() -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "How do I reset my password?"},
    ]
    with FakeLLM(delay=0.3) as llm:
        url = llm.api_base + "/chat/completions"
        t0 = time.perf_counter()
        kind, raw = _post(url, {"model": "gpt-4o-mini", "messages": messages})
        assert time.perf_counter() - t0 >= 0.3
        body = json.loads(raw)
        _, again = _post(url, {"model": "gpt-4o-mini", "messages": messages})
        assert llm.count == 2
    assert kind == "application/json"
    text = body["choices"][0]["message"]["content"]
    assert text == json.loads(again)["choices"][0]["message"]["content"]
    assert text == fake_answer(messages, "gpt-4o-mini")
    assert "How do I reset my password?" in text
    assert text != fake_answer(messages, "gpt-4o")
    assert text != fake_answer([{"role": "system", "content": "Be kind."}, messages[1]], "x")
    usage = body["usage"]
    assert usage["completion_tokens"] == token_count(text) > 10
    assert usage["prompt_tokens"] == 3 + 4 + token_count("Be terse.") + 4 + 7
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_fake_llm_streams_sse_chunks_that_add_up_to_the_answer() -> None:
    messages = [{"role": "user", "content": "Cancel my subscription"}]
    body = {
        "model": "m",
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with FakeLLM(delay=0.05) as llm:
        kind, raw = _post(llm.api_base + "/chat/completions", body)
    assert kind == "text/event-stream"
    frames = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == fake_answer(messages, "m")
    assert chunks[-1]["usage"]["completion_tokens"] == token_count(text)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


def test_fake_llm_is_not_running_outside_its_block() -> None:
    llm = FakeLLM()
    with llm:
        assert llm.api_base.startswith("http://127.0.0.1:")
    with pytest.raises(RuntimeError, match="not running"):
        _ = llm.api_base
