"""Where semcache-plugins keeps its files (models, embedded Redis data)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The cache dir: $SEMCACHE_CACHE_DIR, else $XDG_CACHE_HOME/semcache, else ~/.cache/semcache."""
    explicit = os.environ.get("SEMCACHE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "semcache"
