"""redis-py's pure-Python parser against hiredis on the cache's own round trips (issue #16).

Interleaved A/B rounds in one process (shared, noisy machine: medians of round medians): the
exact-tier read pipeline (HMGET of a stored entry + 2 PFCOUNT + MGET of 7 counters) and a
10-NN ``FT.SEARCH``, each on a client built with one parser class or the other.
``python -m bench.parser_speed --rounds 7 --calls 2000``
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import redis
from redis._parsers import _HiredisParser, _RESP2Parser
from redis.utils import HIREDIS_AVAILABLE

from semcache_plugins import CacheCore, Embedder
from semcache_plugins._cache._flows import ReadEntry, Search
from semcache_plugins._cache._index import knn_command
from semcache_plugins._cache._reads import queue_reads
from semcache_plugins.embedded import EmbeddedRedis, resolve_redis_url


def timed(fn: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def run(url: str, rounds: int, calls: int) -> None:
    embedder = Embedder()
    embedder.load()
    core = CacheCore(redis_url=url, index_prefix=f"bench{uuid.uuid4().hex[:8]}", embedder=embedder)
    rng = np.random.default_rng(0)
    for i in range(300):
        core.store([{"role": "user", "content": f"question {i} {rng.random()}"}], {"a": i}, "m")
    plan = core.internals.plan([{"role": "user", "content": "question 1"}], "m", None, None)
    assert plan is not None
    layout = core.layout
    hit = core.lookup([{"role": "user", "content": "question 0 0.6369616873214543"}], "m")
    key = layout.key(hit.entry_id) if hit is not None else layout.key(plan.entry_id)
    from semcache_plugins._cache._generations import plan_generation_keys

    read = ReadEntry(
        key, (layout.count_key(plan.scope), layout.count_key()), plan_generation_keys(layout, plan)
    )
    vector = embedder.embed(["question 7"])[0]
    search = Search(knn_command(layout, layout.vector_bytes(vector), None, None))
    parsers = {"python": _RESP2Parser, "hiredis": _HiredisParser}
    clients = {name: redis.Redis.from_url(url, parser_class=cls) for name, cls in parsers.items()}

    def exact(client: redis.Redis) -> None:
        with client.pipeline(transaction=False) as pipe:
            queue_reads(pipe, read)
            pipe.execute(raise_on_error=False)

    def knn(client: redis.Redis) -> None:
        client.execute_command(*search.args)

    for name, op in (("exact read", exact), ("10-NN search", knn)):
        results: dict[str, list[float]] = {p: [] for p in parsers}
        for _ in range(rounds):
            for parser, client in clients.items():
                results[parser].append(timed(lambda c=client, f=op: f(c), calls))  # type: ignore[misc]
        base = statistics.median(results["python"])
        for parser, values in results.items():
            med = statistics.median(values)
            print(
                f"{name:13s} {parser:8s} p50 {med:.4f} ms "
                f"(rounds {min(values):.4f}-{max(values):.4f}) ratio {med / base:.2f}x"
            )
    for client in clients.values():
        client.close()
    core.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    if not HIREDIS_AVAILABLE:
        raise SystemExit("hiredis is not installed")
    url = resolve_redis_url()
    if url is not None:
        run(url, args.rounds, args.calls)
        return
    with EmbeddedRedis() as server:
        run(server.url, args.rounds, args.calls)


if __name__ == "__main__":
    main()
