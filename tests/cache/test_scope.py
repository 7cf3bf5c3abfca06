"""Pure scope rules: what must match exactly, what is ignored, what is embedded."""

from __future__ import annotations

from typing import Any

import pytest

from semcache_plugins._cache._scope import (
    canonical_params,
    content_text,
    normalize_text,
    plan_request,
    system_prompt_hash,
)

SYSTEM = {"role": "system", "content": "You are terse."}


def plan(
    messages: list[dict[str, Any]],
    model: str = "gpt-4o-mini",
    params: dict[str, Any] | None = None,
    namespace: str = "default",
):
    return plan_request(messages, model=model, params=params, namespace=namespace)


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_only_last_user_turn_is_the_text() -> None:
    p = plan([SYSTEM, user("first"), {"role": "assistant", "content": "ok"}, user("  second  q ")])
    assert p.text == "second q"
    assert p.semantic and p.skip_reason is None


def test_system_prompt_model_params_prior_turns_namespace_change_scope() -> None:
    base = plan([SYSTEM, user("q")], params={"temperature": 0})
    variants = [
        plan(
            [{"role": "system", "content": "You are verbose."}, user("q")],
            params={"temperature": 0},
        ),
        plan([SYSTEM, user("q")], model="gpt-4o", params={"temperature": 0}),
        plan([SYSTEM, user("q")], params={"temperature": 0.7}),
        plan([SYSTEM, user("q")], params={"temperature": 0, "tools": [{"name": "f"}]}),
        plan(
            [SYSTEM, user("hi"), {"role": "assistant", "content": "hello"}, user("q")],
            params={"temperature": 0},
        ),
        plan([SYSTEM, user("q")], params={"temperature": 0}, namespace="tenant-b"),
        plan([user("q")], params={"temperature": 0}),
    ]
    scopes = {v.scope for v in variants}
    assert base.scope not in scopes
    assert len(scopes) == len(variants)


def test_param_order_and_non_output_params_do_not_change_scope() -> None:
    a = plan([user("q")], params={"temperature": 0, "max_tokens": 10})
    b = plan(
        [user("q")],
        params={
            "max_tokens": 10,
            "temperature": 0,
            "stream": True,
            "user": "u1",
            "timeout": 3,
            "metadata": {"x": 1},
            "api_key": "sk-secret",
            "litellm_call_id": "abc",
            "top_p": None,
        },
    )
    assert a.scope == b.scope
    assert a.entry_id == b.entry_id


def test_nested_param_dict_order_is_canonical() -> None:
    fmt1 = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"a": 1, "b": 2}}}
    fmt2 = {"json_schema": {"schema": {"b": 2, "a": 1}, "name": "x"}, "type": "json_schema"}
    assert canonical_params({"response_format": fmt1}) == canonical_params(
        {"response_format": fmt2}
    )


@pytest.mark.parametrize(
    ("sent", "other"),
    [
        ("What is 2³ + 1?", "What is 23 + 1?"),  # superscript
        ("What is x² + 1?", "What is x2 + 1?"),
        ("How many atoms are in H₂O?", "How many atoms are in H2O?"),  # subscript
        ("What does CO₂ do?", "What does CO2 do?"),
        ("What is step ①?", "What is step 1?"),  # circled number
        ("Is ½ cup enough?", "Is 1⁄2 cup enough?"),  # fraction
        ("What is １２ + 1?", "What is 12 + 1?"),  # fullwidth digits
        ("Open the ﬁle", "Open the file"),  # ligature
        ("What is Ⅳ?", "What is IV?"),  # roman numeral
        ("What  is Redis?", "What is Redis?"),  # inner whitespace
        ("What is\nRedis?", "What is Redis?"),
        ("def f(x):\n    return x", "def f(x):\n  return x"),  # code indentation
        ("if x:\n    a()\n    b()", "if x:\n    a()\nb()"),
        ("what is redis?", "What is Redis?"),  # case
    ],
)
def test_exact_key_is_the_text_as_sent(sent: str, other: str) -> None:
    """Only leading/trailing whitespace is trimmed: NFKC folding, inner whitespace and case
    all make another exact key (the embedded text may still be the same)."""
    assert plan([user(sent)]).entry_id != plan([user(other)]).entry_id
    assert plan([user(f"  {sent}\n ")]).entry_id == plan([user(sent)]).entry_id
    assert plan([user(sent)]).prompt == sent
    # the same for the system prompt and prior turns
    system = {"role": "system", "content": sent}
    other_system = {"role": "system", "content": other}
    assert plan([system, user("q")]).scope != plan([other_system, user("q")]).scope
    assert system_prompt_hash(sent) != system_prompt_hash(other)
    assert system_prompt_hash(f" {sent} ") == system_prompt_hash(sent)
    prior = [user(sent), {"role": "assistant", "content": "ok"}, user("and then?")]
    other_prior = [user(other), {"role": "assistant", "content": "ok"}, user("and then?")]
    assert plan(prior).scope != plan(other_prior).scope


def test_embedded_text_stays_normalized() -> None:
    assert plan([user("What  is\nRedis? ")]).text == "What is Redis?"
    assert plan([user("What is 2³?")]).text == "What is 23?"


def test_content_parts() -> None:
    assert content_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == (
        "a\nb",
        True,
    )
    text, text_only = content_text(
        [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]
    )
    assert text == "a" and not text_only
    assert content_text(None) == ("", True)
    assert content_text(42) == ("", False)


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([], "no_messages"),
        ("just a string", "no_messages"),
        ([SYSTEM], "no_turn"),
        ([user("   ")], "empty_text"),
        ([user(None)], "empty_text"),
        ([user([{"type": "image_url", "image_url": {"url": "http://x"}}])], "non_text_content"),
        (
            [user([{"type": "input_audio", "input_audio": {}}, {"type": "text", "text": "hi"}])],
            "non_text_content",
        ),
        ([user("q"), "not a message"], "bad_message"),
    ],
)
def test_unusable_requests_are_skipped(messages: Any, reason: str) -> None:
    p = plan(messages)
    assert p.skip_reason == reason
    assert not p.semantic


def test_tool_result_last_is_exact_only_and_scoped_by_prior_turns() -> None:
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    tool = {"role": "tool", "tool_call_id": "c1", "content": "12C"}
    p1 = plan([user("weather in Oslo?"), call, tool])
    assert p1.skip_reason is None and not p1.semantic
    other_call = {
        **call,
        "tool_calls": [
            {
                **call["tool_calls"][0],
                "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
            }
        ],
    }
    p2 = plan([user("weather in Oslo?"), other_call, tool])
    assert p1.scope != p2.scope


def test_lone_surrogates_do_not_raise() -> None:
    p = plan([user("bad \ud800 text")])
    assert p.skip_reason is None
    assert "\ufffd" in p.text
    assert normalize_text("a\udfffb").startswith("a\ufffd")
    assert "\udfff" not in normalize_text("a\udfffb")


def test_system_prompt_hash_matches_plan() -> None:
    p = plan([SYSTEM, user("q")])
    assert p.system_hash == system_prompt_hash("You are terse.")
    assert p.system_hash == system_prompt_hash(["  You are terse. "])
    assert p.system_hash != system_prompt_hash(["You are   terse."])
