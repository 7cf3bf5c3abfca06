"""The typed error tree: every error this package raises is a ``SemcacheError``."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CacheClosedError",
    "CalibrationError",
    "ConfigurationError",
    "EmbeddedRedisError",
    "EmbeddingError",
    "ModelError",
    "ModelExportError",
    "ModelNotFoundError",
    "PortInUseError",
    "RedisBinaryNotFoundError",
    "SemcacheError",
    "SerializationError",
]


class SemcacheError(Exception):
    """Base class of every error raised by semcache-plugins."""


class ConfigurationError(SemcacheError, ValueError):
    """A setting or argument is invalid (also a ``ValueError``, as pydantic's errors were)."""


class CalibrationError(ConfigurationError):
    """The labelled pairs cannot justify a threshold for the target asked (too few of them)."""


class ModelError(SemcacheError):
    """The embedding model cannot be found, loaded or converted."""


class ModelNotFoundError(ModelError):
    """No usable copy of the embedding model exists (and none can be built)."""


class ModelExportError(ModelError):
    """A checkpoint cannot be converted to ONNX (not BERT-family, missing files, ...)."""


class EmbeddingError(SemcacheError):
    """Running the embedding model failed or timed out."""


class BackendError(SemcacheError):
    """Redis could not be reached or answered with an error."""


class CacheClosedError(SemcacheError):
    """The cache was closed: it makes no new connections (the adapters call the provider)."""


class SerializationError(SemcacheError):
    """A value cannot be serialized, or a stored record cannot be read."""


class EmbeddedRedisError(SemcacheError):
    """The embedded Redis server cannot be started, found or stopped."""


class RedisBinaryNotFoundError(EmbeddedRedisError):
    """A piece of the embedded Redis (server binary or module) is not installed."""


class PortInUseError(EmbeddedRedisError):
    """The requested port is already taken."""
