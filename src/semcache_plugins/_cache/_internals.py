"""The narrow interface a ``CacheCore`` gives its own helper modules (bulk warming, audits, the
adapters' audit hooks), so none of them reaches into the core's private attributes.

Internal: not exported by ``semcache_plugins``; the core builds one (``CacheCore.internals``)
and passes it explicitly to the flows that need more than the public methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ._audit_run import Auditor
    from ._backend import AsyncBackend, SyncBackend
    from ._compute import ModelWork
    from ._events import EventStream
    from ._flows import Flow
    from ._scope import RequestPlan

__all__ = ["CoreInternals"]


@dataclass(frozen=True)
class CoreInternals:
    """What the core's helpers may use beyond its public methods, each named for its job."""

    # the request's plan (scope, keys, texts); namespace None: the settings' namespace
    plan: Callable[[Any, str, Mapping[str, Any] | None, str | None], RequestPlan]
    run: Callable[[Flow], Any]  # runs a sans-I/O flow on the sync driver (breaker included)
    embed_texts: Callable[[Sequence[str]], list[np.ndarray | None]]  # batched; None: too long
    events: EventStream  # where counts and skips go (``stats()`` reads the same stream)
    auditor: Auditor  # samples served semantic hits and judges them
    sync_backend: SyncBackend  # the sync Redis client (``client()``) and its L1 (``l1``)
    async_backend: AsyncBackend  # the async clients, one per event loop (``loops()``), and L1
    is_closed: Callable[[], bool]  # True once ``close()`` has begun
    work: ModelWork  # the model work: query-vector memo, embedding batcher, verifier
