"""LiteLLM's own ``redis-semantic`` cache (``litellm.caching.redis_semantic_cache``) as a peer.

Its prompt embedding always goes through ``litellm.embedding``/``litellm.aembedding``; the shared
MiniLM is registered as a LiteLLM custom provider (``litellm.custom_provider_map``) and the cache's
``embedding_model`` names it, so every vector goes through LiteLLM's real embedding path.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import httpx  # noqa: E402
import litellm  # noqa: E402
import redis  # noqa: E402
from litellm.caching.caching import Cache  # noqa: E402
from litellm.caching.redis_semantic_cache import RedisSemanticCache  # noqa: E402
from litellm.llms.custom_llm import CustomLLM  # noqa: E402
from litellm.types.caching import LiteLLMCacheType  # noqa: E402
from litellm.types.utils import EmbeddingResponse  # noqa: E402
from redisvl.query.filter import Tag  # noqa: E402

from bench.peers.base import Entry, SharedEmbedder  # noqa: E402

__all__ = [
    "EMBEDDING_MODEL",
    "LiteLLMRedisSemanticPeer",
    "SharedEmbeddingHandler",
    "register_provider",
]

PROVIDER = "semcachebench"
EMBEDDING_MODEL = f"{PROVIDER}/minilm"
#: The completion model the cached calls were made with: part of LiteLLM's cache key.
MODEL = "openai/bench-model"
#: ``similarity_threshold`` has no default (litellm/caching/redis_semantic_cache.py:106 raises
#: on None); 0.8 is LiteLLM's docs example value (docs/my-website/docs/caching/all_caches.md).
DOCS_SIMILARITY = 0.8


class SharedEmbeddingHandler(CustomLLM):
    """A LiteLLM custom provider whose ``embedding``/``aembedding`` call the shared MiniLM."""

    def __init__(self, shared: SharedEmbedder) -> None:
        super().__init__()
        self.shared = shared
        self.calls = 0

    def _texts(self, input: list[Any] | str) -> list[str]:
        """Count the call; LiteLLM passes one string or a list of inputs."""
        self.calls += 1
        return [input] if isinstance(input, str) else [str(t) for t in input]

    @staticmethod
    def _fill(model: str, response: EmbeddingResponse, vectors: list[list[float]]) -> None:
        response.data = [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ]
        response.model = model

    def embedding(
        self,
        model: str,
        input: list[Any],
        model_response: EmbeddingResponse,
        print_verbose: Callable[..., Any],
        logging_obj: Any,
        optional_params: dict[str, Any],
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        litellm_params: Any = None,
    ) -> EmbeddingResponse:
        self._fill(model, model_response, self.shared.embed_many(self._texts(input)))
        return model_response

    async def aembedding(
        self,
        model: str,
        input: list[Any],
        model_response: EmbeddingResponse,
        print_verbose: Callable[..., Any],
        logging_obj: Any,
        optional_params: dict[str, Any],
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109 (CustomLLM's signature)
        litellm_params: Any = None,
    ) -> EmbeddingResponse:
        self._fill(model, model_response, await self.shared.aembed_many(self._texts(input)))
        return model_response


def register_provider(shared: SharedEmbedder) -> SharedEmbeddingHandler:
    """Register the provider once per process; a later peer points it at its own embedder."""
    for item in litellm.custom_provider_map:
        handler = item["custom_handler"]
        if item["provider"] == PROVIDER and isinstance(handler, SharedEmbeddingHandler):
            handler.shared = shared
            return handler
    handler = SharedEmbeddingHandler(shared)
    litellm.custom_provider_map.append({"provider": PROVIDER, "custom_handler": handler})
    return handler


def _messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def _answer(cached: object) -> str | None:
    """``litellm.Cache`` stores ``{"timestamp", "response"}``; the answer is ``response``."""
    if isinstance(cached, dict) and cached.get("response") is not None:
        return str(cached["response"])
    return None


class LiteLLMRedisSemanticPeer:
    """LiteLLM ``RedisSemanticCache`` called the way ``litellm.Cache`` calls it."""

    name = "litellm-redis-semantic"
    default_similarity = DOCS_SIMILARITY
    notes = (
        "LiteLLM RedisSemanticCache (RedisVL SemanticCache underneath); similarity_threshold has "
        f"no default, {DOCS_SIMILARITY} from LiteLLM's docs example (distance = 1 - similarity); "
        "embedding via litellm.embedding/aembedding to a custom provider; check/acheck = "
        "get_cache/async_get_cache with litellm.Cache's key (model-scoped, prompt excluded) and "
        "messages; async: redis.asyncio search, embedding via litellm.aembedding (executor "
        "thread); every call retries 'from litellm.proxy.proxy_server import ...', which fails "
        "without litellm[proxy] (backoff) and costs ~8 ms; errors are swallowed into misses; "
        "fill = RedisVL store(vector=, filters=key) per entry, as set_cache does minus the "
        "embedding; nearest = RedisVL check(distance_threshold=2.0) in the same key scope."
    )

    def __init__(
        self,
        redis_url: str,
        embedder: SharedEmbedder,
        similarity_threshold: float = DOCS_SIMILARITY,
    ) -> None:
        self._shared = embedder
        self.handler = register_provider(embedder)
        self.default_similarity = similarity_threshold
        self._index = f"bench-litellm-{uuid.uuid4().hex[:12]}"
        self._cache = RedisSemanticCache(
            redis_url=redis_url,
            similarity_threshold=similarity_threshold,
            embedding_model=EMBEDDING_MODEL,
            index_name=self._index,
        )
        # Built lazily by LiteLLM; build it now (one probe embedding through litellm.embedding).
        self._llmcache: Any = self._cache.llmcache
        # litellm.Cache.get_cache_key on a bare Cache: its __init__ registers global callbacks.
        self._keys = Cache.__new__(Cache)
        self._keys.type = LiteLLMCacheType.REDIS_SEMANTIC
        self._keys.namespace = None
        self._keys.semantic_cache_scope = "key"
        self._client = redis.Redis.from_url(redis_url)

    def _key(self, messages: list[dict[str, str]]) -> str:
        return self._keys.get_cache_key(model=MODEL, messages=messages)

    def fill(self, entries: Sequence[Entry]) -> None:
        """RedisVL ``store`` with the precomputed vector, in ``set_cache``'s key scope."""
        for entry in entries:
            key = self._key(_messages(entry.prompt))
            value = {"timestamp": time.time(), "response": entry.response}
            self._llmcache.store(
                entry.prompt,
                str(value),
                vector=[float(x) for x in entry.vector],
                filters={RedisSemanticCache.CACHE_KEY_FIELD_NAME: key},
            )

    def store(self, prompt: str, response: str) -> None:
        """``set_cache`` with what ``litellm.Cache.add_cache`` passes, embedding included."""
        messages = _messages(prompt)
        value = {"timestamp": time.time(), "response": response}
        self._cache.set_cache(self._key(messages), value, model=MODEL, messages=messages)

    def check(self, prompt: str) -> str | None:
        """``get_cache`` with what ``litellm.Cache.get_cache`` passes (messages, metadata)."""
        messages = _messages(prompt)
        return _answer(self._cache.get_cache(self._key(messages), messages=messages, metadata={}))

    async def acheck(self, prompt: str) -> str | None:
        """``async_get_cache`` with what ``litellm.Cache.async_get_cache`` passes."""
        messages = _messages(prompt)
        cached = await self._cache.async_get_cache(
            self._key(messages), model=MODEL, messages=messages, metadata={}
        )
        return _answer(cached)

    def nearest(self, prompt: str) -> tuple[str | None, float]:
        """RedisVL ``check`` in the same key scope with the range opened to 2.0 (all cosines)."""
        key = self._key(_messages(prompt))
        hits = self._llmcache.check(
            vector=self._shared.embed(prompt),
            num_results=1,
            distance_threshold=2.0,
            filter_expression=Tag(RedisSemanticCache.CACHE_KEY_FIELD_NAME) == key,
        )
        if not hits:
            return None, 0.0
        answer = _answer(self._cache._get_cache_logic(cached_response=hits[0]["response"]))
        return answer, 1.0 - float(hits[0]["vector_distance"])

    def close(self) -> None:
        """Drop the index with its documents, any stray key under its prefix, and the clients."""
        self._llmcache.delete()
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self._index) + ":*"
        stray = list(self._client.scan_iter(match=pattern, count=1000))
        if stray:
            self._client.delete(*stray)
        self._llmcache.disconnect()
        self._client.close()
