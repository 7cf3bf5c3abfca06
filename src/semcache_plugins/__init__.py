"""semcache-plugins: a fast, correct semantic cache for LLM calls (LiteLLM and LangChain)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._cache._core import CacheCore
from ._cache._events import CacheEvent
from ._calibrate import CalibrationResult, calibrate
from ._embedding._embedder import Embedder, ModelFingerprint
from ._errors import (
    BackendError,
    CacheClosedError,
    CalibrationError,
    ConfigurationError,
    EmbeddedRedisError,
    EmbeddingError,
    ModelError,
    ModelExportError,
    ModelNotFoundError,
    PortInUseError,
    RedisBinaryNotFoundError,
    SemcacheError,
    SerializationError,
)
from ._options import SettingsOverrides
from ._settings import CacheSettings
from ._types import CacheHit

if TYPE_CHECKING:
    from .langchain import LangChainSemCache
    from .litellm import SemCache

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "CacheClosedError",
    "CacheCore",
    "CacheEvent",
    "CacheHit",
    "CacheSettings",
    "CalibrationError",
    "CalibrationResult",
    "ConfigurationError",
    "EmbeddedRedisError",
    "Embedder",
    "EmbeddingError",
    "LangChainSemCache",
    "ModelError",
    "ModelExportError",
    "ModelFingerprint",
    "ModelNotFoundError",
    "PortInUseError",
    "RedisBinaryNotFoundError",
    "SemCache",
    "SemcacheError",
    "SerializationError",
    "SettingsOverrides",
    "__version__",
    "calibrate",
]

_LAZY = {"SemCache": ".litellm", "LangChainSemCache": ".langchain"}


def __getattr__(name: str) -> Any:
    """Import the adapters only when asked for, so litellm/langchain stay optional."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'semcache_plugins' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module_name, __name__), name)
    globals()[name] = value
    return value
