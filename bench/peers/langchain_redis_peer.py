"""LangChain's ``langchain_redis.RedisSemanticCache`` as a benchmark peer.

It is a thin layer over RedisVL's ``SemanticCache``: the prompt vector is searched with a
``VectorRangeQuery`` (num_results=1) and the single nearest entry is then filtered on
``llm_string`` in Python. Our MiniLM plugs in as a LangChain ``Embeddings``.
"""

from __future__ import annotations

import inspect
import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

import redis
from langchain_core.embeddings import Embeddings
from langchain_core.load import dumps, loads
from langchain_core.outputs import Generation
from langchain_redis import RedisSemanticCache

from bench.peers.base import Entry, SharedEmbedder

__all__ = ["LangChainRedisPeer", "SharedEmbeddings"]

#: What LangChain passes as ``llm_string`` (the model and its parameters); fixed here.
LLM_STRING = "bench-llm"

#: langchain_redis/cache.py:397 ``distance_threshold: float = 0.2``, RedisVL COSINE units
#: (1 - cosine similarity, 0..2), read from the installed signature.
_PARAMETERS = inspect.signature(RedisSemanticCache.__init__).parameters
DEFAULT_DISTANCE = float(_PARAMETERS["distance_threshold"].default)


class SharedEmbeddings(Embeddings):
    """The shared MiniLM as a LangChain ``Embeddings``."""

    def __init__(self, shared: SharedEmbedder) -> None:
        self.shared = shared

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.shared.embed_many(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.shared.embed(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self.shared.aembed_many(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await self.shared.aembed(text)


def _answer(hit: dict[str, Any]) -> str | None:
    """The text of the first cached ``Generation``, decoded as ``lookup`` does."""
    generations = [loads(g, allowed_objects="core") for g in json.loads(hit["response"])]
    return str(generations[0].text) if generations else None


class LangChainRedisPeer:
    """``langchain_redis.RedisSemanticCache`` (0.2.6) at its default ``distance_threshold``."""

    name = "langchain-redis"
    default_similarity = 1.0 - DEFAULT_DISTANCE
    notes = (
        f"langchain-redis RedisSemanticCache, default distance_threshold={DEFAULT_DISTANCE} "
        f"(langchain_redis/cache.py:397) = cosine >= {1.0 - DEFAULT_DISTANCE:.2f}; "
        "check=lookup(prompt, llm_string), acheck=alookup: RedisVL async search (redis.asyncio) "
        "but the embedding runs in a thread (EmbeddingsVectorizer.aembed = asyncio.to_thread); "
        "lookup fetches only the 1 nearest entry then filters llm_string in Python, and entry ids "
        "hash the prompt only (same prompt under two llm_strings overwrites); aupdate embeds "
        "synchronously on the event loop; fill=RedisVL SemanticCache.store(vector=) one entry at "
        "a time (no batch API), serialized as update() does; nearest=RedisVL "
        "check(vector, distance_threshold=2.0)."
    )

    def __init__(self, redis_url: str, embedder: SharedEmbedder) -> None:
        self._shared = embedder
        self._index = f"bench-lc-{uuid.uuid4().hex[:12]}"
        self._client = redis.Redis.from_url(redis_url)
        self._cache = RedisSemanticCache(
            embeddings=SharedEmbeddings(embedder), redis_client=self._client, name=self._index
        )
        #: The LangChain cache itself, for ``set_llm_cache`` (used by bench/peers_e2e.py).
        self.llm_cache: RedisSemanticCache = self._cache

    def fill(self, entries: Sequence[Entry]) -> None:
        """RedisVL ``store`` with the precomputed vector: ``update`` minus the embedding."""
        for entry in entries:
            self._cache.cache.store(
                prompt=entry.prompt,
                response=json.dumps([dumps(Generation(text=entry.response))]),
                vector=[float(x) for x in entry.vector],
                metadata={"llm_string": LLM_STRING},
            )

    def store(self, prompt: str, response: str) -> None:
        """LangChain's ``update``, embedding included."""
        self._cache.update(prompt, LLM_STRING, [Generation(text=response)])

    def check(self, prompt: str) -> str | None:
        """LangChain's ``lookup`` at the default threshold."""
        generations = self._cache.lookup(prompt, LLM_STRING)
        return str(generations[0].text) if generations else None

    async def acheck(self, prompt: str) -> str | None:
        """LangChain's ``alookup``."""
        generations = await self._cache.alookup(prompt, LLM_STRING)
        return str(generations[0].text) if generations else None

    def nearest(self, prompt: str) -> tuple[str | None, float]:
        """The underlying RedisVL ``check`` with the range opened to the whole cosine scale."""
        hits = self._cache.cache.check(
            vector=self._shared.embed(prompt), num_results=1, distance_threshold=2.0
        )
        if not hits:
            return None, 0.0
        return _answer(hits[0]), 1.0 - float(hits[0]["vector_distance"])

    def close(self) -> None:
        """Drop the index with its documents, any stray key under its prefix, and the client."""
        self._cache.cache.delete()
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self._index) + ":*"
        stray = list(self._client.scan_iter(match=pattern, count=1000))
        if stray:
            self._client.delete(*stray)
        self._cache.cache.disconnect()
        self._client.close()
