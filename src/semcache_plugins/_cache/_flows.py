"""Lookup, store and invalidation as sans-I/O generators.

Each flow yields small operation objects and receives their results. ``CacheCore`` runs a
flow with a sync driver (redis.Redis, embedding inline) or an async driver (redis.asyncio,
embedding in a thread): the decisions live here once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import ConfigurationError, SerializationError
from .._precision._answer import answers_agree  # noqa: F401  (tests import it from here)
from .._precision._audit import demoted_ids
from .._precision._consensus import close_rows, serving_order
from .._precision._guards import DEFAULT_SIMILARITY_THRESHOLD
from .._precision._notation import notation_differs
from .._precision._verifier import served_floor
from .._records import StoredRecord, encode_response, record_mapping, vector_digest
from .._ttl import validate_max_age
from .._types import CacheHit
from ._flow_config import FlowConfig
from ._flow_memo import decoded, exact_read, knn_args
from ._generations import generation_key, plan_generation_keys, servable
from ._index import (
    KNN_CANDIDATES,
    count_pattern,
    entry_filter,
    hybrid_policy,
    ids_command,
    namespace_hash,
)
from ._scope import RequestPlan, normalize_text

__all__ = [
    "BumpGeneration",
    "DeleteKeys",
    "DeleteMatching",
    "EmbedQuery",
    "FlowConfig",
    "GuardCheck",
    "LookupResult",
    "Op",
    "ReadEntries",
    "ReadEntry",
    "ReadGenerations",
    "Search",
    "WriteBatch",
    "WriteEntry",
    "invalidate_flow",
    "lookup_flow",
    "single_op",
    "store_flow",
]

logger = logging.getLogger("semcache_plugins")


@dataclass(frozen=True)
class ReadEntry:
    """HMGET one key's record, PFCOUNT ``count_keys``, MGET ``generation_keys``: one round
    trip; result: (fields or None if absent, the counts, generation token or None)."""

    key: str
    count_keys: tuple[str, ...] = ()
    generation_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadEntries:
    """HMGET the record fields (+ vector) of several keys in one round trip; result: list."""

    keys: tuple[str, ...]
    with_vector: bool = False


@dataclass(frozen=True)
class ReadGenerations:
    """MGET each group of generation keys, in one round trip; result: list of tokens."""

    groups: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class BumpGeneration:
    """INCR an invalidation's generation counter (never expires); result: its new value."""

    key: str


@dataclass(frozen=True)
class EmbedQuery:
    """Embed one text; result: float32 vector, or None when it exceeds the model's max tokens."""

    text: str


@dataclass(frozen=True)
class Search:
    """Run ``FT.SEARCH`` with these arguments; result: its documents as dicts."""

    args: tuple[Any, ...]


@dataclass(frozen=True)
class GuardCheck:
    """Run the precision guards; result: bool (may the cached text answer the query)."""

    query: str
    cached: str
    similarity: float
    threshold: float = DEFAULT_SIMILARITY_THRESHOLD  # what differing template parts must reach
    verify: bool = False  # also ask the learned verifier (``_verifier``)


@dataclass(frozen=True)
class WriteEntry:
    """Replace a hash atomically and set its expiry (None = no expiry)."""

    key: str
    mapping: dict[str, bytes | str]
    ttl: int | None
    count_keys: tuple[str, ...] = ()  # HyperLogLogs to add the key to (expiring with it)


@dataclass(frozen=True)
class WriteBatch:
    """Several writes in one round trip (bulk warming)."""

    writes: tuple[WriteEntry, ...]


