"""The core behind an adapter: one given (shared, left open) or one made from the settings."""

from __future__ import annotations

from .._cache._core import CacheCore
from .._embedding._embedder import Embedder
from .._errors import ConfigurationError
from .._options import SettingsOverrides
from .._settings import CacheSettings

__all__ = ["adapter_core"]


def adapter_core(
    *,
    core: CacheCore | None,
    settings: CacheSettings | None,
    embedder: Embedder | None,
    overrides: SettingsOverrides,
) -> tuple[CacheCore, bool]:
    """The core an adapter runs on, and whether the adapter owns (and so closes) it."""
    if core is not None:
        given = [key for key, value in overrides.items() if value is not None]
        if given or settings is not None or embedder is not None:
            raise ConfigurationError("pass either core= or the cache settings, not both")
        return core, False
    return CacheCore(settings=settings, embedder=embedder, **overrides), True
