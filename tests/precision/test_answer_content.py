"""``answer_content``: what a stored answer shows, in every stored shape; and agreement. Pure."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, Generation  # noqa: E402
from litellm import ModelResponse, TextCompletionResponse  # noqa: E402

from semcache_plugins._adapters._langchain_convert import encode_generations  # noqa: E402
from semcache_plugins._cache._flows import answers_agree  # noqa: E402
from semcache_plugins._errors import ConfigurationError  # noqa: E402
from semcache_plugins._precision._answer import answer_content, neutral_answer, shown_answers
from semcache_plugins._records import StoredRecord  # noqa: E402


def chat_dump(content: str | None, *, id: str = "chatcmpl-1", tokens: int = 5, **message: Any):
    """A LiteLLM ``ModelResponse`` as SemCache stores it (``model_dump``): its own envelope."""
    response = ModelResponse(
        id=id,
        model="gpt-4o-mini",
        choices=[{"message": {"role": "assistant", "content": content, **message}}],
        usage={"prompt_tokens": tokens, "completion_tokens": tokens, "total_tokens": 2 * tokens},
    )
    return response.model_dump(mode="json")


def text_dump(text: str, *, id: str = "cmpl-1") -> dict[str, Any]:
    response = TextCompletionResponse(id=id, choices=[{"text": text, "index": 0}])
    return response.model_dump(mode="json")


def call(name: str, arguments: str, id: str) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def lc_chat(content: str, *, id: str, tokens: int = 3, calls: Any = ()) -> Any:
    message = AIMessage(
        content=content,
        id=id,
        tool_calls=list(calls),
        usage_metadata={"input_tokens": tokens, "output_tokens": 1, "total_tokens": tokens + 1},
        response_metadata={"model_name": "gpt-4o-mini", "system_fingerprint": id},
    )
    return encode_generations([ChatGeneration(message=message)])


WEATHER = '{"city": "Paris", "unit": "C"}'
WEATHER_REORDERED = '{"unit":"C","city":"Paris"}'
LC_CALL = {"name": "weather", "args": {"city": "Paris", "unit": "C"}, "id": "c1"}

# Pairs that show the same answer: ids, timestamps, usage, metadata and shape differ.
SAME = [
    (chat_dump("Paris", id="a", tokens=3), chat_dump("Paris", id="b", tokens=9)),
    (chat_dump("Paris"), chat_dump("Paris\n")),  # trailing whitespace is not shown
    (
        chat_dump(None, tool_calls=[call("weather", WEATHER, "call_1")]),
        chat_dump(None, tool_calls=[call("weather", WEATHER_REORDERED, "call_2")]),
    ),
    (text_dump("Paris", id="x"), text_dump("Paris", id="y")),
    (lc_chat("Paris", id="run-1", tokens=3), lc_chat("Paris", id="run-2", tokens=8)),
    (
        lc_chat("", id="run-1", calls=[LC_CALL]),
        lc_chat("", id="run-2", calls=[{**LC_CALL, "id": "c2"}]),
    ),
    (encode_generations([Generation(text="Paris")]), "Paris"),
    ("Paris", {"semcache_answer": 1, "content": "Paris", "tool_calls": None}),
    (chat_dump("Paris"), {"semcache_answer": 1, "content": "Paris"}),  # across shapes
    (lc_chat("Paris", id="run-3"), chat_dump("Paris")),
    (
        chat_dump(None, tool_calls=[call("weather", WEATHER, "call_1")]),
        lc_chat("", id="run-4", calls=[LC_CALL]),
    ),
    ({"answer": 1, "n": [1, 2]}, {"n": [1, 2], "answer": 1}),  # unknown JSON, whole
]

# Pairs that show different answers.
DIFFERENT = [
    (chat_dump("Paris"), chat_dump("Lyon")),
    (chat_dump("Paris"), chat_dump("paris")),
    (
        chat_dump(None, tool_calls=[call("weather", WEATHER, "call_1")]),
        chat_dump(None, tool_calls=[call("weather", '{"city": "Rome", "unit": "C"}', "call_1")]),
    ),
    (
        chat_dump(None, tool_calls=[call("weather", WEATHER, "c")]),
        chat_dump(None, tool_calls=[call("forecast", WEATHER, "c")]),
    ),
    (chat_dump("Paris"), chat_dump("Paris", tool_calls=[call("weather", WEATHER, "c")])),
    (text_dump("Paris"), text_dump("Rome")),
    (lc_chat("Paris", id="run-1"), lc_chat("Rome", id="run-1")),
    (lc_chat("", id="r", calls=[LC_CALL]), lc_chat("", id="r", calls=[{**LC_CALL, "args": {}}])),
    ("Paris", {"semcache_answer": 1, "content": "Rome"}),
    ({"answer": 1}, {"answer": 2}),
    ("Paris", {"answer": "Paris"}),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_same_answer_in_any_envelope(a: Any, b: Any) -> None:
    assert answer_content(a) == answer_content(b)
    assert hash(answer_content(a)) == hash(answer_content(b))


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_answers_differ(a: Any, b: Any) -> None:
    assert answer_content(a) != answer_content(b)


def test_shown_answers_reads_each_shape() -> None:
    [litellm_call] = shown_answers(chat_dump(None, tool_calls=[call("weather", WEATHER, "k")]))
    assert (litellm_call.content, litellm_call.tool_calls[0].name) == ("", "weather")
    assert litellm_call.tool_calls[0].id == "k"
    [lc] = shown_answers(lc_chat("Hi", id="r", calls=[LC_CALL]))
    assert lc.content == "Hi" and lc.tool_calls[0].canonical() == (
        "weather",
        '{"city":"Paris","unit":"C"}',
    )
    assert [a.content for a in shown_answers(text_dump("t"))] == ["t"]
    assert shown_answers({"answer": 1}) is None and shown_answers(42) is None
    assert shown_answers({"choices": [{"nothing": 1}]}) is None


def test_neutral_answer_from_text_and_chat_messages() -> None:
    assert neutral_answer("Paris") == {"semcache_answer": 1, "content": "Paris", "tool_calls": None}
    message = {"role": "assistant", "content": None, "tool_calls": [call("weather", WEATHER, "c")]}
    stored = neutral_answer(message)
    assert stored["tool_calls"][0]["function"] == {"name": "weather", "arguments": WEATHER}
    as_litellm = chat_dump(None, tool_calls=message["tool_calls"])
    assert answer_content(stored) == answer_content(as_litellm)
    lc_style = neutral_answer({"content": "", "tool_calls": [LC_CALL]})
    assert answer_content(lc_style) == answer_content(lc_chat("", id="r", calls=[LC_CALL]))
    for bad in (42, {"answer": 1}, {"content": 3}, {"semcache_answer": 2, "content": "x"}):
        with pytest.raises(ConfigurationError):
            neutral_answer(bad)


def record(response: Any, entry: str) -> StoredRecord:
    return StoredRecord(entry, "scope", f"prompt {entry}", response, 0.0, False)


def test_neighbours_agree_on_content_not_envelopes() -> None:
    same = [
        (0.95, record(chat_dump("Use the reset link.", id="a", tokens=3), "a")),
        (0.94, record(chat_dump("Use the reset link.", id="b", tokens=7), "b")),
    ]
    assert answers_agree(same, 0, 0.08) and answers_agree(same, 1, 0.08)
    other = [same[0], (0.94, record(chat_dump("Call support.", id="b"), "b"))]
    assert not answers_agree(other, 0, 0.08)
    far = [same[0], (0.80, record(chat_dump("Call support.", id="b"), "b"))]
    assert answers_agree(far, 0, 0.08)  # outside the margin: not a competing answer
    assert answers_agree(other, 0, 0.0)  # margin 0 turns the check off
