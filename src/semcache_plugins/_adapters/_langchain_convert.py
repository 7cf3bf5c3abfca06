"""Pure conversions between LangChain's cache arguments and the core's request shape.

LangChain calls a cache with two strings (see ``langchain_core/language_models``):

* ``prompt``: for chat models ``dumps(messages)`` with message ids cleared
  (``BaseChatModel._generate_with_cache``); for LLMs the prompt text itself
  (``llms.get_prompts``).
* ``llm_string``: for serializable chat models ``json.dumps(dumpd(model), sort_keys=True)``
  ``+ "---" + str(sorted({**kwargs, "stop": stop}.items()))``; otherwise
  ``str(sorted(params.items()))`` (``BaseChatModel._get_llm_string``, ``llms.get_prompts``).

Both are parsed as data (``json`` and ``ast.literal_eval``, never ``eval`` or pickle). A shape
we do not recognise is hashed whole, which can only cause misses, never a wrong hit.
"""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.load import Serializable, dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.tool import tool_call
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from .._cache._scope import sha256_hex
from .._errors import SerializationError
from .._precision._answer import ShownAnswer

__all__ = [
    "OPAQUE_ROLE",
    "CacheRequest",
    "decode_generations",
    "encode_generations",
    "has_tool_calls",
    "parse_llm_string",
    "parse_prompt",
    "render_generations",
    "to_request",
    "with_hit_info",
]

# A role the core never embeds: a prompt we cannot read is served from the exact tier only.
OPAQUE_ROLE = "langchain_prompt"
FALLBACK_MODEL = "langchain"
PAYLOAD_KIND = "langchain.generations"

# Constructor kwargs that name the model, in the order LangChain integrations use them.
_MODEL_KEYS = (
    "model",
    "model_name",
    "model_id",
    "deployment_name",
    "azure_deployment",
    "repo_id",
    "endpoint_name",
)
_ROLES = {
    "SystemMessage": "system",
    "HumanMessage": "user",
    "AIMessage": "assistant",
    "ToolMessage": "tool",
    "FunctionMessage": "function",
}
_CHAT_ROLES = {"human": "user", "ai": "assistant"}
# Constructor kwargs of serializable chat models that never change the answer (transport,
# usage reporting). With the class name left out too, ``ChatOpenAI(model="gpt-4o-mini")`` has
# the scope of ``model="gpt-4o-mini"`` with no params: LiteLLM's and warmed entries' scope.
_NOT_ANSWER_KWARGS = frozenset(
    {
        "stream_usage",
        "disable_streaming",
        "rate_limiter",
        "include_response_headers",
        "default_query",
        "http_async_client",
        "max_retries",
        "request_timeout",
        "timeout",
    }
)
# The only classes a cached payload may revive (``load`` with an explicit allowlist).
_ALLOWED: list[type[Serializable]] = [
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
]

with warnings.catch_warnings():  # ``load`` warns once per process that it is beta: spend it here
    warnings.simplefilter("ignore", LangChainBetaWarning)
    load([], allowed_objects=_ALLOWED)


@dataclass(frozen=True)
class CacheRequest:
    """What the core needs for one LangChain cache call."""

    messages: list[dict[str, Any]]
    model: str
    params: dict[str, Any]
    chat: bool = False  # a chat model's prompt (its hits are ChatGenerations)


def to_request(prompt: str, llm_string: str) -> CacheRequest:
    """The core request for LangChain's ``(prompt, llm_string)`` pair."""
    model, params = parse_llm_string(llm_string)
    chat = _chat_messages(prompt)
    if chat is not None:
        return CacheRequest(chat, model, params, chat=True)
    return CacheRequest(parse_prompt(prompt), model, params)


# -- prompt -----------------------------------------------------------------------------------


def _is_lc_object(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("lc") == 1
        and value.get("type") == "constructor"
        and isinstance(value.get("id"), list)
        and bool(value["id"])
        and all(isinstance(part, str) for part in value["id"])
        and isinstance(value.get("kwargs"), dict)
    )


