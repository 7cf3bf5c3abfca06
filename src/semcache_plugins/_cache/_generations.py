"""Invalidation generations (pure): replay protection, and no store racing an invalidation.

Each invalidation bumps a counter in Redis named after the exact filter it ran with (any of
namespace hash, system hash, model hash; the others a wildcard ``-``). An entry of scope
(ns, system, model) is affected by the 7 filters built from non-empty subsets of its parts,
so its *generation* is a digest of those 7 counters. Every record carries (and signs) the
generation its answer was computed under; a lookup reads the current one in the same round
trip as the exact tier and serves only records of that generation. An answer looked up
before an invalidation and stored after it is dead on arrival, and so is an old signed
record written back verbatim.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from itertools import product
from typing import Any

from .._records import StoredRecord
from ._index import IndexLayout, namespace_hash
from ._scope import RequestPlan

__all__ = [
    "GenerationMemo",
    "generation_key",
    "generation_keys",
    "generation_pattern",
    "generation_token",
    "plan_generation_keys",
    "servable",
]

_ANY = "-"
# a namespace's hash on every lookup (``servable``): the same few namespaces again and again
_namespace_hash = lru_cache(maxsize=1024)(namespace_hash)


def generation_key(
    layout: IndexLayout, *, namespace: str | None, system: str | None, model: str | None
) -> str:
    """The counter an invalidation with these filters bumps (hashes; None = not filtered).
    Outside the index's key prefix (never indexed), named after the index."""
    return f"{layout.name}:g:{namespace or _ANY}:{system or _ANY}:{model or _ANY}"


def generation_keys(
    layout: IndexLayout, *, namespace: str, system: str, model: str
) -> tuple[str, ...]:
    """Every counter whose bump affects an entry of (namespace, system, model) hashes."""
    keys = []
    for use_ns, use_system, use_model in product((True, False), repeat=3):
        if use_ns or use_system or use_model:
            keys.append(
                generation_key(
                    layout,
                    namespace=namespace if use_ns else None,
                    system=system if use_system else None,
                    model=model if use_model else None,
                )
            )
    return tuple(keys)


def generation_pattern(index_name: str) -> str:
    """The glob matching every generation counter of an index (dropped with the index)."""
    return f"{index_name}:g:*"


def generation_token(values: Sequence[Any]) -> str:
    """The generation of a scope from its counters' values (None: never bumped)."""
    parts = [
        "0" if value is None else value.decode() if isinstance(value, bytes) else str(value)
        for value in values
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


class GenerationMemo:
    """The generation each recent lookup saw, by entry id, so the store that follows (after
    the LLM call) carries it; bounded, oldest forgotten first. A store with none reads the
    generation current at store time."""

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, entry_id: str, generation: str) -> None:
        with self._lock:
            self._seen[entry_id] = generation
            self._seen.move_to_end(entry_id)
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)

    def get(self, entry_id: str) -> str | None:
        with self._lock:
            return self._seen.get(entry_id)


def plan_generation_keys(layout: IndexLayout, plan: RequestPlan) -> tuple[str, ...]:
    """The generation counters of a request's scope (see ``_generations``)."""
    return generation_keys(
        layout,
        namespace=_namespace_hash(plan.namespace),
        system=plan.system_hash,
        model=plan.model_hash,
    )


def servable(
    record: StoredRecord | None, plan: RequestPlan, generation: str | None, now: float
) -> bool:
    """May this checked record answer this request: its scope and tags are the request's
    (so invalidation finds what is served), it is of the current generation (not invalidated
    since its answer was computed) and not past its (signed) expiry."""
    return (
        record is not None
        and record.scope == plan.scope
        and record.namespace_hash == _namespace_hash(plan.namespace)
        and record.system_hash == plan.system_hash
        and record.model_hash == plan.model_hash
        and (generation is None or record.generation == generation)
        and (record.expires_at is None or now < record.expires_at)
    )
