"""The semantic cache inside LiteLLM's proxy (the OpenAI-compatible gateway).

```yaml
# config.yaml for a stock ``litellm --config config.yaml``
litellm_settings:
  callbacks: semcache_plugins.litellm_proxy.handler
```

Loading ``handler`` (LiteLLM does when it reads the config) installs a :class:`ProxySemCache`
as ``litellm.cache``, configured by the ``SEMCACHE_*`` environment (``SEMCACHE_REDIS_URL``,
``SEMCACHE_SIMILARITY_THRESHOLD``, ``SEMCACHE_SEMANTIC_CACHE_SCOPE``, ...). Do not also set
``cache: true`` in the config: that makes the proxy build its own cache in place of this one.

The proxy's admin routes (``litellm/proxy/caching_routes.py``) act only on a cache whose
``type`` is ``"redis"`` and whose ``cache`` attribute is a ``RedisCache``: ``/cache/ping``
awaits ``litellm.cache.ping()``, ``/cache/delete`` awaits ``delete_cache_keys(keys)`` and
``/cache/flushall`` calls ``litellm.cache.cache.flushall()``. :class:`CacheAdmin` is that
``RedisCache`` for our Redis: it never reads or writes cache entries itself, it answers those
three routes (plus ``/cache/redis/info``) for this cache's index and namespace only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import litellm
import redis
from litellm.caching.redis_cache import RedisCache
from litellm.integrations.custom_logger import CustomLogger
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._cache._backend import redis_url_for
from ._cache._core import CacheCore
from ._errors import ConfigurationError
from .litellm import SemCache

__all__ = [  # noqa: F822 - ``handler`` is made on first access (module __getattr__)
    "CacheAdmin",
    "ProxySemCache",
    "SemcacheProxyHandler",
    "config_block",
    "entry_ids",
    "handler",
    "hit_headers",
    "install",
]

logger = logging.getLogger("semcache_plugins")

KEY_PREFIX = "semcache:"  # what SemCache.get_cache_key puts before an entry id
_ENTRY_ID = re.compile(r"[0-9a-f]{32}")
TIER_HEADER = "x-semcache-tier"
SIMILARITY_HEADER = "x-semcache-similarity"


def entry_ids(keys: Any) -> list[str]:
    """The entry ids named by ``x-litellm-cache-key`` values; anything else is refused.

    Only exact 32-hex ids become Redis keys: no caller text ever reaches a key or a pattern."""
    if isinstance(keys, str) or not isinstance(keys, Iterable):
        raise ValueError('/cache/delete needs {"keys": [<x-litellm-cache-key>, ...]}')
    ids: list[str] = []
    for key in keys:
        named = isinstance(key, str) and key.startswith(KEY_PREFIX)
        entry = key[len(KEY_PREFIX) :] if named else ""
        if not _ENTRY_ID.fullmatch(entry):
            raise ValueError(f"not a semcache cache key: {str(key)[:80]!r}")
        ids.append(entry)
    return ids


def hit_headers(info: Any) -> dict[str, str]:
    """Response headers saying what a hit was (``{}`` for anything that is not our hit)."""
    if not isinstance(info, dict) or not isinstance(info.get("tier"), str):
        return {}
    similarity = info.get("similarity")
    headers = {TIER_HEADER: info["tier"]}
    if isinstance(similarity, int | float):
        headers[SIMILARITY_HEADER] = f"{similarity:.4f}"
    return headers


class _Opaque:
    """Holds an object out of sight of ``vars()``: LiteLLM's /cache/ping dumps
    ``vars(litellm.cache)`` recursively (settings with the Redis URL, embedding memos)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return repr(self.value)