def _message(obj: dict[str, Any]) -> dict[str, Any] | None:
    """An OpenAI-style message for one serialized LangChain message, or None if unknown."""
    kwargs: dict[str, Any] = obj["kwargs"]
    name = obj["id"][-1].removesuffix("Chunk")
    role = _ROLES.get(name)
    if name == "ChatMessage" and isinstance(kwargs.get("role"), str):
        role = _CHAT_ROLES.get(kwargs["role"], kwargs["role"])
    content = kwargs.get("content", "")
    if role is None or not isinstance(content, str | list):
        return None
    message: dict[str, Any] = {"role": role, "content": content}
    for key in ("name", "tool_call_id"):
        if kwargs.get(key) is not None:
            message[key] = kwargs[key]
    calls = [
        call
        for key in ("tool_calls", "invalid_tool_calls")
        if isinstance(kwargs.get(key), list)
        for call in kwargs[key]
    ]
    if calls:
        message["tool_calls"] = calls
    extra = kwargs.get("additional_kwargs")
    if isinstance(extra, dict) and extra.get("function_call") is not None:
        message["function_call"] = extra["function_call"]
    return message


def _chat_messages(prompt: str) -> list[dict[str, Any]] | None:
    """Messages for a chat prompt (``dumps(messages)``), or None for plain LLM text."""
    if prompt.startswith("["):
        try:
            data = json.loads(prompt)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, list) and data and all(_is_lc_object(item) for item in data):
            messages = [_message(item) for item in data]
            if any(message is None for message in messages):
                return [{"role": OPAQUE_ROLE, "content": prompt}]
            return [message for message in messages if message is not None]
    return None


def parse_prompt(prompt: str) -> list[dict[str, Any]]:
    """Messages for a chat prompt (``dumps(messages)``); one user turn for plain LLM text."""
    chat = _chat_messages(prompt)
    return chat if chat is not None else [{"role": "user", "content": prompt}]


# -- llm_string ---------------------------------------------------------------------------------