@dataclass(frozen=True)
class DeleteKeys:
    """Delete keys; result: how many existed."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class DeleteMatching:
    """Delete the keys matching a glob pattern (found by SCAN); result: how many."""

    pattern: str


Op = (
    ReadEntry | ReadEntries | ReadGenerations | BumpGeneration | EmbedQuery | Search
    | GuardCheck | WriteEntry | WriteBatch | DeleteKeys | DeleteMatching
)  # fmt: skip
Flow = Generator[Op, Any, Any]


@dataclass(frozen=True)
class LookupResult:
    """The outcome of one lookup: the hit (or None), its stats counter, and the query vector."""

    hit: CacheHit | None
    outcome: str  # hits_exact | hits_semantic | misses | skipped
    vector: np.ndarray | None = None


def _read(config: FlowConfig, fields: dict[str, Any], entry_id: str) -> StoredRecord | None:
    try:
        return decoded(config.memo, fields, entry_id=entry_id, signing_key=config.signing_key)
    except SerializationError as exc:
        logger.warning("semcache: ignoring stored entry: %s", exc)
        return None


def _in_scope(
    config: FlowConfig,
    plan: RequestPlan,
    close: list[tuple[float, str]],
    found: list[dict[str, Any] | None],
    generation: str | None = None,
    now: float = 0.0,
    semantic_tool_calls: bool = False,
) -> list[tuple[float, StoredRecord]]:
    """The records read back for ``close`` that are ``servable`` (tool calls if allowed)."""
    candidates = []
    for (similarity, key), fields in zip(close, found, strict=True):
        record = None if fields is None else _read(config, fields, key.rsplit(":", 1)[-1])
        if record is None or (record.has_tool_calls and not semantic_tool_calls):
            continue
        if servable(record, plan, generation, now):
            candidates.append((similarity, record))
    return candidates


def _cached_tail(plan: RequestPlan, prompt: str) -> str:
    """The part of a cached prompt that the guards compare with ``plan.embed_text``: a long
    text's tail (its context matched exactly through the scope), else the whole prompt."""
    if plan.tail is None or not plan.text.endswith(plan.tail):
        return prompt
    context = plan.text[: len(plan.text) - len(plan.tail)]
    return prompt[len(context) :].strip() if prompt.startswith(context) else prompt


def lookup_flow(
    config: FlowConfig,
    plan: RequestPlan,
    *,
    max_age: float | None = None,
    semantic_tool_calls: bool = False,
    now: float | None = None,
) -> Generator[Op, Any, LookupResult]:
    """Exact tier by key, then KNN with the scope pre-filter, threshold and guards."""
    now = time.time() if now is None else now
    min_created = None if max_age is None else now - validate_max_age(max_age)
    layout = config.layout
    fields, sizes, generation = yield exact_read(config.memo, layout, plan)
    if config.generations is not None and generation is not None:
        config.generations.remember(plan.entry_id, generation)  # for the store that follows
    if fields is not None:
        record = _read(config, fields, plan.entry_id)
        if (
            record is not None
            and servable(record, plan, generation, now)
            and (min_created is None or record.created_at >= min_created)
        ):
            hit = CacheHit(
                record.response, "exact", 1.0, record.prompt, plan.entry_id, record.created_at
            )
            return LookupResult(hit, "hits_exact")
    if not plan.semantic:
        return LookupResult(None, "misses")
    vector = yield EmbedQuery(plan.embed_text)
    if vector is None:
        return LookupResult(None, "skipped")
    # entry counts cannot tell how many pass a max_age filter: leave that to RediSearch
    policy = hybrid_policy(*sizes) if sizes and min_created is None else None
    wide = config.consensus.neighbours if config.guards and config.consensus else KNN_CANDIDATES
    vector_bytes, exclude = layout.vector_bytes(vector), not semantic_tool_calls
    rows = yield Search(
        knn_args(config.memo, layout, scope=plan.scope, vector=vector_bytes,
                 min_created=min_created, exclude_tool_calls=exclude, policy=policy,
                 candidates=wide)
    )  # fmt: skip
    close = close_rows(  # a miss (the usual case) stops here: no records read
        rows,
        threshold=served_floor(config.threshold, config.verifier_floor),
        agreement_margin=config.agreement_margin,
        guards=config.guards,
        policy=config.consensus,
    )
    if not close:
        return LookupResult(None, "misses", vector)
    found = yield ReadEntries(tuple(key for _, key in close), config.signing_key is not None)
    candidates = _in_scope(config, plan, close, found, generation, now, semantic_tool_calls)
    verifying = config.verifier_floor is not None  # the learned verifier judges each candidate
    order = serving_order(
        candidates,
        threshold=served_floor(config.threshold, config.verifier_floor),
        agreement_margin=config.agreement_margin,
        guards=config.guards,
        policy=config.consensus,
    )
    for similarity, record in (candidates[index] for index in order):
        if record.entry_id in demoted_ids(close, found):
            continue  # an audit demoted it: it may still veto a neighbour, never answer
        if notation_differs(plan.prompt, record.prompt):
            continue  # "2³" vs "23", "H₂O" vs "H2O", re-indented code: the same once normalized
        cached_text = _cached_tail(plan, normalize_text(record.prompt))
        if config.guards and not (
            yield GuardCheck(plan.embed_text, cached_text, similarity, config.threshold, verifying)
        ):
            continue
        hit = CacheHit(
            record.response,
            "semantic",
            min(similarity, 1.0),
            record.prompt,
            record.entry_id,
            record.created_at,
        )
        return LookupResult(hit, "hits_semantic", vector)
    return LookupResult(None, "misses", vector)


