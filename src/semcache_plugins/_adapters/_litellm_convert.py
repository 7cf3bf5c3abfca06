"""Pure conversions between LiteLLM calls and the core: request kwargs in, response dicts out.

LiteLLM hands ``litellm.cache`` the full keyword arguments of ``completion()`` plus its own
bookkeeping (``litellm_call_id``, ``litellm_logging_obj``, Router's ``client``, ...). The
scope keeps what LiteLLM itself would send to a provider: every documented LLM API parameter
(``ModelParamHelper.get_all_llm_api_params``) and any provider-specific one it does not own
(``is_litellm_owned_kwarg``); the core then drops transport-only keys (stream, user, timeout...).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response import (
    convert_to_model_response_object,
)
from litellm.litellm_core_utils.model_param_helper import ModelParamHelper
from litellm.types.utils import ModelResponse, TextCompletionResponse, is_litellm_owned_kwarg
from pydantic import BaseModel

from .._cache._scope import plan_request
from .._errors import ConfigurationError, SemcacheError
from .._precision._answer import ShownAnswer, shown_answers
from .._types import CacheHit
from ._litellm_tenant import API_BASE_PARAM, TENANT_PARAM, server_scope, tenant_scope

__all__ = [
    "TEXT_CALL_TYPES",
    "CallRequest",
    "entry_ref",
    "failure_detail",
    "hit_info",
    "rendered_chat",
    "served_response",
    "stored_response",
    "to_request",
]

logger = logging.getLogger("semcache_plugins")

TEXT_CALL_TYPES: tuple[str, ...] = (
    "completion",
    "acompletion",
    "text_completion",
    "atext_completion",
)
# Never part of the scope: the prompt itself, the model (scoped on its own), and per-call noise.
_NOT_SCOPE = frozenset({"messages", "prompt", "model", "parent_otel_span", "cache_key"})
# Text completions are cached as TextCompletionResponses under a scope of their own. Chat
# completions use the plain scope (no format parameter), which warmed entries and other
# adapters share: an entry in another shape is rendered from what it shows (``_answer``).
FORMAT_PARAM = "semcache_format"
_NAMESPACE_FORBIDDEN = frozenset("{}|,:*\"' \t\n")


@dataclass(frozen=True)
class CallRequest:
    """One LiteLLM call as the core sees it, plus its ``cache={...}`` controls."""

    messages: list[dict[str, Any]]
    model: str
    params: dict[str, Any]
    namespace: str | None
    controls: Mapping[str, Any]
    text: bool  # a text completion (``prompt=``), cached as a TextCompletionResponse
    stream: bool
    call_ttl: Any = None  # the top-level ``ttl=`` of ``completion()``

    def core_args(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "model": self.model,
            "params": self.params,
            "namespace": self.namespace,
        }

    @property
    def _ttl_seconds(self) -> float | None:
        """``cache={"ttl": N}``, else the top-level ``ttl=N`` (LiteLLM's order); None if unset.

        A value that is not a finite number is ignored, as LiteLLM's ``get_ttl`` does."""
        for value in (self.controls.get("ttl"), self.call_ttl):
            number = _number(value)
            if number is not None:
                return number
        return None

    @property
    def ttl(self) -> int | None:
        """Seconds (rounded up) this response is kept; None: the cache's default."""
        value = self._ttl_seconds
        return max(1, math.ceil(value)) if value is not None and value > 0 else None

    @property
    def keeps(self) -> bool:
        """False for ``ttl=0`` (or negative): LiteLLM's Redis cache keeps no such entry."""
        value = self._ttl_seconds
        return value is None or value > 0

    @property
    def max_age(self) -> float | None:
        """``cache={"s-maxage": N}``: only entries younger than N seconds are served."""
        value = _number(self.controls.get("s-maxage", self.controls.get("s-max-age")))
        return value if value is not None and value >= 0 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _namespace(value: Any) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= 128
        or _NAMESPACE_FORBIDDEN.intersection(value)
    ):
        raise ConfigurationError("cache namespace must be 1-128 characters without separators")
    return value


def _prompt_messages(prompt: Any) -> list[dict[str, Any]] | None:
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else None


def scope_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that may change the answer (see the module docstring)."""
    api_params = ModelParamHelper.get_all_llm_api_params()
    return {
        key: value
        for key, value in kwargs.items()
        if key not in _NOT_SCOPE and (key in api_params or not is_litellm_owned_kwarg(key))
    }


def to_request(
    kwargs: Mapping[str, Any], *, model: str, end_user: bool = False
) -> CallRequest | None:
    """The core's view of a call; None when it is not a cacheable chat or text completion."""
    if kwargs.get("text_completion") is True:
        return None  # text_completion() dispatching to completion(): cached one level up
    controls = kwargs.get("cache")
    controls = controls if isinstance(controls, Mapping) else {}
    messages = kwargs.get("messages")
    text = messages is None and "prompt" in kwargs
    if text:
        messages = _prompt_messages(kwargs.get("prompt"))
    if not isinstance(messages, list):
        return None
    params = {**scope_params(kwargs), **({FORMAT_PARAM: "litellm.text"} if text else {})}
    for key, value in (
        (TENANT_PARAM, tenant_scope(kwargs, end_user=end_user)),
        (API_BASE_PARAM, server_scope(kwargs)),
    ):
        if value is not None:
            params[key] = value
    return CallRequest(
        messages=messages,
        model=str(model),
        params=params,
        namespace=_namespace(controls.get("namespace")),
        controls=controls,
        text=text,
        stream=kwargs.get("stream") is True,
        call_ttl=kwargs.get("ttl"),
    )


