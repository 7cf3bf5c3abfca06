"""RedisVL's ``SemanticCache``: the reference every figure is a ratio to."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from redisvl.extensions.cache.llm import SemanticCache
from redisvl.extensions.cache.llm.schema import CacheEntry
from redisvl.utils.vectorize import CustomTextVectorizer

from .base import Entry, SharedEmbedder

__all__ = ["RedisVLPeer"]

# redisvl/extensions/cache/llm/semantic.py: SemanticCache(distance_threshold=0.1), cosine distance.
DEFAULT_DISTANCE = 0.1


class RedisVLPeer:
    """``SemanticCache`` with our MiniLM plugged in as a ``CustomTextVectorizer``."""

    default_similarity = 1.0 - DEFAULT_DISTANCE
    notes = (
        "check/acheck (native async client); VECTOR_RANGE query at distance 0.1; "
        "fill via SemanticCache.index.load with precomputed vectors"
    )

    def __init__(self, redis_url: str, shared: SharedEmbedder, *, dtype: str = "float32") -> None:
        self.name = "RedisVL SemanticCache" + ("" if dtype == "float32" else f" ({dtype})")
        self.dtype = dtype
        vectorizer = CustomTextVectorizer(
            embed=shared.embed,
            embed_many=shared.embed_many,
            aembed=shared.aembed,
            aembed_many=shared.aembed_many,
            dtype=dtype,
        )
        self.cache = SemanticCache(
            name=f"bench-redisvl-{uuid.uuid4().hex[:8]}",
            distance_threshold=DEFAULT_DISTANCE,
            vectorizer=vectorizer,
            redis_url=redis_url,
        )

    def fill(self, entries: Sequence[Entry]) -> None:
        rows = [
            CacheEntry(prompt=e.prompt, response=e.response, prompt_vector=e.vector.tolist())
            for e in entries
        ]
        for start in range(0, len(rows), 1000):
            self.cache.index.load(
                [row.to_dict(self.dtype) for row in rows[start : start + 1000]],
                id_field="entry_id",
            )

    def store(self, prompt: str, response: str) -> None:
        self.cache.store(prompt, response)

    def check(self, prompt: str) -> str | None:
        hits = self.cache.check(prompt=prompt)
        return str(hits[0]["response"]) if hits else None

    async def acheck(self, prompt: str) -> str | None:
        hits = await self.cache.acheck(prompt=prompt)
        return str(hits[0]["response"]) if hits else None

    def nearest(self, prompt: str) -> tuple[str | None, float]:
        hits = self.cache.check(prompt=prompt, distance_threshold=2.0)
        if not hits:
            return None, 0.0
        return str(hits[0]["response"]), 1.0 - float(hits[0]["vector_distance"])

    def close(self) -> None:
        self.cache.index.delete(drop=True)
        self.cache.disconnect()
