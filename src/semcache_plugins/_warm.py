"""Bulk loading (warming): batched embeddings and one pipelined write per batch.

A warm record is plain JSON: ``prompt`` (or ``messages``), optional ``system``, ``response``
as text or as a chat message (``{"content": ..., "tool_calls": [...]}``), ``model``, optional
``params``, ``ttl`` and ``exact_only``. Its response is stored in the adapter-neutral answer
format (``_answer``), which the LiteLLM and LangChain adapters render into their own types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

from ._answer import NEUTRAL_KEY, is_chat_message, neutral_answer
from ._errors import ConfigurationError, SerializationError
from ._flows import ReadGenerations, WriteBatch, WriteEntry, single_op, store_flow
from ._generations import plan_generation_keys
from ._scope import RequestPlan
from ._ttl import validate_ttl

if TYPE_CHECKING:
    from ._core import CacheCore

__all__ = ["WRITES_PER_ROUND_TRIP", "WarmItem", "store_many", "warm_item"]

# Redis indexes each vector while it runs the transaction: keep one round trip well under the
# socket timeout (about 1-2 ms per entry on a small machine).
WRITES_PER_ROUND_TRIP = 64


@dataclass(frozen=True)
class WarmItem:
    """One prompt/response pair to pre-load, with the scope it belongs to."""

    messages: list[dict[str, Any]]
    response: Any
    model: str
    params: Mapping[str, Any] | None = None
    ttl: float | None = None  # seconds (rounded up); 0: not stored
    exact_only: bool = False

    def __post_init__(self) -> None:
        # a bad ttl fails when the item is made (before any write), not mid-warming
        object.__setattr__(self, "ttl", validate_ttl(self.ttl))


def _messages(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = record.get("messages")
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigurationError("a record's 'system' must be a string")
    if messages is None:
        prompt = record.get("prompt")
        if not isinstance(prompt, str):
            raise ConfigurationError("each record needs 'messages' or a string 'prompt'")
        messages = [{"role": "user", "content": prompt}]
    elif not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise ConfigurationError("a record's 'messages' must be a list of message objects")
    has_system = any(m.get("role") in ("system", "developer") for m in messages)
    if system and has_system:
        raise ConfigurationError("give the system prompt in 'system' or in 'messages', not both")
    return [*([{"role": "system", "content": system}] if system else []), *map(dict, messages)]


# The undocumented way LiteLLM entries used to be warmed: now the plain chat scope.
_OLD_LITELLM_FORMAT = ("semcache_format", "litellm.chat")


def _stored_answer(response: Any) -> Any:
    """Text and chat messages become neutral answers (every adapter serves them); any other
    JSON value (a LiteLLM response dict, a value for CacheCore users) is stored as given."""
    if isinstance(response, str) or is_chat_message(response):
        return neutral_answer(response)
    if isinstance(response, Mapping) and NEUTRAL_KEY in response:
        return neutral_answer(response)
    return response


def warm_item(record: Mapping[str, Any], *, default_model: str | None = None) -> WarmItem:
    """A ``WarmItem`` from a plain JSON record (see the module docstring); its response is
    stored in the neutral answer format, so every adapter with that scope serves it."""
    model = record.get("model", default_model)
    if not isinstance(model, str) or not model.strip() or "response" not in record:
        raise ConfigurationError("each record needs 'response' and a 'model' (or --model)")
    params = record.get("params")
    if params is not None and not isinstance(params, Mapping):
        raise ConfigurationError("a record's 'params' must be an object")
    if params is not None and params.get(_OLD_LITELLM_FORMAT[0]) == _OLD_LITELLM_FORMAT[1]:
        params = {k: v for k, v in params.items() if k != _OLD_LITELLM_FORMAT[0]}
    response = _stored_answer(record["response"])
    tool_calls = isinstance(response, Mapping) and bool(response.get("tool_calls"))
    return WarmItem(
        _messages(record),
        response,
        model,
        params,
        record.get("ttl"),  # checked by WarmItem
        bool(record.get("exact_only", False)) or tool_calls,
    )


def _batches(items: Iterable[WarmItem], size: int) -> Iterator[list[WarmItem]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _vectors_for(core: CacheCore, plans: list[RequestPlan]) -> dict[str, np.ndarray | None]:
    """One batched embedding call for the semantic texts of a batch; None = too long."""
    texts = list(dict.fromkeys(plan.embed_text for plan in plans if plan.semantic))
    return dict(zip(texts, core._work.embed_texts(texts), strict=True))


def store_many(
    core: CacheCore,
    items: Iterable[WarmItem | Mapping[str, Any]],
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Store many entries (``WarmItem``s or plain records, see :func:`warm_item`); returns how
    many were written. Skipped items are counted as skips."""
    config = core.config
    written = 0
    records = [item if isinstance(item, WarmItem) else warm_item(item) for item in items]
    for chunk in _batches(records, batch_size):
        plans = [core._plan(item.messages, item.model, item.params, None) for item in chunk]
        ttls = [core.settings.ttl if item.ttl is None else int(item.ttl) for item in chunk]
        kept = [
            plan for plan, ttl in zip(plans, ttls, strict=True) if not plan.skip_reason and ttl != 0
        ]
        vectors = _vectors_for(core, kept)
        groups = tuple(plan_generation_keys(config.layout, plan) for plan in kept)
        generations = core._run(single_op(ReadGenerations(groups))) if groups else []
        generation_of = dict(zip((plan.entry_id for plan in kept), generations, strict=True))
        writes: list[WriteEntry] = []
        for item, plan, ttl in zip(chunk, plans, ttls, strict=True):
            if ttl == 0:
                core._stats.skip("ttl_zero")
                continue
            if plan.skip_reason or (plan.semantic and vectors.get(plan.embed_text) is None):
                core._stats.skip(plan.skip_reason or "too_long")
                continue
            flow = store_flow(
                config,
                plan,
                item.response,
                ttl=ttl,
                exact_only=item.exact_only,
                vector=vectors.get(plan.embed_text),
                generation=generation_of[plan.entry_id],
            )
            try:
                op = next(flow, None)
            except SerializationError:
                core._stats.skip("not_serializable")
                continue
            if isinstance(op, WriteEntry):
                writes.append(op)
        for start in range(0, len(writes), WRITES_PER_ROUND_TRIP):
            chunk_writes = tuple(writes[start : start + WRITES_PER_ROUND_TRIP])
            core._run(single_op(WriteBatch(chunk_writes)))
            core._stats.count("stores", len(chunk_writes))
            written += len(chunk_writes)
        if progress is not None:
            progress(len(chunk))
    return written
