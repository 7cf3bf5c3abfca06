"""GPTCache (0.1.44) as a benchmark peer: its Redis vector store, its sqlite scalar store.

GPTCache has no async API and its Redis store predates redis-py 8; see ``GPTCachePeer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence
from typing import Any

import gptcache.utils as gptcache_utils
import numpy as np
import redis
from gptcache import Cache, Config
from gptcache.adapter.api import get, put
from gptcache.manager import CacheBase, VectorBase, get_data_manager
from gptcache.processor.pre import get_prompt
from gptcache.similarity_evaluation import SearchDistanceEvaluation

from bench.peers.base import Entry, SharedEmbedder

__all__ = ["GPTCachePeer", "redis_store_shims"]

#: gptcache/config.py:40 ``similarity_threshold: float = 0.8``.
DEFAULT_THRESHOLD = float(Config().similarity_threshold)
#: gptcache/similarity_evaluation/distance.py:34 ``max_distance=4.0``.
MAX_DISTANCE = float(SearchDistanceEvaluation().max_distance)


def _refuse_install(package: str, warn: bool = False) -> None:
    raise ModuleNotFoundError(f"GPTCache asked to pip-install {package!r} at run time: refused")


def redis_store_shims() -> None:
    """Let GPTCache 0.1.44's Redis vector store import under redis-py 8 (no GPTCache code edited).

    1. ``gptcache.utils.import_redis`` also demands ``redis-om`` (used only by its Redis *scalar*
       store and eviction) and pip-installs it at import time if missing; redis-om would pull
       python-ulid<=3.1 and types-redis. Only ``redis`` is checked here, and any run-time
       pip install GPTCache attempts is refused instead.
    2. redis-py renamed ``redis.commands.search.indexDefinition`` to ``index_definition``; the
       old name is aliased to the new module.
    """
    gptcache_utils.prompt_install = _refuse_install
    gptcache_utils.import_redis = lambda: gptcache_utils._check_library("redis", prompt=False)
    sys.modules.setdefault(
        "redis.commands.search.indexDefinition",
        importlib.import_module("redis.commands.search.index_definition"),
    )


class GPTCachePeer:
    """GPTCache with ``SearchDistanceEvaluation()`` and ``Config()`` at their defaults.

    Threshold in cosine terms. The adapter (gptcache/adapter/adapter.py:100) hits when
    ``rank >= (max_rank - min_rank) * similarity_threshold``; ``SearchDistanceEvaluation`` has the
    range (0, max_distance=4.0) and ``rank = 4.0 - d`` with ``d`` the store's distance clipped to
    [0, 4]. So a hit needs ``4 - d >= 4 * 0.8``, i.e. ``d <= 0.8``. Those defaults are sized for
    FAISS's squared L2 (``d = 2 - 2 cos`` on unit vectors, so ``cos >= 0.6``), but the Redis store
    returns RediSearch COSINE distance ``d = 1 - cos``, so here the default means
    ``cos >= 1 - 0.8 = 0.2``: ``default_similarity = 1 - max_distance * (1 - threshold)``.
    """

    name = "gptcache"
    default_similarity = 1.0 - MAX_DISTANCE * (1.0 - DEFAULT_THRESHOLD)
    notes = (
        f"GPTCache 0.1.44, Redis vector store + sqlite; defaults SearchDistanceEvaluation"
        f"(max_distance={MAX_DISTANCE}) and Config(similarity_threshold={DEFAULT_THRESHOLD}) mean "
        "Redis cosine distance <= 0.8, i.e. cosine >= 0.2 (sized for FAISS L2, where it is 0.6); "
        "its Redis store needed two import shims for redis-py 8 (module rename, redis-om check); "
        "no async API: acheck = check in asyncio.to_thread; check/store = adapter.api get/put; "
        "search fetches the 1 nearest; fill = data_manager.import_data with the vectors (sqlite "
        "batch insert + one Redis pipeline); max_size raised from 1000 so LRU eviction does not "
        "drop entries; nearest = data_manager.search + evaluation, cosine = 1 - (4 - rank)."
    )

    def __init__(
        self, redis_url: str, embedder: SharedEmbedder, *, max_size: int = 10_000_000
    ) -> None:
        redis_store_shims()
        self._shared = embedder
        self._client = redis.Redis.from_url(redis_url)
        conn = self._client.connection_pool.connection_kwargs
        if int(conn.get("db", 0)) != 0:
            raise ValueError("GPTCache's Redis vector store only uses database 0")
        self._index = f"bench-gptcache-{uuid.uuid4().hex[:12]}"
        self._dir = tempfile.mkdtemp(prefix="bench-gptcache-")
        self._vectors: Any = VectorBase(
            "redis",
            host=str(conn.get("host", "localhost")),
            port=str(conn.get("port", 6379)),
            user=conn.get("username") or "",
            password=conn.get("password") or "",
            dimension=embedder.dims,
            collection_name=self._index,
            namespace=f"{self._index}:",
        )
        scalars = CacheBase(
            "sqlite", sql_url=f"sqlite:///{self._dir}/gptcache.db", table_name="bench"
        )
        self._data: Any = get_data_manager(scalars, self._vectors, max_size=max_size)
        self._evaluation = SearchDistanceEvaluation()
        self._cache = Cache()
        self._cache.init(
            pre_embedding_func=get_prompt,
            embedding_func=self._embed,
            data_manager=self._data,
            similarity_evaluation=self._evaluation,
            config=Config(),
        )

    def _embed(self, text: str, **_: Any) -> np.ndarray:
        """GPTCache's ``embedding_func``: one text to one float32 vector."""
        vector: np.ndarray = self._shared.vectors([text])[0]
        return vector

    def fill(self, entries: Sequence[Entry]) -> None:
        """``SSDataManager.import_data`` with the precomputed vectors (its bulk path)."""
        self._data.import_data(
            [e.prompt for e in entries],
            [e.response for e in entries],
            [np.asarray(e.vector, dtype=np.float32) for e in entries],
            [None] * len(entries),
        )

    def store(self, prompt: str, response: str) -> None:
        """``gptcache.adapter.api.put``, embedding included."""
        put(prompt, response, cache_obj=self._cache)

    def check(self, prompt: str) -> str | None:
        """``gptcache.adapter.api.get`` at the default threshold."""
        answer = get(prompt, cache_obj=self._cache)
        return None if answer is None else str(answer)

    async def acheck(self, prompt: str) -> str | None:
        """GPTCache has no async API: ``check`` in a worker thread."""
        return await asyncio.to_thread(self.check, prompt)

    def nearest(self, prompt: str) -> tuple[str | None, float]:
        """Its data manager's 1-NN search, scored by its evaluation with no threshold."""
        vector = self._embed(prompt)
        found = self._data.search(vector, top_k=1)
        if not found:
            return None, 0.0
        data = self._data.get_scalar_data(found[0])
        if data is None:
            return None, 0.0
        rank = self._evaluation.evaluation(
            {"question": prompt, "embedding": vector},
            {"question": data.question, "search_result": found[0], "embedding": None},
        )
        distance = self._evaluation.range()[1] - float(rank)  # Redis cosine distance, 1 - cos
        return str(data.answers[0].answer), 1.0 - distance

    def close(self) -> None:
        """Drop its index with documents, stray keys, the sqlite directory and the clients."""
        with contextlib.suppress(redis.ResponseError):  # already gone
            self._client.ft(self._index).dropindex(delete_documents=True)
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", self._index) + ":*"
        stray = list(self._client.scan_iter(match=pattern, count=1000))
        if stray:
            self._client.delete(*stray)
        self._data.close()
        store_client = getattr(self._vectors, "_client", None)
        if store_client is not None:
            store_client.close()
        self._client.close()
        shutil.rmtree(self._dir, ignore_errors=True)
