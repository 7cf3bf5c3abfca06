"""One settings object for the whole package (environment prefix ``SEMCACHE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._errors import ConfigurationError
from ._paths import cache_dir
from ._precision._guards import DEFAULT_SIMILARITY_THRESHOLD
from ._ttl import validate_ttl

__all__ = ["DEFAULT_EMBEDDING_MODEL", "CacheSettings", "validate_namespace"]

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_SEPARATORS = "{}|,:*\"' \t\n"
NAMESPACE_MAX_LENGTH = 128


def validate_namespace(value: object) -> str:
    """A namespace (tenant) as settings and per-call arguments both accept it: 1-128
    characters, no TAG separators, quotes, wildcards or whitespace. ``ConfigurationError``
    otherwise (never silently the default: an empty namespace is a mistake, not "all")."""
    if not isinstance(value, str):
        raise ConfigurationError(f"namespace must be a string, not {type(value).__name__}")
    if not 1 <= len(value) <= NAMESPACE_MAX_LENGTH:
        raise ConfigurationError(
            f"namespace must be 1-{NAMESPACE_MAX_LENGTH} characters, not {len(value)}"
        )
    if any(ch in value for ch in _SEPARATORS) or not value.isprintable():
        raise ConfigurationError(
            f"namespace {value!r} must not contain separators, quotes, wildcards or whitespace"
        )
    return value


def _describe(exc: ValidationError) -> str:
    """The errors of a settings validation, without the input values (they may be secrets)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        parts.append(f"{field}: {error['msg']}")
    return "invalid cache settings: " + "; ".join(parts)


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
    ttl: int | None = Field(
        default=None,
        description="Seconds until entries expire (floats rounded up); None or 0: no expiry.",
    )
    namespace: str = Field(default="default")
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
    consensus: bool = Field(
        default=True,
        description="With guards: a warmed scope's neighbourhood decides what may serve "
        "(_consensus: a quorum of close records holding the nearest answer, none other close).",
    )
    verifier: bool = Field(
        default=False,
        description="With guards: a learned verifier (_verifier) judges every candidate from "
        "verifier_floor up; off by default (see bench/results/latest.md).",
    )
    verifier_floor: float = Field(
        default=0.72,
        ge=0.5,
        le=1.0,
        description="With the verifier: the lowest similarity it may serve from.",
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
    # -- audit and shadow mode (``_audit``, ``_audit_run``) --
    serve: bool = Field(
        default=True,
        description="False: shadow mode; look up and record what would be served, serve nothing.",
    )
    audit_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of semantic hits checked with the provider."
    )
    audit_answer_threshold: float = Field(
        default=0.85,
        ge=0.0,
        le=1.0,
        description="Audit: cosine of the answers' embeddings at which long answers agree.",
    )
    audit_demote_after: int = Field(
        default=2, ge=1, description="Disagreements after which an entry serves exact hits only."
    )
    audit_seed: int | None = Field(
        default=None, description="Seed of the audit sampler (reproducible runs); None: random."
    )
    audit_log_size: int = Field(default=1000, ge=1, le=100_000)
    audit_log_ttl: int = Field(default=30 * 86_400, gt=0, description="Seconds audit data is kept.")
    l1_cache: bool = Field(
        default=True,
        description="Keep exact-tier reads in process, invalidated by Redis (CLIENT TRACKING); "
        "only with a client the cache makes itself.",
    )

    def __init__(self, **values: Any) -> None:
        # one error type for every bad setting (argument or SEMCACHE_* variable)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None

    @field_validator("namespace", mode="before")
    @classmethod
    def _namespace(cls, value: object) -> str:
        return validate_namespace(value)

    @field_validator("index_prefix")
    @classmethod
    def _no_tag_separators(cls, value: str) -> str:
        if any(ch in value for ch in _SEPARATORS):
            raise ValueError("must not contain separators, quotes or whitespace")
        return value

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: object) -> int | None:
        """0 (like None) means no default expiry, as in RedisVL's ``SemanticCache(ttl=0)``;
        per call, ``ttl=0`` means "do not store" (see ``_ttl.entry_ttl``)."""
        if isinstance(value, str):  # from the environment
            try:
                value = float(value) if value.strip() else None
            except ValueError:
                raise ValueError("must be a number of seconds") from None
        return validate_ttl(value) or None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        """A malformed URL fails here, not at the first cache call (the message never repeats
        the URL: it may carry a password)."""
        if value:
            from redis.connection import parse_url

            try:
                parse_url(value)  # type: ignore[no-untyped-call]
            except ValueError as exc:
                raise ValueError(f"malformed Redis URL ({exc})") from None
        return value
