"""Exact-repeat `lookup` latency, with the in-process L1 off and on, interleaved (issue #16).

Runs A/B rounds alternately in one process (the machine is shared and noisy: medians of
rounds, not one long run), on an embedded Redis unless ``SEMCACHE_REDIS_URL`` is set.
``python -m bench.l1_speed --rounds 7 --calls 2000``
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from semcache_plugins import CacheCore, Embedder
from semcache_plugins.embedded import EmbeddedRedis, resolve_redis_url

SYSTEM = {"role": "system", "content": "Answer questions."}


def messages(i: int) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": f"What is the capital of country number {i}?"}]


#: One request: messages, model, params.
Request = tuple[list[dict[str, str]], str, dict[str, Any] | None]


def repeat_ms(
    core: CacheCore, request: Callable[[int], Request], calls: int, distinct: int
) -> list[float]:
    """ms of each of ``calls`` exact-repeat `lookup` calls cycling through requests
    ``request(0..distinct-1)`` (each built afresh per call, as an app does; stored and read
    before). Also what ``python -m bench``'s latency section times (``core_latency``)."""
    times = []
    for n in range(calls):
        sent, model, params = request(n % distinct)
        started = time.perf_counter()
        hit = core.lookup(sent, model, params)
        times.append((time.perf_counter() - started) * 1000)
        if hit is None:
            raise RuntimeError("an exact repeat missed")
    return times


def exact_p50(core: CacheCore, calls: int, distinct: int) -> float:
    """p50 ms of `lookup` over ``calls`` exact repeats cycling through ``distinct`` prompts."""
    return statistics.median(repeat_ms(core, lambda i: (messages(i), "m", None), calls, distinct))


def run(url: str, rounds: int, calls: int, distinct: int, variants: dict[str, Any]) -> None:
    embedder = Embedder()
    embedder.load()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    cores = {
        name: CacheCore(redis_url=url, index_prefix=prefix, embedder=embedder, **kwargs)
        for name, kwargs in variants.items()
    }
    first = next(iter(cores.values()))
    for i in range(distinct):
        first.store(messages(i), {"answer": f"city {i}"}, "m")
    results: dict[str, list[float]] = {name: [] for name in cores}
    for core in cores.values():  # warm-up: connections, L1 fill
        exact_p50(core, distinct * 2, distinct)
    for _ in range(rounds):
        for name, core in cores.items():
            results[name].append(exact_p50(core, calls, distinct))
    base = statistics.median(results[next(iter(results))])
    for name, values in results.items():
        med = statistics.median(values)
        spread = f"{min(values):.4f}-{max(values):.4f}"
        print(f"{name:10s} p50 {med:.4f} ms (rounds {spread}) ratio {med / base:.2f}x")
    if "l1 on" in cores:
        print(coherence(cores["l1 on"], url, distinct).summary())
    for core in cores.values():
        core.close()


@dataclass
class Coherence:
    """After another client's DEL of an entry the L1 holds: ms until `lookup` first missed,
    and how many lookups still hit after the DEL had returned, per trial."""

    seen_ms: list[float]
    stale: list[int]

    def summary(self) -> str:
        seen, trials = sorted(self.seen_ms), len(self.seen_ms)
        return (
            f"DEL by another client -> first miss returned: p50 {statistics.median(seen):.3f} ms, "
            f"p99 {seen[max(int(trials * 0.99) - 1, 0)]:.3f} ms, max {seen[-1]:.3f} ms ({trials} "
            f"trials; a miss runs the semantic tier); lookups that still hit after the DEL "
            f"returned: {sum(self.stale)} in {sum(1 for n in self.stale if n)} of {trials} trials"
        )


def coherence(
    core: CacheCore, url: str, trials: int, request: Callable[[int], Request] | None = None
) -> Coherence:
    """How long after another client's DEL returns the L1 stops serving the entry (spinning
    on `lookup`): the push's travel time plus the listener thread's turn at the GIL.
    ``request(i)``: the i-th trial's request, not yet stored (default: new capital questions)."""
    import redis

    request = request or (lambda i: (messages(10_000 + i), "m", None))
    other = redis.Redis.from_url(url)
    seen: list[float] = []
    stale: list[int] = []
    for i in range(trials):
        question, model, params = request(i)
        core.store(question, {"answer": i}, model, params)
        hit = core.lookup(question, model, params)
        if hit is None:
            raise RuntimeError("a stored entry missed")
        key = core.layout.key(hit.entry_id)
        stop = time.monotonic() + 5
        backend = core.internals.sync_backend
        while backend.l1 is not None and backend.l1.get((key,)) is None:
            core.lookup(question, model, params)
            if time.monotonic() > stop:
                raise RuntimeError("the L1 never held the entry")
        other.delete(key)
        deleted = time.perf_counter()
        served = 0
        while core.lookup(question, model, params) is not None:
            served += 1
        seen.append((time.perf_counter() - deleted) * 1000)
        stale.append(served)
    other.close()
    return Coherence(seen, stale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--distinct", type=int, default=100)
    args = parser.parse_args()
    variants: dict[str, Any] = {"l1 off": {"l1_cache": False}, "l1 on": {"l1_cache": True}}
    url = resolve_redis_url()
    if url is not None:
        run(url, args.rounds, args.calls, args.distinct, variants)
        return
    with EmbeddedRedis() as server:
        run(server.url, args.rounds, args.calls, args.distinct, variants)


if __name__ == "__main__":
    main()
