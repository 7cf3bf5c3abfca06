"""Public value types returned by the cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CacheHit"]


@dataclass(frozen=True)
class CacheHit:
    """A cached answer: what was served, from which tier, and how close the match was."""

    response: Any
    tier: Literal["exact", "semantic"]
    similarity: float  # cosine similarity in 0..1 (1.0 on the exact tier)
    matched_prompt: str  # the user text the entry was stored under (as sent, trimmed)
    entry_id: str
    created_at: float  # unix time the entry was stored
