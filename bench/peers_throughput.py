"""Peer throughput: ``acheck()`` lookups/s with 1, 8 and 32 concurrent asyncio callers.

The throughput section of ``bench.peers_speed`` (same peers, same question lists, RedisVL the
reference); ``bench.throughput`` reuses ``pump`` for its interleaved rounds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from bench.peers import PeerCache
from bench.peers_speed import (
    CALLERS,
    REFERENCE,
    THROUGHPUT_FILL,
    Lab,
    Query,
    Questions,
    forget,
    ratio,
)


@dataclass
class Rate:
    """One throughput setting: lookups per second, how many answered as expected, our batches."""

    per_s: float
    as_expected: int
    batches: list[int]


async def pump(peer: PeerCache, plan: list[Query], callers: int) -> tuple[float, int]:
    """``callers`` tasks draining one shared iterator of ``acheck`` calls; (lookups/s, right)."""
    todo = iter(plan)
    right = 0

    async def caller() -> None:
        nonlocal right
        for _, text, expected in todo:
            got = await peer.acheck(text)  # awaited before ``right`` is read: no lost update
            right += got == expected

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return len(plan) / (time.perf_counter() - started), right


async def throughput(peer: PeerCache, plan: list[Query], spare: list[str]) -> dict[int, Rate]:
    """Every ``CALLERS`` setting on one event loop (async clients are bound to it)."""
    await asyncio.gather(*(peer.acheck(text) for text in spare))
    work = getattr(getattr(peer, "core", None), "_work", None)
    rates: dict[int, Rate] = {}
    for callers in CALLERS:
        forget(peer)
        seen = len(work.batcher.batch_sizes()) if work else 0
        per_s, right = await pump(peer, plan, callers)
        rates[callers] = Rate(per_s, right, work.batcher.batch_sizes()[seen:] if work else [])
    return rates


def throughput_section(
    lab: Lab, q: Questions, lookups: int, seed: int, fill: int = THROUGHPUT_FILL
) -> None:
    print("## Peer throughput\n")
    third = max(1, lookups // 3)
    plan = q.plan(third, seed)
    rates: dict[str, dict[int, Rate]] = {}
    for key in lab.live(seed):
        outcome = lab.run(
            key,
            q.chunks(max(0, fill - third), third),
            lambda peer: asyncio.run(throughput(peer, plan, q.spare)),
        )
        if outcome:
            rates[key] = outcome[0]
    print(
        f"`acheck()` lookups/s with N concurrent asyncio callers draining one list of {len(plan)} "
        f"lookups (1/3 exact, 1/3 paraphrase, 1/3 miss; the same list for every peer) on a "
        f"{max(fill, third):,}-entry cache; ratio to RedisVL in brackets. "
        "*as expected*: the fewest right answers over the settings (a paraphrase missed at the "
        "peer's threshold or a miss query it answers counts as wrong).\n"
    )
    heads = " | ".join(f"{n} caller{'s' if n > 1 else ''}" for n in CALLERS)
    print(f"| peer | {heads} | as expected |")
    print("|---|" + "---:|" * (len(CALLERS) + 1))
    reference = rates.get(REFERENCE)
    for key in (k for k in lab.keys if k in rates):
        cells = " | ".join(
            f"{rates[key][n].per_s:,.0f}/s"
            + ratio(rates[key][n].per_s, reference[n].per_s if reference else None)
            for n in CALLERS
        )
        right = min(rate.as_expected for rate in rates[key].values())
        print(f"| {lab.names[key]} | {cells} | {right}/{len(plan)} |")
    for key in (k for k in lab.keys if k in rates and rates[k][CALLERS[-1]].batches):
        sizes = ", ".join(
            f"{n} caller{'s' if n > 1 else ''}: mean {np.mean(r.batches):.1f}, max "
            f"{max(r.batches)} ({len(r.batches)} batches)"
            for n, r in rates[key].items()
            if r.batches
        )
        print(f"\n{lab.names[key]} embedding micro-batch sizes - {sizes}.")
    print()
