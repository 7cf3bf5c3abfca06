"""The tenant and server parts of a LiteLLM call's scope (pure).

LiteLLM's own semantic caches keep tenants apart by the identity the proxy writes into the
request's metadata from the caller's virtual key (``Cache._get_semantic_cache_tenant_scope``).
These parts enter the core's scope as hashed params, so the raw key never reaches Redis.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._cache._scope import sha256_hex

__all__ = [
    "API_BASE_PARAM",
    "END_USER_FIELD",
    "TENANT_FIELDS",
    "TENANT_PARAM",
    "routed",
    "server_scope",
    "tenant_scope",
]

# The tenant of a call, as LiteLLM's own semantic caches read it (``Cache.
# _SEMANTIC_CACHE_TENANT_SCOPE_FIELDS``): the proxy writes them from the caller's virtual key.
TENANT_FIELDS = ("user_api_key", "user_api_key_team_id", "user_api_key_org_id")
END_USER_FIELD = "user_api_key_end_user_id"
TENANT_PARAM = "semcache_tenant"  # a hash of the tenant fields, never the raw key
API_BASE_PARAM = "semcache_api_base"  # a hash of a direct call's server (not a Router group's)


def _metadata_sources(kwargs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request's metadata dicts in LiteLLM's order, the one the proxy authenticated
    (it holds ``user_api_key``) first, so a caller's own metadata cannot name another tenant."""
    litellm_params = kwargs.get("litellm_params")
    holders = [kwargs, litellm_params if isinstance(litellm_params, Mapping) else {}]
    sources = [
        source
        for holder in holders
        for key in ("metadata", "litellm_metadata")
        if isinstance(source := holder.get(key), Mapping)
    ]
    return sorted(sources, key=lambda source: "user_api_key" not in source)


def tenant_scope(kwargs: Mapping[str, Any], *, end_user: bool = False) -> str | None:
    """A hash of the caller's key, team and org (and end user if asked), or None for none.

    Each field is read from the first metadata dict that has it (LiteLLM's
    ``_get_semantic_cache_tenant_scope``); a field the proxy set to None stays unset."""
    fields = (*TENANT_FIELDS, END_USER_FIELD) if end_user else TENANT_FIELDS
    sources = _metadata_sources(kwargs)
    tenant: dict[str, str] = {}
    for field in fields:
        holder = next((source for source in sources if field in source), None)
        value = None if holder is None else holder[field]
        if value is not None:
            tenant[field] = value if isinstance(value, str) else json.dumps(value, default=str)
    if not tenant:
        return None
    return sha256_hex(json.dumps(tenant, sort_keys=True, ensure_ascii=True))[:32]


def routed(kwargs: Mapping[str, Any]) -> bool:
    """A Router call (a model group): its deployments share entries, whatever their server."""
    return any(source.get("model_group") for source in _metadata_sources(kwargs))


def server_scope(kwargs: Mapping[str, Any]) -> str | None:
    """A hash of a direct call's ``api_base``/``base_url``: two servers may serve one model
    name differently. None for Router calls and for the provider's default server."""
    if routed(kwargs):
        return None
    base = kwargs.get("api_base") or kwargs.get("base_url")
    if not isinstance(base, str) or not base.strip():
        return None
    return sha256_hex(base.strip().rstrip("/"))[:32]
