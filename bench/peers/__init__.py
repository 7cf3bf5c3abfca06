"""Every semantic cache in the comparison, behind one ``PeerCache`` interface (see ``base``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .base import Entry, PeerCache, SharedEmbedder

__all__ = ["PEER_CLASSES", "Entry", "PeerCache", "SharedEmbedder", "make_peer"]

#: name -> (module, class); RedisVL first: every ratio is to it.
PEER_CLASSES: dict[str, tuple[str, str]] = {
    "redisvl": ("redisvl_peer", "RedisVLPeer"),
    "ours": ("ours", "OursPeer"),
    "langchain-redis": ("langchain_redis_peer", "LangChainRedisPeer"),
    "litellm": ("litellm_peer", "LiteLLMRedisSemanticPeer"),
    "gptcache": ("gptcache_peer", "GPTCachePeer"),
}


def make_peer(key: str, redis_url: str, shared: SharedEmbedder, **options: object) -> PeerCache:
    """A fresh, empty instance of peer ``key`` (its own index) on ``redis_url``."""
    module_name, class_name = PEER_CLASSES[key]
    module = importlib.import_module(f"{__name__}.{module_name}")
    factory: Callable[..., PeerCache] = getattr(module, class_name)
    return factory(redis_url, shared, **options)
