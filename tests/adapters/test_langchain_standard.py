"""LangChain's own standard cache test suites, run against ``LangChainSemCache``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from semcache_plugins._embedding._embedder import Embedder
from semcache_plugins.langchain import LangChainSemCache


class TestSyncSemCache(SyncCacheTestSuite):
    @pytest.fixture
    def cache(
        self, redis_url: str, index_prefix: str, embedder: Embedder
    ) -> Iterator[LangChainSemCache]:
        semcache = LangChainSemCache(
            redis_url=redis_url, index_prefix=index_prefix, embedder=embedder
        )
        yield semcache
        semcache.close()


class TestAsyncSemCache(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(
        self, redis_url: str, index_prefix: str, embedder: Embedder
    ) -> AsyncIterator[LangChainSemCache]:
        semcache = LangChainSemCache(
            redis_url=redis_url, index_prefix=index_prefix, embedder=embedder
        )
        yield semcache
        await semcache.aclose()