class CacheAdmin(RedisCache):
    """The ``RedisCache`` LiteLLM's admin routes require, acting on one semcache core.

    ``RedisCache.__init__`` is not called: this object holds no LiteLLM Redis client, so any
    LiteLLM code that tried to use it as a key-value store fails (and LiteLLM catches it)
    instead of writing beside our entries."""

    def __init__(self, core: CacheCore) -> None:  # noqa: D107 - see the class
        self._hidden = _Opaque(core)
        self._client_box = _Opaque(None)
        # What /cache/ping shows (HealthCheckCacheParams fields); never the URL (a password).
        self.namespace = core.settings.namespace
        self.redis_kwargs: dict[str, object] = {"index_prefix": core.settings.index_prefix}
        self.redis_version = ""  # set by ping()

    @property
    def _core(self) -> CacheCore:
        core: CacheCore = self._hidden.value
        return core

    def __repr__(self) -> str:
        return f"CacheAdmin({self._core!r})"

    def _redis(self) -> redis.Redis:
        if self._client_box.value is None:
            settings = self._core.settings
            self._client_box.value = redis.Redis.from_url(
                redis_url_for(settings),
                socket_timeout=settings.socket_timeout,
                socket_connect_timeout=settings.socket_timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
            )
        client: redis.Redis = self._client_box.value
        return client

    # -- /cache/ping ---------------------------------------------------------------------------

    def ping_sync(self) -> dict[str, object]:
        """Redis answers, has the Search module, and this cache's index exists: its counts."""
        client = self._redis()
        client.ping()
        modules = [str(module.get("name")) for module in client.module_list()]
        if "search" not in modules:
            raise RuntimeError(f"Redis has no Search module (modules: {modules})")
        layout = self._core.layout
        try:
            info: Any = client.ft(layout.name).info()  # type: ignore[no-untyped-call]
        except redis.ResponseError:
            info = None  # created on the first store
        server: Any = client.info("server")
        self.redis_version = str(server.get("redis_version"))
        return {
            "search_module": True,
            "index": layout.name,
            "index_exists": info is not None,
            "entries": int(info["num_docs"]) if info is not None else 0,
            "redis_version": self.redis_version,
        }

    async def ping(self) -> bool:
        """Raises (LiteLLM answers 503) unless Redis, its Search module and the index work."""
        report = await asyncio.to_thread(self.ping_sync)
        self.redis_kwargs = {"index_prefix": self._core.settings.index_prefix, **report}
        return True

    # -- /cache/delete -------------------------------------------------------------------------

    async def delete_cache_keys(self, keys: Any) -> int:
        """Each entry the keys name, through the core (its own checks, counts, generations)."""
        deleted = 0
        for entry in entry_ids(keys):
            deleted += await self._core.adelete(entry)
        return deleted

    # -- /cache/flushall -----------------------------------------------------------------------

    def flushall(self) -> int:
        """Every entry of this cache's namespace (its index), nothing else in Redis."""
        return self._core.clear()

    # -- /cache/redis/info ---------------------------------------------------------------------

    def info(self) -> Any:
        return self._redis().info()

    def client_list(self) -> list[Any]:
        return list(self._redis().client_list())

    async def disconnect(self) -> None:
        client, self._client_box.value = self._client_box.value, None
        if client is not None:
            client.close()


