"""Where semcache-plugins keeps its files (models, embedded Redis data)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["cache_dir", "state_dir"]


def cache_dir() -> Path:
    """The cache dir: $SEMCACHE_CACHE_DIR, else $XDG_CACHE_HOME/semcache, else ~/.cache/semcache."""
    explicit = os.environ.get("SEMCACHE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "semcache"


def state_dir() -> Path:
    """Where ``semcache redis start`` records its server: $SEMCACHE_STATE_DIR, else a folder of
    the cache dir keyed by this installation (the package's own directory: a checkout's ``src``
    or a venv's site-packages), so two checkouts or venvs never share (or stop) one server."""
    explicit = os.environ.get("SEMCACHE_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    return cache_dir() / "redis" / "state" / digest
