"""One settings object for the whole package (environment prefix ``SEMCACHE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._guards import DEFAULT_SIMILARITY_THRESHOLD
from ._paths import cache_dir

__all__ = ["DEFAULT_EMBEDDING_MODEL", "CacheSettings"]

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class CacheSettings(BaseSettings):
    """Every knob of the cache; read from keyword arguments, then ``SEMCACHE_*`` environment."""

    model_config = SettingsConfigDict(
        env_prefix="SEMCACHE_",
        frozen=True,
        populate_by_name=True,
        extra="forbid",
    )

    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("redis_url", "SEMCACHE_REDIS_URL", "REDIS_URL"),
        description="Redis with the Search module; None starts the embedded server.",
        repr=False,  # may carry a password
    )
    similarity_threshold: float = Field(default=DEFAULT_SIMILARITY_THRESHOLD, ge=0.0, le=1.0)
    ttl: int | None = Field(default=None, gt=0, description="Seconds until entries expire.")
    namespace: str = Field(default="default", min_length=1, max_length=128)
    index_prefix: str = Field(default="semcache", min_length=1, max_length=64)
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    model_path: Path | None = None
    quantize: bool = False
    vector_dtype: Literal["float32", "float16"] = Field(
        default="float32", description="float16 halves vector memory (its own index)."
    )
    cache_dir: Path = Field(default_factory=cache_dir)
    guards: bool = True
    agreement_margin: float = Field(
        default=0.08,
        ge=0.0,
        le=0.5,
        description="With guards: a hit needs every neighbour within this cosine margin to hold "
        "the same answer (0 turns it off).",
    )
    preload: bool = Field(
        default=False, description="Load the model in the constructor: a broken one fails there."
    )
    max_response_bytes: int = Field(default=1_000_000, gt=0)
    lookup_timeout: float = Field(default=1.0, gt=0, description="Seconds a lookup may take.")
    socket_timeout: float = Field(default=0.5, gt=0, description="Redis connect/read timeout.")
    max_connections: int = Field(
        default=64, ge=1, description="Redis connections per client; callers beyond wait for one."
    )
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown: float = Field(default=5.0, ge=0)
    signing_key: str | None = Field(default=None, repr=False)
    semantic_cache_scope: Literal["key", "end_user"] = Field(
        default="key",
        description="LiteLLM: tenants are key/team/org; 'end_user' splits by end user too.",
    )

    @field_validator("namespace", "index_prefix")
    @classmethod
    def _no_tag_separators(cls, value: str) -> str:
        if any(ch in value for ch in "{}|,:*\"' \t\n"):
            raise ValueError("must not contain separators, quotes or whitespace")
        return value