class ProxySemCache(SemCache):
    """``SemCache`` as LiteLLM's proxy needs it: ``type == "redis"`` with a :class:`CacheAdmin`,
    and hits that say what they were (response headers and spend-log metadata). It takes
    :class:`SemCache`'s options."""

    def _attached(self) -> None:
        """Set up after ``SemCache.__init__`` (same options): what the proxy reads."""
        self.type = "redis"  # type: ignore[assignment]
        self.cache = CacheAdmin(self.core)

    @property
    def core(self) -> CacheCore:
        """The core this cache runs on (boxed: LiteLLM's proxy copies its cache's attributes)."""
        core: CacheCore = self._core_box.value
        return core

    @core.setter
    def core(self, value: CacheCore) -> None:
        self._core_box = _Opaque(value)

    def _mark(self, response: Any, kwargs: dict[str, Any]) -> Any:
        """Note a hit in the request's metadata (the proxy's own dict, read by its spend logs
        and by the response-headers hook): LiteLLM's ``semantic-similarity`` too."""
        hidden = response.get("_hidden_params") if isinstance(response, dict) else None
        info = hidden.get("semcache") if isinstance(hidden, dict) else None
        metadata = kwargs.get("metadata")
        if isinstance(info, dict) and hit_headers(info) and isinstance(metadata, dict):
            metadata["semantic-similarity"] = info["similarity"]
            spend = metadata.get("spend_logs_metadata")
            metadata["spend_logs_metadata"] = {
                **(spend if isinstance(spend, dict) else {}),
                "semcache_tier": info["tier"],
                "semcache_similarity": info["similarity"],
            }
        return response

    def get_cache(self, dynamic_cache_object: Any = None, **kwargs: Any) -> Any:
        return self._mark(super().get_cache(dynamic_cache_object, **kwargs), kwargs)

    async def async_get_cache(self, dynamic_cache_object: Any = None, **kwargs: Any) -> Any:
        response = await super().async_get_cache(dynamic_cache_object, **kwargs)
        return self._mark(response, kwargs)

    async def async_add_cache(
        self, result: Any, dynamic_cache_object: Any = None, **kwargs: Any
    ) -> None:
        if isinstance(result, str) and not result.lstrip().startswith("{"):
            return  # /cache/ping's probe stores "test_key": not a response, nothing to keep
        await super().async_add_cache(result, dynamic_cache_object, **kwargs)

    async def disconnect(self) -> None:
        await self.cache.disconnect()  # type: ignore[no-untyped-call]
        await super().disconnect()


def config_block(path: str | None = None) -> dict[str, Any]:
    """The ``semcache:`` block of the proxy's config file (settings; they win over
    ``SEMCACHE_*``), or ``{}``. By default the file LiteLLM's proxy server is loading."""
    if path is None:
        server = sys.modules.get("litellm.proxy.proxy_server")
        path = getattr(server, "user_config_file_path", None)
    if not isinstance(path, str) or not path.endswith((".yaml", ".yml")):
        return {}
    import yaml  # type: ignore[import-untyped]

    try:
        with open(path, encoding="utf-8") as file:
            config: Any = yaml.safe_load(file)
    except (OSError, yaml.YAMLError):
        return {}  # LiteLLM reports its own config's problems
    block = config.get("semcache") if isinstance(config, dict) else None
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigurationError(f"{path}: `semcache:` must be a mapping of cache settings")
    return {str(key): value for key, value in block.items()}


class SemcacheProxyHandler(CustomLogger):
    """The object named in ``litellm_settings: callbacks:``: it installs the cache and adds
    ``x-semcache-tier`` / ``x-semcache-similarity`` to the responses of hits.

    Creating it sets ``litellm.cache`` to a :class:`ProxySemCache` from the ``SEMCACHE_*``
    environment, unless one is already installed."""

    def __init__(self, config_path: str | None = None, **options: Any) -> None:
        super().__init__()
        current = litellm.cache
        if not isinstance(current, ProxySemCache):
            current = ProxySemCache(**{**config_block(config_path), **options})
        self.cache = current
        litellm.cache = self.cache

    async def async_post_call_response_headers_hook(
        self,
        data: dict[str, Any],
        user_api_key_dict: Any,
        response: Any,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        """The hit's tier and similarity (a streamed replay's from the request metadata)."""
        hidden = getattr(response, "_hidden_params", None)
        info = hidden.get("semcache") if isinstance(hidden, dict) else None
        if not hit_headers(info):
            metadata = data.get("metadata") if isinstance(data, dict) else None
            spend = metadata.get("spend_logs_metadata") if isinstance(metadata, dict) else None
            if isinstance(spend, dict) and "semcache_tier" in spend:
                info = {"tier": spend["semcache_tier"], "similarity": spend["semcache_similarity"]}
        return hit_headers(info) or None


_handler: SemcacheProxyHandler | None = None


def install(config_path: str | None = None) -> SemcacheProxyHandler:
    """The process's handler, made (and the cache installed) on the first call."""
    global _handler
    if _handler is None:
        _handler = SemcacheProxyHandler(config_path)
    return _handler


def __getattr__(name: str) -> Any:
    """``handler`` is made on first access (LiteLLM's ``getattr`` when it loads the callback),
    so importing this module installs nothing."""
    if name != "handler":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return install()
