"""The public surface is pinned: changing it must be a deliberate edit here."""

from __future__ import annotations

import subprocess
import sys

import semcache_plugins

PUBLIC = [
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


def test_all_is_sorted_and_pinned() -> None:
    assert semcache_plugins.__all__ == sorted(semcache_plugins.__all__)
    assert semcache_plugins.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(semcache_plugins, name) is not None
    assert semcache_plugins.calibrate.__module__ == "semcache_plugins._calibrate"


def test_errors_share_one_root() -> None:
    for name in PUBLIC:
        value = getattr(semcache_plugins, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, semcache_plugins.SemcacheError)


def test_adapters_are_imported_lazily() -> None:
    code = (
        "import sys, semcache_plugins; "
        "assert 'litellm' not in sys.modules and 'langchain_core' not in sys.modules; "
        "from semcache_plugins import SemCache; assert 'litellm' in sys.modules; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_every_private_module_declares_all() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(semcache_plugins.__path__):
        if info.name == "__main__":
            continue
        module = importlib.import_module(f"semcache_plugins.{info.name}")
        assert isinstance(getattr(module, "__all__", None), list), info.name
