"""Bulk warming (``store_many``) writes every entry whole: its expiry, signature, generation and
entry counts, across batches and write transactions, with the generations of several scopes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from semcache_plugins import CacheCore
from semcache_plugins._cache._generations import generation_token, plan_generation_keys
from semcache_plugins._cache._warm import WRITES_PER_ROUND_TRIP, WarmItem
from semcache_plugins._records import decode_record, vector_digest

PARAMS = {"temperature": 0}
SYSTEMS = ("You are a billing assistant.", "You are a travel agent.", "Answer in French.")


def _items(count: int, ttl: float | None) -> list[WarmItem]:
    """Questions spread over three system prompts and two models (six scopes)."""
    return [
        WarmItem(
            [
                {"role": "system", "content": SYSTEMS[n % 3]},
                {"role": "user", "content": f"What is the cost of add-on number {n}?"},
            ],
            {"n": n},
            f"model-{n % 2}",
            PARAMS,
            ttl,
        )
        for n in range(count)
    ]


@pytest.mark.parametrize(
    ("count", "batch_size", "ttl", "signing_key"),
    [
        (WRITES_PER_ROUND_TRIP * 2 + 5, 64, None, None),  # several batches and transactions
        (WRITES_PER_ROUND_TRIP + 1, 512, 90.2, "k3y"),  # one batch, signed
        (7, 3, 30, "other-key"),  # batches smaller than a transaction
    ],
)
def test_every_warmed_entry_is_whole(
    make_core: Callable[..., CacheCore],
    redis_client: redis.Redis,
    count: int,
    batch_size: int,
    ttl: float | None,
    signing_key: str | None,
) -> None:
    core = make_core(signing_key=signing_key, ttl=3600)
    core.invalidate(system_prompt=SYSTEMS[1])  # one scope's generation is no longer the first
    items = _items(count, ttl)
    seen: list[int] = []
    assert core.store_many(items, batch_size=batch_size, progress=seen.append) == count
    assert sum(seen) == count and core.stats()["stores"] == count
    expiry = 3600 if ttl is None else int(ttl) + 1  # rounded up
    layout = core.layout
    key = None if signing_key is None else signing_key.encode()
    counted: dict[str, set[str]] = {}
    for item in items:
        plan = core.internals.plan(item.messages, item.model, item.params, None)
        entry = layout.key(plan.entry_id)
        fields: dict[Any, Any] = redis_client.hgetall(entry)
        assert fields, f"entry {entry} missing"
        assert 0 < redis_client.ttl(entry) <= expiry
        text = {k.decode(): v for k, v in fields.items()}
        record = decode_record(text, entry_id=plan.entry_id, signing_key=key)  # sig + vector
        assert record.response == item.response and record.scope == plan.scope
        assert (b"sig" in fields) == (signing_key is not None)
        assert text["vec"].decode() == vector_digest(text["embedding"])
        current = generation_token(redis_client.mget(plan_generation_keys(layout, plan)))
        assert record.generation == current
        for count_key in (layout.count_key(plan.scope), layout.count_key()):
            counted.setdefault(count_key, set()).add(entry)
    for count_key, keys in counted.items():
        # a HyperLogLog: an estimate (0.81% standard error), 0 when no entry was counted
        assert abs(redis_client.pfcount(count_key) - len(keys)) <= max(1, 0.03 * len(keys))
        assert 0 < redis_client.ttl(count_key) <= expiry
    # served, each from its own scope (controls: a warmed entry hits, another scope does not)
    first, second = items[0], items[1]
    hit = core.lookup(first.messages, first.model, PARAMS)
    assert hit is not None and hit.tier == "exact" and hit.response == first.response
    foreign = core.lookup([first.messages[0], second.messages[1]], first.model, PARAMS)
    assert foreign is None or foreign.response != second.response


def test_a_warmed_entry_invalidated_afterwards_is_not_served(
    make_core: Callable[..., CacheCore],
) -> None:
    core = make_core()
    items = _items(9, None)
    assert core.store_many(items, batch_size=4) == 9
    core.invalidate(system_prompt=SYSTEMS[0])
    for n, item in enumerate(items):
        hit = core.lookup(item.messages, item.model, PARAMS)
        if n % 3 == 0:
            assert hit is None
        else:
            assert hit is not None and hit.response == item.response


def _unwritable(reason: str, n: int) -> WarmItem:
    question = [{"role": "user", "content": f"Which plan suits team number {n}?"}]
    if reason == "ttl_zero":
        return WarmItem(question, {"n": n}, "model-0", PARAMS, 0)
    if reason == "too_long":
        long = [{"role": "user", "content": f"team {n} " + "very long question " * 900}]
        return WarmItem(long, {"n": n}, "model-0", PARAMS)
    return WarmItem(question, {"n": n, "raw": {1, 2}}, "model-0", PARAMS)  # a set: not JSON


@pytest.mark.parametrize("reason", ["ttl_zero", "too_long", "not_serializable"])
def test_items_not_written_are_counted_as_skips_by_reason(
    make_core: Callable[..., CacheCore], reason: str
) -> None:
    """Each unwritable item is one skip with its reason (read from ``stats()``, the event
    stream's counters); the writable items of the same batches are all written and served."""
    core = make_core()
    kept = _items(5, None)
    skipped = [_unwritable(reason, n) for n in range(3)]
    mixed = [item for pair in zip(kept, skipped, strict=False) for item in pair] + kept[3:]
    assert core.store_many(mixed, batch_size=2) == len(kept)
    stats = core.stats()
    assert stats["stores"] == len(kept)
    assert stats["skipped_by_reason"] == {reason: len(skipped)}
    for item in skipped:
        assert core.lookup(item.messages, item.model, PARAMS) is None
    for item in kept:  # controls: the batch-mates are served
        hit = core.lookup(item.messages, item.model, PARAMS)
        assert hit is not None and hit.response == item.response
