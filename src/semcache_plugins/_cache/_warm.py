"""Bulk loading (warming): batched embeddings and pipelined writes, overlapped with the next batch.

Per batch: one embedding call, one round trip for the generations of the scopes it touches
(each scope's counters read once, not once per entry), then its writes: transactions sized to
end within a tenth of the socket timeout (each entry's DEL, HSET and EXPIRE in the same
MULTI/EXEC, as a single store), run by one writer thread in submission order while this
thread prepares the next batch. Redis indexes each vector while it runs the transaction, so
a 2-core machine spends that time on the client's next batch instead of waiting.

A warm record is plain JSON: ``prompt`` (or ``messages``), optional ``system``, ``response``
as text or as a chat message (``{"content": ..., "tool_calls": [...]}``), ``model``, optional
``params``, ``ttl`` and ``exact_only``. Its response is stored in the adapter-neutral answer
format (``_answer``), which the LiteLLM and LangChain adapters render into their own types.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import ConfigurationError, SerializationError
from .._precision._answer import NEUTRAL_KEY, is_chat_message, neutral_answer
from .._ttl import validate_ttl
from ._flows import ReadGenerations, WriteBatch, WriteEntry, single_op, store_flow
from ._generations import plan_generation_keys
from ._index import IndexLayout
from ._scope import RequestPlan

if TYPE_CHECKING:
    from ._core import CacheCore

__all__ = ["WRITES_PER_ROUND_TRIP", "WarmItem", "store_many", "warm_item"]

# Redis indexes each vector while it runs the transaction, so one transaction must end well
# within the socket timeout: it starts at this many entries, then is sized from the measured
# seconds per entry to a tenth of the timeout (0.4-1 ms per entry at 10k-100k entries with
# the default HNSW parameters, 10x that on a loaded machine), between the bounds below.
WRITES_PER_ROUND_TRIP = 64
_WRITES_BOUNDS = (8, 256)
_TIMEOUT_SHARE = 0.1


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
    return dict(zip(texts, core.internals.embed_texts(texts), strict=True))


def _generations_for(
    core: CacheCore, layout: IndexLayout, plans: list[RequestPlan]
) -> dict[str, str]:
    """Each plan's current generation (by entry id); one MGET per distinct set of counters."""
    keys_of = {plan.entry_id: plan_generation_keys(layout, plan) for plan in plans}
    groups = tuple(dict.fromkeys(keys_of.values()))
    tokens = core.internals.run(single_op(ReadGenerations(groups))) if groups else []
    token_of = dict(zip(groups, tokens, strict=True))
    return {entry_id: token_of[keys] for entry_id, keys in keys_of.items()}


class _TransactionSize:
    """How many entries the next transaction takes (see ``WRITES_PER_ROUND_TRIP``)."""

    def __init__(self, socket_timeout: float) -> None:
        self.size = WRITES_PER_ROUND_TRIP
        self._budget = _TIMEOUT_SHARE * socket_timeout
        self._per_entry = 0.0  # seconds, EWMA of the transactions run so far

    def record(self, seconds: float, entries: int) -> None:
        sample = seconds / entries
        self._per_entry = sample if not self._per_entry else 0.7 * self._per_entry + 0.3 * sample
        low, high = _WRITES_BOUNDS
        self.size = max(low, min(high, int(self._budget / max(self._per_entry, 1e-6))))


def _write_all(core: CacheCore, writes: list[WriteEntry], size: _TransactionSize) -> int:
    """Run ``writes`` as transactions of ``size.size`` entries; returns how many."""
    start = 0
    while start < len(writes):
        chunk_writes = tuple(writes[start : start + size.size])
        began = time.perf_counter()
        core.internals.run(single_op(WriteBatch(chunk_writes)))
        size.record(time.perf_counter() - began, len(chunk_writes))
        core.internals.events.count("stores", len(chunk_writes))
        start += len(chunk_writes)
    return len(writes)


def _prepare(core: CacheCore, chunk: list[WarmItem]) -> list[WriteEntry]:
    """The writes of one batch (skips counted): plans, vectors, generations, records."""
    config = core.config
    plans = [core.internals.plan(item.messages, item.model, item.params, None) for item in chunk]
    ttls = [core.settings.ttl if item.ttl is None else int(item.ttl) for item in chunk]
    kept = [
        plan for plan, ttl in zip(plans, ttls, strict=True) if not plan.skip_reason and ttl != 0
    ]
    vectors = _vectors_for(core, kept)
    generation_of = _generations_for(core, config.layout, kept)
    writes: list[WriteEntry] = []
    for item, plan, ttl in zip(chunk, plans, ttls, strict=True):
        if ttl == 0:
            core.internals.events.skip("ttl_zero")
            continue
        if plan.skip_reason or (plan.semantic and vectors.get(plan.embed_text) is None):
            core.internals.events.skip(plan.skip_reason or "too_long")
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
            core.internals.events.skip("not_serializable")
            continue
        if isinstance(op, WriteEntry):
            writes.append(op)
    return writes


def store_many(
    core: CacheCore,
    items: Iterable[WarmItem | Mapping[str, Any]],
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Store many entries (``WarmItem``s or plain records, see :func:`warm_item`); returns how
    many were written. Skipped items are counted as skips.

    Every record is checked before anything is written. A failed write stops the warming
    with its error once the writes already sent have finished (none is left running)."""
    records = [item if isinstance(item, WarmItem) else warm_item(item) for item in items]
    written = 0
    pending: tuple[Future[int], int] | None = None  # the previous batch's writes, its size

    def finish(job: tuple[Future[int], int]) -> None:
        nonlocal written
        written += job[0].result()
        if progress is not None:
            progress(job[1])

    size = _TransactionSize(core.settings.socket_timeout)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="semcache-warm") as writer:
        try:
            for chunk in _batches(records, batch_size):
                writes = _prepare(core, chunk)  # while the previous batch is written
                if pending is not None:
                    finish(pending)  # its error stops here: nothing more is sent
                pending = (writer.submit(_write_all, core, writes, size), len(chunk))
            if pending is not None:
                finish(pending)
        except BaseException:
            if pending is not None:  # let the batch in flight end before reporting
                pending[0].exception()
            raise
    return written
