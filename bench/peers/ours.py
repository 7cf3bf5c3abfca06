"""semcache-plugins itself, driven through ``CacheCore`` (what both adapters call)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from bench.core_latency import MODEL, PARAMS, ask, drop_cache, store_seeded
from semcache_plugins import CacheCore, CacheHit

from .base import Entry, SharedEmbedder

__all__ = ["OursPeer"]


class OursPeer:
    """Our cache at its defaults (guards on), or with ``guards=False``; exact tier always on."""

    default_similarity: float
    notes: str

    def __init__(
        self, redis_url: str, shared: SharedEmbedder, *, guards: bool = True, **settings: Any
    ) -> None:
        prefix = f"bench-ours-{uuid.uuid4().hex[:8]}"
        self.name = "semcache-plugins" + ("" if guards else " (guards off)")
        self.core = CacheCore(
            redis_url=redis_url,
            index_prefix=prefix,
            embedder=shared.embedder,
            guards=guards,
            **settings,
        )
        # Same index and guards, no threshold: what it would serve at any threshold t is this
        # answer if its similarity >= t (candidates are tried nearest first), so one lookup
        # per query gives the whole curve.
        self.wide = CacheCore(
            redis_url=redis_url,
            index_prefix=prefix,
            embedder=shared.embedder,
            guards=guards,
            similarity_threshold=0.0,
        )
        self.default_similarity = self.core.settings.similarity_threshold
        self.notes = (
            "CacheCore.lookup/alookup; exact tier skips the embedding; async lookups "
            "micro-batch their embeddings; scope = system prompt + model + params; embeddings "
            "by its own default Embedder (the peers run fastembed's stock session)"
        )

    def fill(self, entries: Sequence[Entry]) -> None:
        store_seeded(self.core, [(e.prompt, e.response, e.vector) for e in entries])
        self.core.internals.work.vectors.clear()  # lookups must pay for their own embedding

    def store(self, prompt: str, response: str) -> None:
        self.core.store(ask(prompt), response, MODEL, PARAMS)

    def lookup(self, prompt: str) -> CacheHit | None:
        return self.core.lookup(ask(prompt), MODEL, PARAMS)

    def check(self, prompt: str) -> str | None:
        hit = self.lookup(prompt)
        return None if hit is None else str(hit.response)

    async def acheck(self, prompt: str) -> str | None:
        hit = await self.core.alookup(ask(prompt), MODEL, PARAMS)
        return None if hit is None else str(hit.response)

    def nearest_hit(self, prompt: str) -> CacheHit | None:
        """What it serves with the threshold wide open (guards as configured)."""
        return self.wide.lookup(ask(prompt), MODEL, PARAMS)

    def nearest(self, prompt: str) -> tuple[str | None, float]:
        hit = self.nearest_hit(prompt)
        return (None, 0.0) if hit is None else (str(hit.response), hit.similarity)

    def close(self) -> None:
        self.core.clear()
        drop_cache(self.core)
        self.wide.close()
        self.core.close()