def store_flow(
    config: FlowConfig,
    plan: RequestPlan,
    response: Any,
    *,
    ttl: int | None,
    exact_only: bool = False,
    vector: np.ndarray | None = None,
    now: float | None = None,
    generation: str | None = None,
) -> Generator[Op, Any, str | None]:
    """Write one entry (key + vector in one hash): its id, or None if not stored (``ttl=0``).
    It carries the generation its lookup saw (given, else the memo's, else the current one).
    A text the model cannot embed is written without a vector: an exact repeat still hits."""
    if ttl is not None and (type(ttl) is not int or ttl < 0):
        raise ConfigurationError(f"store_flow needs whole seconds >= 0 or None, not {ttl!r}")
    if ttl == 0:
        return None
    try:
        payload = encode_response(response, max_bytes=config.max_response_bytes)
    except SerializationError as exc:
        if "max_response_bytes" in str(exc):
            logger.debug("semcache: not storing %s: %s", plan.entry_id, exc)
            return None
        raise
    layout = config.layout
    if generation is None and config.generations is not None:
        generation = config.generations.get(plan.entry_id)
    if generation is None:
        generation = (yield ReadGenerations((plan_generation_keys(layout, plan),)))[0]
    if plan.semantic and vector is None:
        vector = yield EmbedQuery(plan.embed_text)  # None (too long): stored for the exact tier
    created_at = time.time() if now is None else now
    vector_bytes = layout.vector_bytes(vector) if plan.semantic and vector is not None else None
    fields = {
        "scope": plan.scope,
        "ns": namespace_hash(plan.namespace),
        "namespace": plan.namespace,
        "system": plan.system_hash,
        "model": plan.model_hash,
        "version": layout.version,
        "tools": "1" if exact_only else "0",
        "created_at": f"{created_at:.6f}",
        "expires_at": "" if ttl is None else f"{created_at + ttl:.6f}",
        "gen": str(generation),
        "vec": vector_digest(vector_bytes),
        "prompt": plan.prompt,  # as sent: checked against queries on KNN hits
        "payload": payload,
    }
    mapping = record_mapping(fields, plan.entry_id, config.signing_key, vector_bytes)
    counts = (layout.count_key(plan.scope), layout.count_key()) if vector_bytes else ()
    yield WriteEntry(layout.key(plan.entry_id), mapping, ttl, counts)
    return plan.entry_id


def invalidate_flow(
    config: FlowConfig,
    *,
    namespace: str | None = None,
    system: str | None = None,
    model: str | None = None,
) -> Generator[Op, Any, int]:
    """Delete every entry of this index that matches the given scope parts (``namespace`` raw,
    the others hashes); returns the count. The filter's generation is bumped first: no
    matching entry is served after, even one stored later for an earlier lookup. The entry
    counts of the index restart from zero: until a scope has grown again, RediSearch picks
    its KNN strategy itself."""
    if namespace is None and system is None and model is None:
        raise ConfigurationError("invalidation needs a filter")
    ns = None if namespace is None else namespace_hash(namespace)
    yield BumpGeneration(generation_key(config.layout, namespace=ns, system=system, model=model))
    scope = entry_filter(config.layout, namespace=namespace, system=system, model=model)
    query = Search(ids_command(config.layout, scope))
    removed = 0
    while True:
        found = yield query
        keys = tuple(str(item["id"]) for item in found)
        if not keys:
            break
        removed += int((yield DeleteKeys(keys)))
    if removed:
        yield DeleteMatching(count_pattern(config.layout.name))
    return removed


def single_op(op: Op) -> Generator[Op, Any, Any]:
    """A flow of one operation (for bulk writes issued outside the other flows)."""
    return (yield op)
