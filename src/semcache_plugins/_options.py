"""The keyword arguments every front door takes: one typed definition of the settings.

``CacheCore``, ``SemCache``, ``LangChainSemCache`` and ``ProxySemCache`` take
``settings: CacheSettings | None`` plus ``**overrides: Unpack[SettingsOverrides]``, so an editor
and mypy see each option with its type, and the adapters do not repeat the list. An override of
None means "the default" (the ``settings`` given, else ``SEMCACHE_*``, else the built-in one).
Unknown or invalid keywords raise ``ConfigurationError`` (``CacheSettings`` forbids extras);
``tests/adapters/test_front_door.py`` checks that the keys here are exactly
``CacheSettings``' fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypedDict

from ._settings import CacheSettings

__all__ = ["SettingsOverrides", "merge_settings"]


class SettingsOverrides(TypedDict, total=False):
    """Every field of :class:`CacheSettings` (see there for ranges and defaults)."""

    #: Redis with the Search module; None starts the embedded server (``SEMCACHE_REDIS_URL``).
    redis_url: str | None
    #: Cosine similarity a semantic hit needs (0-1).
    similarity_threshold: float | None
    #: Seconds until entries expire (floats rounded up); 0: no default expiry.
    ttl: float | timedelta | None
    #: The tenant: entries of one namespace never answer another's requests.
    namespace: str | None
    #: Prefix of the index name and its keys.
    index_prefix: str | None
    embedding_model: str | None
    model_path: str | Path | None
    #: int8-quantized model (its own index).
    quantize: bool | None
    #: ``float16`` halves vector memory (its own index).
    vector_dtype: Literal["float32", "float16"] | None
    cache_dir: str | Path | None
    #: Precision guards on semantic candidates (numbers, negation, entities, ...).
    guards: bool | None
    #: With guards: neighbours within this cosine margin must hold the same answer (0: off).
    agreement_margin: float | None
    #: With guards: a warmed scope's neighbourhood (a quorum of close records) decides.
    consensus: bool | None
    #: With guards: the learned verifier judges candidates from ``verifier_floor`` up.
    verifier: bool | None
    verifier_floor: float | None
    #: Load the model in the constructor: a broken one fails there.
    preload: bool | None
    max_response_bytes: int | None
    #: Seconds a lookup may take (then it is a miss).
    lookup_timeout: float | None
    #: Redis connect/read timeout in seconds.
    socket_timeout: float | None
    max_connections: int | None
    breaker_failures: int | None
    breaker_cooldown: float | None
    #: HMAC key: entries not signed with it are never served.
    signing_key: str | None
    #: LiteLLM: tenants are key/team/org; ``end_user`` splits by end user too.
    semantic_cache_scope: Literal["key", "end_user"] | None
    #: False: shadow mode (look up and record what would be served, serve nothing).
    serve: bool | None
    #: Share of semantic hits checked against the provider.
    audit_rate: float | None
    audit_answer_threshold: float | None
    audit_demote_after: int | None
    audit_seed: int | None
    audit_log_size: int | None
    audit_log_ttl: int | None
    #: In-process L1 of exact-tier reads, invalidated by Redis (CLIENT TRACKING).
    l1_cache: bool | None


def merge_settings(settings: CacheSettings | None, overrides: Mapping[str, Any]) -> CacheSettings:
    """``settings`` (else defaults and ``SEMCACHE_*``) with the non-None ``overrides`` applied;
    a keyword ``CacheSettings`` does not know is a ``ConfigurationError``."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if settings is None:
        return CacheSettings(**given)
    if not given:
        return settings
    return CacheSettings(**{**settings.model_dump(exclude_unset=True), **given})