def _literal_params(text: str) -> dict[str, Any] | None:
    """``str(sorted(params.items()))`` back into a dict; None when it holds non-literals."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, list) or not all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) for item in value
    ):
        return None
    return dict(value)


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get("lc") == 1 and value.get("type") == "secret"


def _take_model(params: dict[str, Any], *sources: Mapping[str, Any]) -> str | None:
    """The first model name found in ``sources``; its key is removed from ``params``."""
    for source in sources:
        for key in _MODEL_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                params.pop(key, None)
                return value
    return None


def _serialized_llm_string(llm_string: str) -> tuple[str, dict[str, Any]] | None:
    """``json(dumpd(model)) + "---" + str(sorted(call params))`` (serializable chat models)."""
    try:
        obj, end = json.JSONDecoder().raw_decode(llm_string)
    except (ValueError, RecursionError):
        return None
    if not _is_lc_object(obj) or not llm_string.startswith("---", end):
        return None
    call_text = llm_string[end + 3 :]
    call = _literal_params(call_text)
    if call is None:
        call = {"call_params_sha256": sha256_hex(call_text)}
    init = {
        key: value
        for key, value in obj["kwargs"].items()
        if not _is_secret(value) and key not in _NOT_ANSWER_KWARGS
    }
    params = {**init, **call}
    model = _take_model(params, call, init) or obj["id"][-1]
    return model, params


def _plain_llm_string(llm_string: str) -> tuple[str, dict[str, Any]] | None:
    """``str(sorted(params.items()))`` (LLMs and non-serializable chat models)."""
    params = _literal_params(llm_string)
    if params is None:
        return None
    llm_type = params.pop("_type", None)
    if llm_type is not None:
        params["llm_type"] = llm_type  # the core ignores "_"-prefixed keys
    model = _take_model(params, dict(params)) or (llm_type if isinstance(llm_type, str) else None)
    return model or FALLBACK_MODEL, params


def parse_llm_string(llm_string: str) -> tuple[str, dict[str, Any]]:
    """Model name and output-changing parameters; an unknown shape is hashed whole."""
    parsed = _serialized_llm_string(llm_string) or _plain_llm_string(llm_string)
    if parsed is None:
        return FALLBACK_MODEL, {"llm_string_sha256": sha256_hex(llm_string)}
    return parsed


# -- generations --------------------------------------------------------------------------------


def _has_unserializable(value: Any) -> bool:
    if isinstance(value, dict):
        if value.get("lc") == 1 and value.get("type") == "not_implemented":
            return True
        return any(_has_unserializable(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_unserializable(item) for item in value)
    return False


def encode_generations(generations: Sequence[Generation]) -> dict[str, Any] | None:
    """A JSON value for the generations (LangChain's serializer); None if one cannot round-trip."""
    items = [dumpd(generation) for generation in generations]
    if not items or _has_unserializable(items):
        return None
    return {"kind": PAYLOAD_KIND, "generations": items}


def decode_generations(value: Any) -> list[Generation]:
    """Revive stored generations; only generation and AI message classes are allowed."""
    if not isinstance(value, dict) or value.get("kind") != PAYLOAD_KIND:
        raise SerializationError("cached value is not a LangChain generation list")
    try:
        revived = load(value.get("generations"), allowed_objects=_ALLOWED)
    except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
        raise SerializationError(f"cannot revive cached generations: {type(exc).__name__}") from exc
    if (
        not isinstance(revived, list)
        or not revived
        or not all(isinstance(item, Generation) for item in revived)
    ):
        raise SerializationError("cached generations have an unexpected shape")
    return revived


def has_tool_calls(generations: Sequence[Generation]) -> bool:
    """Whether any generation asks for a tool (such answers default to the exact tier only)."""
    for generation in generations:
        message = getattr(generation, "message", None)
        if isinstance(message, AIMessage) and (
            message.tool_calls
            or message.invalid_tool_calls
            or message.additional_kwargs.get("tool_calls")
            or message.additional_kwargs.get("function_call")
        ):
            return True
    return False


def render_generations(shown: Sequence[ShownAnswer], *, chat: bool) -> list[Generation]:
    """Generations for an entry stored in another shape (a warmed answer, a LiteLLM response):
    ``ChatGeneration``s with an ``AIMessage`` (tool calls included) for chat models, plain
    ``Generation``s for LLMs."""
    if not chat:
        return [Generation(text=answer.content) for answer in shown]
    generations: list[Generation] = []
    for answer in shown:
        calls = []
        for index, call in enumerate(answer.tool_calls):
            try:
                args = json.loads(call.arguments)
            except (ValueError, RecursionError):
                args = None
            if not isinstance(args, dict):
                raise SerializationError("a cached tool call's arguments are not a JSON object")
            calls.append(tool_call(name=call.name, args=args, id=call.id or f"call_{index}"))
        message = AIMessage(content=answer.content, tool_calls=calls)
        generations.append(ChatGeneration(message=message))
    return generations


def with_hit_info(generations: list[Generation], info: Mapping[str, Any]) -> list[Generation]:
    """Put the hit's tier, similarity and entry id in each chat message's
    ``response_metadata["semcache"]`` (plain LLM generations are returned as stored)."""
    marked: list[Generation] = []
    for generation in generations:
        message = getattr(generation, "message", None)
        if isinstance(generation, ChatGeneration) and isinstance(message, AIMessage):
            metadata = {**message.response_metadata, "semcache": dict(info)}
            generation = ChatGeneration(
                message=message.model_copy(update={"response_metadata": metadata}),
                generation_info=generation.generation_info,
            )
        marked.append(generation)
    return marked
