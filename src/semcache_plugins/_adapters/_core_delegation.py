"""What both adapters hand straight to their core: ``delete``, ``adelete``, ``stats``, ``close``.

Written once as a mixin; each adapter keeps its own async close under its framework's name
(LiteLLM ``disconnect``, LangChain ``aclose``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._cache._core import CacheCore

__all__ = ["CoreDelegation"]


class _OnCore(Protocol):
    """An adapter over a core (an attribute or a property ``core``), which may own it."""

    _owns_core: bool

    @property
    def core(self) -> CacheCore: ...


class CoreDelegation:
    """``delete``/``adelete``/``stats``/``close`` of an adapter, delegated to its core."""

    def delete(self: _OnCore, entry_id: str) -> bool:
        """Remove one cached answer by the id a hit reports (LiteLLM:
        ``response._hidden_params["semcache"]["entry_id"]``, LangChain:
        ``message.response_metadata["semcache"]["entry_id"]``); whether it existed."""
        return self.core.delete(entry_id)

    async def adelete(self: _OnCore, entry_id: str) -> bool:
        """Async :meth:`delete`."""
        return await self.core.adelete(entry_id)

    def stats(self: _OnCore) -> dict[str, object]:
        """The core's counters (hits per tier, misses, stores, latency percentiles, ...)."""
        return self.core.stats()

    def close(self: _OnCore) -> None:
        """Close the core's connections if this cache created the core."""
        if self._owns_core:
            self.core.close()
