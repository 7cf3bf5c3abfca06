"""Bulk loading (warming): batched embeddings and one pipelined write per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

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


def warm_item(record: Mapping[str, Any], *, default_model: str | None = None) -> WarmItem:
    """A ``WarmItem`` from a JSON record: ``messages`` or ``prompt`` (+ optional ``system``)."""
    messages = record.get("messages")
    if messages is None:
        prompt = record.get("prompt")
        if not isinstance(prompt, str):
            raise ConfigurationError("each record needs 'messages' or a string 'prompt'")
        system = record.get("system")
        messages = [
            *([{"role": "system", "content": system}] if system else []),
            {"role": "user", "content": prompt},
        ]
    model = record.get("model", default_model)
    if not isinstance(model, str) or "response" not in record:
        raise ConfigurationError("each record needs 'response' and a 'model' (or --model)")
    return WarmItem(
        messages,
        record["response"],
        model,
        record.get("params"),
        record.get("ttl"),
        bool(record.get("exact_only", False)),
    )


def _batches(items: Iterable[WarmItem], size: int) -> Iterator[list[WarmItem]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _vectors_for(core: CacheCore, plans: list[RequestPlan]) -> dict[str, np.ndarray | None]:
    """One batched embedding call for the semantic texts of a batch; None = too long."""
    texts = list(dict.fromkeys(plan.text for plan in plans if plan.semantic))
    return dict(zip(texts, core._work.embed_texts(texts), strict=True))


def store_many(
    core: CacheCore,
    items: Iterable[WarmItem],
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Store many entries; returns how many were written. Skipped items are counted as skips."""
    config = core.config
    written = 0
    for chunk in _batches(items, batch_size):
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
            if plan.skip_reason or (plan.semantic and vectors.get(plan.text) is None):
                core._stats.skip(plan.skip_reason or "too_long")
                continue
            flow = store_flow(
                config,
                plan,
                item.response,
                ttl=ttl,
                exact_only=item.exact_only,
                vector=vectors.get(plan.text),
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
