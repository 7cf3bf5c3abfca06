"""Redis-side cost of one peer cache: memory per entry and index build time (for ``peers_speed``).

``measure`` runs one peer alone on the server: snapshot (``used_memory``, ``dbsize``, ``FT._LIST``),
construct, ``fill()`` chunk by chunk, wait until every new search index reports indexing finished,
run the caller's work on it, close it and wait until ``dbsize`` and ``used_memory`` are back to the
snapshot (FT.DROPINDEX frees in the background: a baseline taken too early hides the next peer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from bench.peers import Entry, PeerCache

__all__ = ["Footprint", "RedisProbe", "measure"]

T = TypeVar("T")


@dataclass
class Footprint:
    """What filling one peer cost on the Redis server."""

    entries: int = 0
    bytes_used: int = 0
    build_s: float = 0.0
    indexes: list[str] = field(default_factory=list)
    leftover_keys: int = 0
    leftover_bytes: int = 0

    @property
    def per_entry(self) -> float:
        return self.bytes_used / self.entries if self.entries else 0.0


class RedisProbe:
    """Server-wide readings through a plain client of its own."""

    def __init__(self, url: str) -> None:
        # Any: redis-py leaves execute_command and ft().info untyped.
        self.client: Any = redis.Redis.from_url(url, decode_responses=True)

    def indexes(self) -> set[str]:
        return {str(name) for name in self.client.execute_command("FT._LIST")}

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def dbsize(self) -> int:
        return int(self.client.dbsize())

    def indexed(self, name: str) -> bool:
        """FT.INFO of ``name`` says the background scan is done."""
        info = self.client.ft(name).info()
        return int(float(info.get("indexing", 0))) == 0 and (
            float(info.get("percent_indexed", 1)) >= 1.0
        )

    def wait_indexed(self, names: Iterable[str], timeout: float = 1800.0) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while not self.indexed(name):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"index {name} still indexing after {timeout:.0f} s")
                time.sleep(0.02)

    def wait_dbsize(self, baseline: int, timeout: float = 30.0) -> int:
        """Keys above ``baseline`` still present after up to ``timeout`` s (0: all gone)."""
        deadline = time.monotonic() + timeout
        while (extra := self.dbsize() - baseline) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        return max(extra, 0)

    def settle(self, baseline: int, slack: int = 1 << 20, timeout: float = 60.0) -> int:
        """Wait for background frees (dropped indexes go asynchronously): until ``used_memory``
        is within ``slack`` of ``baseline`` or unchanged for 0.5 s; the bytes still above it."""
        deadline = time.monotonic() + timeout
        last, still = self.used_memory(), 0
        while last - baseline > slack and still < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.used_memory()
            still = still + 1 if abs(now - last) < 16_384 else 0
            last = now
        return max(last - baseline, 0)


def measure(
    probe: RedisProbe,
    factory: Callable[[], PeerCache],
    chunks: Iterable[Sequence[Entry]],
    work: Callable[[PeerCache], T],
) -> tuple[T, Footprint]:
    """Fill a fresh peer from ``chunks``, run ``work`` on it, close it; its result and footprint.

    Memory is ``used_memory`` after filling and indexing minus before construction; build time is
    ``fill()`` plus the wait for indexing (construction excluded). Errors propagate after closing.
    """
    before_indexes, before_memory, before_keys = (
        probe.indexes(),
        probe.used_memory(),
        probe.dbsize(),
    )
    peer = factory()
    footprint = Footprint()
    try:
        started = time.perf_counter()
        for chunk in chunks:
            peer.fill(chunk)
            footprint.entries += len(chunk)
        footprint.indexes = sorted(probe.indexes() - before_indexes)
        probe.wait_indexed(footprint.indexes)
        footprint.build_s = time.perf_counter() - started
        footprint.bytes_used = probe.used_memory() - before_memory
        result = work(peer)
    finally:
        peer.close()
        footprint.leftover_keys = probe.wait_dbsize(before_keys)
        footprint.leftover_bytes = probe.settle(before_memory)
    return result, footprint
