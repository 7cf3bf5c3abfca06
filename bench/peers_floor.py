"""The floor of a new-prompt lookup, timed beside a peer's ``check`` (for ``peers_speed``).

A reference row, not a peer: one query embedding by fastembed's stock session (what the peers
embed with) plus one raw ``FT.SEARCH`` KNN round trip for the nearest neighbour on the index of
the peer it is timed beside, with no cache logic (no filter, no record read, no guard). Any cache
that embeds the query and asks Redis once costs at least this. It is timed on the new prompts
(paraphrase and miss queries), right after each of that peer's ``check`` calls (A, B, A, B in
one process: the ratio survives a noisy machine). On RedisVL's index (FLAT) it is the floor of
RedisVL's ``check``; on ours (HNSW, our EF_RUNTIME) the floor of ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from bench.core_latency import timed
from bench.peers import PeerCache, SharedEmbedder
from semcache_plugins._cache._index import HNSW_EF_RUNTIME, VECTOR_FIELD

__all__ = ["FLOOR_TIERS", "Floor", "floor_rows", "floor_summary"]

#: The tiers a floor is timed on: queries the cache has not seen (their embedding is paid).
FLOOR_TIERS = ("paraphrase", "miss")


@dataclass
class Floor:
    """Embedding + one raw KNN on one peer's index; ``samples`` are ms per tier."""

    client: Any  # redis.Redis: execute_command is untyped
    shared: SharedEmbedder
    command: tuple[str, ...]  # FT.SEARCH up to (not including) the vector parameter
    label: str
    dtype: type = np.float32
    samples: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in FLOOR_TIERS})

    @classmethod
    def beside(cls, key: str, peer: PeerCache, url: str, shared: SharedEmbedder) -> Floor | None:
        """The floor on ``peer``'s index (RedisVL's or ours), None for other peers."""
        client = redis.Redis.from_url(url, protocol=2)  # reply: [total, id, [field, value]]
        core = getattr(peer, "core", None)
        if key == "ours" and core is not None:
            knn = f"*=>[KNN 1 @{VECTOR_FIELD} $vector EF_RUNTIME {HNSW_EF_RUNTIME} AS d]"
            name, label = core.layout.name, "ours' index (HNSW)"
            dtype = np.float16 if core.layout.dtype == "float16" else np.float32
        elif key == "redisvl":
            cache = getattr(peer, "cache")  # noqa: B009 (RedisVLPeer.cache: a SemanticCache)
            knn, name = "*=>[KNN 1 @prompt_vector $vector AS d]", cache.index.name
            label, dtype = "RedisVL's index (FLAT)", np.float32
        else:
            client.close()
            return None
        command = ("FT.SEARCH", name, knn, "RETURN", "1", "d", "SORTBY", "d", "DIALECT", "2")
        return cls(
            client, shared, (*command, "LIMIT", "0", "1", "PARAMS", "2", "vector"), label, dtype
        )

    def lookup(self, text: str) -> Any:
        """What the floor does: embed the text, ask Redis for its nearest neighbour."""
        vector = self.shared.vectors([text])[0].astype(self.dtype).tobytes()
        return self.client.execute_command(*self.command, vector)

    def time(self, tier: str, text: str) -> None:
        if tier in self.samples:
            reply, ms = timed(lambda: self.lookup(text))
            if not reply or int(reply[0]) < 1:
                raise RuntimeError(f"the floor's KNN on {self.label} found nothing")
            self.samples[tier].append(ms)

    def close(self) -> None:
        self.client.close()


def floor_rows(
    size: int, tier: str, floors: Iterable[Floor], reference: list[float] | None, cell: Any
) -> Iterable[str]:
    """Table rows of the floors of one size and tier, ratio to RedisVL's ``check``."""
    for floor in floors:
        ms = floor.samples.get(tier)
        if ms:
            name = f"*floor (reference, not a peer): stock embedding + raw KNN 1 on {floor.label}*"
            p50, p99 = cell(ms, reference, 50), cell(ms, reference, 99)
            yield f"| {size:,} | {tier} | {name} | {p50} | {p99} | {len(ms)}/{len(ms)} |"


def floor_summary(
    entries: int, by_peer: dict[str, dict[str, list[float]]], floors: Iterable[Floor]
) -> str | None:
    """One line per cache size for #16's new-prompt goal: p50 over paraphrase and miss queries
    pooled, of RedisVL's check, ours and each floor, as ratios to RedisVL's check."""
    reference = [ms for tier in FLOOR_TIERS for ms in by_peer.get("redisvl", {}).get(tier, [])]
    if not reference:
        return None
    base = float(np.percentile(reference, 50))
    parts = [f"RedisVL `check` {base:.2f} ms"]
    ours = [ms for tier in FLOOR_TIERS for ms in by_peer.get("ours", {}).get(tier, [])]
    if ours:
        parts.append(
            f"ours {np.percentile(ours, 50):.2f} ms ({np.percentile(ours, 50) / base:.2f}x)"
        )
    for floor in floors:
        pooled = [ms for tier in FLOOR_TIERS for ms in floor.samples[tier]]
        if pooled:
            p50 = float(np.percentile(pooled, 50))
            parts.append(f"floor on {floor.label} {p50:.2f} ms ({p50 / base:.2f}x)")
    return f"- {entries:,} entries, new prompts (paraphrase + miss, p50): " + "; ".join(parts)
