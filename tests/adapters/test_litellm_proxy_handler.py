"""``semcache_plugins.litellm_proxy`` in process: key parsing, what /cache/ping would dump,
and the spend-log metadata of a hit (real LiteLLM logging, real Redis, real model)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from litellm.litellm_core_utils.sensitive_data_masker import SensitiveDataMasker  # noqa: E402

from semcache_plugins import Embedder  # noqa: E402
from semcache_plugins._cli._fake_llm import FakeLLM  # noqa: E402
from semcache_plugins.litellm_proxy import (  # noqa: E402
    ProxySemCache,
    SemcacheProxyHandler,
    entry_ids,
    hit_headers,
)

GOOD = "semcache:" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    "keys",
    [
        "semcache:abc",
        [GOOD, "semcache:*"],
        ["semcache:" + "A" * 32],
        ["other:" + "0" * 32],
        [GOOD + "0"],
        [None],
        [GOOD.replace("semcache:", "")],
    ],
)
def test_delete_refuses_anything_but_exact_keys(keys: Any) -> None:
    with pytest.raises(ValueError, match="semcache|keys"):
        entry_ids(keys)


def test_delete_keys_to_entry_ids() -> None:
    assert entry_ids([GOOD, GOOD]) == [GOOD[9:]] * 2
    assert entry_ids([]) == []


@pytest.mark.parametrize(
    ("info", "headers"),
    [
        ({"tier": "exact", "similarity": 1.0}, {"x-semcache-tier": "exact"}),
        ({"tier": "semantic", "similarity": 0.91234}, {"x-semcache-similarity": "0.9123"}),
        ({"tier": "semantic", "similarity": None}, {"x-semcache-tier": "semantic"}),
        (None, {}),
        ({"similarity": 1.0}, {}),
        ("exact", {}),
    ],
)
def test_hit_headers(info: Any, headers: dict[str, str]) -> None:
    made = hit_headers(info)
    assert headers.items() <= made.items() if headers else made == {}


class Captured(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self.payloads: list[dict[str, Any]] = []

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, *args: Any, **more: Any
    ) -> None:
        self.payloads.append(kwargs.get("standard_logging_object") or {})


@pytest.fixture
async def proxy_cache(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> AsyncIterator[ProxySemCache]:
    previous, callbacks = litellm.cache, list(litellm.callbacks)
    cache = ProxySemCache(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=5.0
    )
    yield cache
    litellm.cache, litellm.callbacks = previous, callbacks
    await cache.disconnect()


def test_importing_installs_nothing() -> None:
    import subprocess
    import sys

    code = (
        "import litellm, semcache_plugins.litellm_proxy as p; assert litellm.cache is None; "
        "assert p._handler is None; print('ok')"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_handler_installs_the_cache_once(proxy_cache: ProxySemCache) -> None:
    litellm.cache = proxy_cache
    assert SemcacheProxyHandler().cache is proxy_cache and litellm.cache is proxy_cache
    assert proxy_cache.type == "redis" and proxy_cache.cache.namespace == "default"


async def test_ping_dump_shows_no_internals(proxy_cache: ProxySemCache, redis_url: str) -> None:
    """/cache/ping dumps ``vars(litellm.cache)`` through LiteLLM's masker: no URL, no vectors."""
    assert await proxy_cache.cache.ping() is True
    dumped = json.dumps(SensitiveDataMasker().mask_dict(vars(proxy_cache)), default=str)
    dumped += json.dumps(SensitiveDataMasker().mask_dict(vars(proxy_cache.cache)), default=str)
    assert redis_url.split("//")[1] not in dumped and "redis_url" not in dumped
    assert proxy_cache.cache.redis_kwargs["search_module"] is True


async def test_hit_reaches_the_spend_log_metadata(
    proxy_cache: ProxySemCache, fake: FakeLLM
) -> None:
    litellm.cache = proxy_cache
    captured = Captured()
    litellm.callbacks = [captured]
    options = {"model": "openai/gpt-4o-mini", "api_base": fake.api_base, "api_key": "x"}

    async def ask(text: str) -> Any:
        messages = [{"role": "user", "content": text}]
        return await litellm.acompletion(messages=messages, metadata={}, **options)

    await ask("How do I reset my password?")
    for _ in range(200):  # the store is a background task
        if proxy_cache.stats()["stores"]:
            break
        await asyncio.sleep(0.02)
    hit = await ask("I forgot my password, how can I reset it?")
    assert hit._hidden_params.get("cache_hit") is True and fake.count == 1
    for _ in range(200):
        if len(captured.payloads) >= 2:
            break
        await asyncio.sleep(0.02)
    spend = captured.payloads[-1]["metadata"]["spend_logs_metadata"]
    assert spend["semcache_tier"] == "semantic" and 0.5 < spend["semcache_similarity"] < 1
    assert captured.payloads[0]["metadata"].get("spend_logs_metadata") is None  # the miss