def entry_ref(request: CallRequest, default_namespace: str) -> str:
    """The exact-tier entry id of a request: a hash, safe to log."""
    plan = plan_request(
        request.messages,
        model=request.model,
        params=request.params,
        namespace=request.namespace or default_namespace,
    )
    return plan.entry_id


def _well_formed(data: Mapping[str, Any], *, text: bool) -> bool:
    """A chat (``message``) or text (``text``) completion dict LiteLLM can rebuild."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    if text:
        return all(isinstance(c, Mapping) and isinstance(c.get("text"), str) for c in choices)
    return all(isinstance(c, Mapping) and isinstance(c.get("message"), Mapping) for c in choices)


def _rebuildable(data: Mapping[str, Any], *, text: bool) -> bool:
    """LiteLLM's own conversion of a cache hit accepts (a copy of) this dict.

    A corrupt or foreign entry whose shape LiteLLM rejects would otherwise fail the user's
    call inside LiteLLM's caching handler, after our hook has returned.
    """
    trial = copy.deepcopy(dict(data))
    try:
        if text:
            TextCompletionResponse(**trial)
        else:
            convert_to_model_response_object(
                response_object=trial, model_response_object=ModelResponse()
            )
    except Exception:
        return False
    return True


def _has_tool_calls(data: Mapping[str, Any]) -> bool:
    for choice in data["choices"]:
        message = choice.get("message") or {}
        if message.get("tool_calls") or message.get("function_call"):
            return True
    return False


def stored_response(result: Any, *, text: bool) -> tuple[dict[str, Any], bool] | None:
    """``(plain JSON dict, has tool calls)`` for a LiteLLM result, or None if not cacheable.

    The sync path passes the ``ModelResponse``; the async path its ``model_dump_json()``.
    """
    if isinstance(result, BaseModel):
        data: Any = result.model_dump(mode="json")
    elif isinstance(result, str | bytes):
        data = json.loads(result)
    else:
        data = result
    if not isinstance(data, dict) or not _well_formed(data, text=text):
        logger.debug("semcache: not storing a %s without choices", type(result).__name__)
        return None
    return data, _has_tool_calls(data)


def _tool_call(call_id: str | None, index: int, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": call_id or f"call_semcache_{index}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def rendered_chat(shown: list[ShownAnswer], hit: CacheHit, model: str) -> dict[str, Any]:
    """A chat completion dict for an entry stored in another shape (warmed, LangChain)."""
    choices = []
    for index, answer in enumerate(shown):
        calls = [
            _tool_call(call.id, number, call.name, call.arguments)
            for number, call in enumerate(answer.tool_calls)
        ]
        content = answer.content if answer.content or not calls else None
        message = {"role": "assistant", "content": content, "tool_calls": calls}
        if not calls:
            message.pop("tool_calls")
        choices.append(
            {
                "index": index,
                "finish_reason": "tool_calls" if calls else "stop",
                "message": message,
            }
        )
    return {
        "id": f"chatcmpl-semcache-{hit.entry_id}",
        "object": "chat.completion",
        "created": int(hit.created_at),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def hit_info(hit: CacheHit) -> dict[str, Any]:
    """The ``semcache`` dict of a served hit."""
    return {"tier": hit.tier, "similarity": hit.similarity, "entry_id": hit.entry_id}


def _with_stream_info(response: dict[str, Any], hit: CacheHit) -> dict[str, Any]:
    """Put the hit info in each choice's ``provider_specific_fields``: LiteLLM's stream replay
    keeps them on the first content chunk (``delta.provider_specific_fields["semcache"]``)."""
    choices = []
    for choice in response["choices"]:
        message = dict(choice["message"])
        extra = message.get("provider_specific_fields")
        message["provider_specific_fields"] = {
            **(extra if isinstance(extra, Mapping) else {}),
            "semcache": hit_info(hit),
        }
        choices.append({**choice, "message": message})
    return {**response, "choices": choices}


def served_response(
    hit: CacheHit | None, *, text: bool, model: str = "", stream: bool = False
) -> dict[str, Any] | None:
    """The dict LiteLLM turns into the response, or None to treat the hit as a miss.

    LiteLLM's ``convert_to_model_response_object`` sets every key of a cached dict that is not
    a ``ModelResponse`` field as an attribute, so ``_hidden_params`` becomes the response's
    hidden params; LiteLLM then adds ``cache_hit`` and its timing to them. A streamed replay
    carries the same dict on its first content chunk (``_with_stream_info``). Text completions
    (``TextCompletionResponse(**dict)``) do not carry it. A chat entry stored in another shape
    (a warmed answer, LangChain generations) is rendered as a chat completion.
    """
    if hit is None:
        return None
    native = isinstance(hit.response, dict) and _well_formed(hit.response, text=text)
    if not native and not text and (shown := shown_answers(hit.response)):
        response = rendered_chat(shown, hit, model)
    elif native and _rebuildable(hit.response, text=text):
        response = dict(hit.response)
    else:
        logger.debug("semcache: entry %s is not a LiteLLM completion; ignoring it", hit.entry_id)
        return None
    if not text:
        if stream:
            response = _with_stream_info(response, hit)
        response["_hidden_params"] = {
            "cache_hit": True,
            "additional_headers": {},
            "semcache": hit_info(hit),
        }
    return response


def failure_detail(exc: Exception) -> str:
    """Our errors carry no prompt text; others may, so only their type is logged."""
    if isinstance(exc, SemcacheError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__
