"""The exact-tier read (``_flows.ReadEntry``: HMGET key, PFCOUNTs, MGET generations) through
the L1 (``_l1``): served from it, or held after a read from Redis with each key's TTL."""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from contextlib import suppress
from operator import is_
from typing import Any

import redis

from ._flows import ReadEntry
from ._l1 import L1Cache, Snapshot
from ._reads import read_result

__all__ = ["ahold", "held_result", "hold"]


def held_result(l1: L1Cache, op: ReadEntry) -> Any:
    """The result of an exact-tier read (``_reads.read_result``) from the L1, or None. Entry
    counts ride along with the entry (not tracked: a stale count only changes the KNN
    strategy). A result derived from the very values the L1 serves now (the same objects; the
    L1 drops what was derived with them) is reused; anything else is derived afresh."""
    keys = (op.key, *op.generation_keys)
    values = l1.get(keys)
    if values is None or len(values[0][1]) != len(op.count_keys):
        return None
    derived = l1.derived(op.key)
    if (
        derived is not None
        and derived[0] == keys
        and len(derived[1]) == len(values)
        and all(map(is_, derived[1], values))
    ):
        return derived[2]
    fields, held_counts = values[0]
    replies = [fields, *held_counts]
    if op.generation_keys:
        replies.append(values[1:])
    result = read_result(op, replies)
    l1.derive(op.key, (keys, values, result))
    return result


def stored_entry(replies: Sequence[Any], counts: int) -> bool:
    """Whether a read found its entry without errors (only those are worth holding)."""
    fields = replies[0]
    return (
        isinstance(fields, list)
        and any(value is not None for value in fields)
        and not any(isinstance(reply, Exception) for reply in replies)
        and len(replies) >= 1 + counts
    )


def ttl_items(
    key: str,
    counts: int,
    generation_keys: Sequence[str],
    replies: Sequence[Any],
    ttls: Sequence[Any],
    sent: float,
) -> list[tuple[str, Any, float]] | None:
    """What to hold of a read, given the ``PTTL`` of each key sent at ``sent`` (monotonic):
    each value expires locally no later than in Redis; None when the entry is gone."""
    items = []
    values = [(list(replies[0]), list(replies[1 : 1 + counts]))]
    if generation_keys:
        values.extend(replies[1 + counts])
    for name, value, ttl in zip((key, *generation_keys), values, ttls, strict=True):
        if isinstance(ttl, Exception) or not isinstance(ttl, int):
            return None
        if ttl == -2 and name == key:
            return None  # expired or deleted since the read
        expires = float("inf") if ttl < 0 else sent + ttl / 1000
        items.append((name, value, expires))
    return items


def _holding(
    l1: L1Cache,
    snap: Snapshot,
    key: str,
    counts: int,
    gens: Sequence[str],
    replies: Any,
) -> Generator[tuple[str, ...], Sequence[Any], None]:
    """The decisions of a hold, without I/O: yields the keys to ask the ``PTTL`` of (nothing if
    the read is not worth holding), is sent the replies, and holds what :func:`ttl_items` keeps."""
    if not stored_entry(replies, counts):
        return
    sent = time.monotonic()
    ttls = yield (key, *gens)
    items = ttl_items(key, counts, gens, replies, ttls, sent)
    if items is not None:
        l1.put(snap, items)


def hold(
    l1: L1Cache,
    snap: Snapshot,
    client: Any,
    key: str,
    counts: int,
    gens: Sequence[str],
    replies: Any,
) -> None:
    """Hold a sync read's entry (one more round trip, for the TTLs); failures only cost the L1."""
    steps = _holding(l1, snap, key, counts, gens, replies)
    names = next(steps, None)
    if names is None:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.pttl(name)
            ttls = pipe.execute(raise_on_error=False)
    except (redis.RedisError, OSError):
        return
    with suppress(StopIteration):
        steps.send(ttls)


async def ahold(
    l1: L1Cache,
    snap: Snapshot,
    client: Any,
    key: str,
    counts: int,
    gens: Sequence[str],
    replies: Any,
) -> None:
    """:func:`hold` for an async client."""
    steps = _holding(l1, snap, key, counts, gens, replies)
    names = next(steps, None)
    if names is None:
        return
    try:
        async with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.pttl(name)
            ttls = await pipe.execute(raise_on_error=False)
    except (redis.RedisError, OSError):
        return
    with suppress(StopIteration):
        steps.send(ttls)
