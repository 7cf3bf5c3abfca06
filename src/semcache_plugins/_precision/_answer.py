"""What a stored answer shows, whatever shape it was stored in; and the neutral answer format.

Entries hold LiteLLM ``ModelResponse`` dumps (chat or text completion), LangChain generations
(``_langchain_convert``), plain JSON values, or the adapter-neutral format that warming writes::

    {"semcache_answer": 1, "content": "...", "tool_calls": [OpenAI-style calls] | null}

``shown_answers`` reads any of them into ``ShownAnswer``s (text and tool calls, one per choice
or generation), which each adapter renders into its own type; ``answer_content`` is the part
two answers must share to be "the same answer" (no ids, timestamps or usage), which
``answers_agree`` (the lookup's neighbour-agreement test) compares.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigurationError
from .._records import StoredRecord

__all__ = [
    "NEUTRAL_KEY",
    "ShownAnswer",
    "ToolCall",
    "answer_content",
    "answers_agree",
    "is_chat_message",
    "neutral_answer",
    "shown_answers",
]

NEUTRAL_KEY = "semcache_answer"
NEUTRAL_VERSION = 1
_LANGCHAIN_KIND = "langchain.generations"


@dataclass(frozen=True)
class ToolCall:
    """One tool call: the function name and its arguments as a JSON string."""

    name: str
    arguments: str
    id: str | None = None

    def canonical(self) -> tuple[str, str]:
        """Name and arguments with key order and spacing made canonical (no id)."""
        try:
            args = json.dumps(json.loads(self.arguments), sort_keys=True, separators=(",", ":"))
        except (ValueError, TypeError, RecursionError):
            args = self.arguments
        return self.name, args


@dataclass(frozen=True)
class ShownAnswer:
    """What one choice or generation shows: its text and its tool calls."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def _content(value: Any) -> str:
    """Message content as text: a string as-is, content blocks' text joined, others as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(part, str) or (isinstance(part, Mapping) and part.get("type") == "text")
        for part in value
    ):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", "")) for part in value
        )
    return _canonical_json(value)


def _openai_calls(message: Mapping[str, Any]) -> tuple[ToolCall, ...]:
    """``tool_calls`` (and the legacy ``function_call``) of an OpenAI-style message."""
    calls = []
    raw_calls = message.get("tool_calls")
    for call in raw_calls if isinstance(raw_calls, list) else []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping):
            arguments = function.get("arguments")
            calls.append(
                ToolCall(
                    str(function.get("name", "")),
                    arguments if isinstance(arguments, str) else _canonical_json(arguments),
                    call.get("id") if isinstance(call.get("id"), str) else None,
                )
            )
        elif isinstance(call, Mapping) and "name" in call:  # LangChain-style, given by a user
            calls.append(_langchain_call(call))
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        arguments = legacy.get("arguments")
        calls.append(
            ToolCall(
                str(legacy.get("name", "")),
                arguments if isinstance(arguments, str) else _canonical_json(arguments),
            )
        )
    return tuple(calls)


def _langchain_call(call: Mapping[str, Any]) -> ToolCall:
    args = call.get("args")
    return ToolCall(
        str(call.get("name", "")),
        args if isinstance(args, str) else _canonical_json(args if args is not None else {}),
        call.get("id") if isinstance(call.get("id"), str) else None,
    )


def _litellm(choices: Sequence[Any]) -> list[ShownAnswer] | None:
    shown = []
    for choice in choices:
        if not isinstance(choice, Mapping):
            return None
        message = choice.get("message")
        if isinstance(message, Mapping):
            shown.append(ShownAnswer(_content(message.get("content")), _openai_calls(message)))
        elif isinstance(choice.get("text"), str):
            shown.append(ShownAnswer(choice["text"]))
        else:
            return None
    return shown


def _langchain(generations: Any) -> list[ShownAnswer] | None:
    if not isinstance(generations, list):
        return None
    shown = []
    for item in generations:
        kwargs = item.get("kwargs") if isinstance(item, Mapping) else None
        if not isinstance(kwargs, Mapping):
            return None
        message = kwargs.get("message")
        message_kwargs = message.get("kwargs") if isinstance(message, Mapping) else None
        if isinstance(message_kwargs, Mapping):
            calls = [
                _langchain_call(call)
                for call in message_kwargs.get("tool_calls") or []
                if isinstance(call, Mapping)
            ]
            extra = message_kwargs.get("additional_kwargs")
            if not calls and isinstance(extra, Mapping):
                calls = list(_openai_calls(extra))
            shown.append(ShownAnswer(_content(message_kwargs.get("content")), tuple(calls)))
        elif isinstance(kwargs.get("text"), str):
            shown.append(ShownAnswer(kwargs["text"]))
        else:
            return None
    return shown


def shown_answers(response: Any) -> list[ShownAnswer] | None:
    """The answers a stored value shows, or None for a shape no adapter can render."""
    if isinstance(response, str):
        return [ShownAnswer(response)]
    if not isinstance(response, Mapping):
        return None
    if response.get(NEUTRAL_KEY) == NEUTRAL_VERSION:
        return [ShownAnswer(_content(response.get("content")), _openai_calls(response))]
    if response.get("kind") == _LANGCHAIN_KIND:
        return _langchain(response.get("generations"))
    choices = response.get("choices")
    if isinstance(choices, list) and choices:
        return _litellm(choices)
    return None


def answer_content(response: Any) -> Hashable:
    """What would be shown, comparable across stored shapes: per choice the text (trimmed) and
    the tool calls' names and arguments. Ids, timestamps, usage and model names are left out;
    a value of unknown shape is compared whole."""
    shown = shown_answers(response)
    if not shown:
        return ("json", _canonical_json(response))
    return tuple(
        (answer.content.strip(), tuple(call.canonical() for call in answer.tool_calls))
        for answer in shown
    )


def is_chat_message(value: Any) -> bool:
    """A chat message dict (``content`` and/or ``tool_calls``), not a whole response."""
    return (
        isinstance(value, Mapping)
        and ("content" in value or "tool_calls" in value)
        and "choices" not in value
        and NEUTRAL_KEY not in value
    )


def neutral_answer(response: Any) -> dict[str, Any]:
    """The neutral stored form of a warm record's ``response``: text, a chat message dict
    (``content`` and optional ``tool_calls``), or an already neutral value."""
    if isinstance(response, Mapping) and response.get(NEUTRAL_KEY) == NEUTRAL_VERSION:
        return dict(response)
    if isinstance(response, str):
        return {NEUTRAL_KEY: NEUTRAL_VERSION, "content": response, "tool_calls": None}
    if is_chat_message(response):
        content = response.get("content")
        if content is not None and not isinstance(content, str | list):
            raise ConfigurationError("a response message's 'content' must be text or parts")
        calls = [
            {
                "id": call.id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(_openai_calls(response))
        ]
        return {NEUTRAL_KEY: NEUTRAL_VERSION, "content": content, "tool_calls": calls or None}
    raise ConfigurationError(
        "'response' must be text or a chat message {'content': ..., 'tool_calls'?: [...]}"
    )


def answers_agree(
    candidates: Sequence[tuple[float, StoredRecord]], index: int, margin: float
) -> bool:
    """May candidate ``index`` answer? Not if a nearer neighbour, or one less than ``margin``
    further away, holds a different answer: the query sits between two answers (a ratio test).
    Answers are compared by what would be shown (``answer_content``: text and tool calls), not
    by ids, timestamps or usage. A margin of 0 turns the check off."""
    if margin <= 0:
        return True
    similarity, record = candidates[index]
    content = answer_content(record.response)
    return all(
        other is record or answer_content(other.response) == content
        for other_similarity, other in candidates
        if other_similarity >= similarity - margin
    )
