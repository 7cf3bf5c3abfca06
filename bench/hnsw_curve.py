"""HNSW parameters from a measured curve: build time, KNN recall@10 and query latency.

For each M and EF_CONSTRUCTION a fresh index with those parameters is filled with ``--entries``
questions through ``store_seeded`` (our bulk store path, all in one scope, vectors computed once
and cached under ``--cache``) and timed until FT.INFO reports indexing done (what the peer
benchmark reports as build time). Then, for each EF_RUNTIME, ``--queries`` held-out questions (the
paired duplicates, never stored) run our KNN query with our real scope filter and hybrid policy:

- recall@10: the K=10 query's ids against numpy brute force (cosine) over the stored vectors;
- p50 ms: our lookup's own query (K = ``KNN_CANDIDATES``), one round trip, sync client.

Build time is split into the client's CPU (this process) and the Redis main thread's CPU
(``INFO cpu``), so the server's HNSW insertion cost is seen apart from ours.

``--rounds N``: instead of the curve, N interleaved rounds of the peer benchmark's build
(``peers_memory.measure``: ``fill()`` in chunks of 5,000 plus the wait for FT.INFO) of RedisVL's
``SemanticCache`` (FLAT) and of ours at its defaults, on the same entries; the median of the
round ratios with their spread.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis
from redisvl.index import SearchIndex

from bench.core_latency import (
    MODEL,
    PARAMS,
    ask,
    cached_vectors,
    drop_cache,
    load_questions,
    store_seeded,
    tag,
)
from bench.data import add_quora_arguments, quora_from
from bench.peers import Entry
from bench.peers.base import SharedEmbedder
from bench.peers.ours import OursPeer
from bench.peers.redisvl_peer import RedisVLPeer
from bench.peers_memory import RedisProbe, measure
from semcache_plugins import CacheCore, Embedder
from semcache_plugins._cache._index import (
    IndexLayout,
    entry_filter,
    hybrid_policy,
    knn_command,
    search_rows,
)

SLICE = 10_000


@dataclass(frozen=True)
class Build:
    """One timed fill of a fresh index: wall seconds, and CPU seconds on each side."""

    wall_s: float
    client_cpu_s: float
    server_cpu_s: float
    slices_ms: tuple[float, ...]  # Redis CPU ms per entry in each successive 10k of the fill


def server_cpu(client: Any) -> float:
    """CPU seconds of the Redis main thread (where RediSearch indexes each written vector)."""
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def create_index(
    client: redis.Redis, layout: IndexLayout, algorithm: str, m: int = 16, ef_c: int = 200
) -> None:
    """Our index schema with other vector parameters (``algorithm`` "hnsw" or "flat"), made
    before the cache's first write so the cache finds it already there."""
    schema = layout.schema()
    attrs = schema["fields"][-1]["attrs"]
    attrs["algorithm"] = algorithm
    if algorithm == "hnsw":
        attrs.update(m=m, ef_construction=ef_c)
    else:
        attrs.pop("m", None)
        attrs.pop("ef_construction", None)
    SearchIndex.from_dict(schema, redis_client=client).create(overwrite=False)


def timed_build(
    core: CacheCore, probe: RedisProbe, texts: Sequence[str], vectors: np.ndarray
) -> Build:
    """Fill ``core`` and wait until its index is done; timings as ``Build``."""
    rows = [(text, {"a": i}, vectors[i]) for i, text in enumerate(texts)]
    cpu0, server0, started = client_cpu(), server_cpu(probe.client), time.perf_counter()
    slices, last = [], server0
    for start in range(0, len(rows), SLICE):
        store_seeded(core, rows[start : start + SLICE])
        now = server_cpu(probe.client)
        slices.append((now - last) * 1e3 / len(rows[start : start + SLICE]))
        last = now
    probe.wait_indexed([core.layout.name])
    wall = time.perf_counter() - started
    return Build(wall, client_cpu() - cpu0, server_cpu(probe.client) - server0, tuple(slices))


def recall_and_latency(
    core: CacheCore, queries: np.ndarray, truth: np.ndarray, keys: dict[str, int], ef: int
) -> tuple[float, float]:
    """Mean recall@10 of our filtered KNN, and p50 ms of our lookup's query, at ``ef``."""
    layout = core.layout
    client: Any = core.internals.sync_backend.client()
    plan = core.internals.plan(ask("scope probe"), MODEL, PARAMS, None)
    expression = entry_filter(layout, scope=plan.scope, exclude_tool_calls=True)
    policy = hybrid_policy(len(keys), len(keys))
    found = 0
    ms: list[float] = []
    for vector, nearest in zip(queries, truth, strict=True):
        blob = layout.vector_bytes(vector)
        rows = search_rows(
            client.execute_command(
                *knn_command(layout, blob, expression, policy, k=10, ef_runtime=ef)
            )
        )
        found += len({keys[row["id"]] for row in rows} & set(nearest.tolist()))
        command = knn_command(layout, blob, expression, policy, ef_runtime=ef)
        started = time.perf_counter()
        client.execute_command(*command)
        ms.append((time.perf_counter() - started) * 1e3)
    return found / (10 * len(queries)), float(np.percentile(ms, 50))


def brute_force(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The 10 nearest stored rows (cosine) of each query: the ground truth."""
    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    sims = queries / np.linalg.norm(queries, axis=1, keepdims=True) @ unit.T
    return np.argsort(-sims, axis=1)[:, :10]


def run(args: argparse.Namespace) -> None:
    embedder = Embedder()
    embedder.load()
    if args.vectors is not None:  # unit vectors computed elsewhere: stored rows, then queries
        rows = np.load(args.vectors)[: args.entries + args.queries]
        vectors, queries = rows[: args.entries], rows[args.entries :]
        texts = [f"stored question number {i}" for i in range(len(vectors))]
        source = f"{args.vectors.name} (placeholder texts: only the vectors are indexed)"
    else:
        quora = quora_from(args)
        texts, pairs = load_questions(args.entries, quora)
        vectors = cached_vectors(embedder, texts, args.cache, f"{tag(quora)}-fill")
        query_texts = [b for _, b in pairs[: args.queries]]
        queries = cached_vectors(embedder, query_texts, args.cache, f"{tag(quora)}-queries")
        source = f"{tag(quora)} questions, queries = held-out duplicates"
    if len(vectors) < args.entries or not len(queries):
        raise SystemExit(f"only {len(vectors)} entries and {len(queries)} queries available")
    truth = brute_force(vectors, queries)
    probe = RedisProbe(args.redis_url)
    raw = redis.Redis.from_url(args.redis_url)
    grid = list(itertools.product(args.m, args.ef_construction))
    growth: list[str] = []
    print(
        f"## HNSW curve: {args.entries:,} entries in one scope, {len(queries)} held-out queries "
        f"({source})\n"
    )
    print(
        "| M | EF_CONSTRUCTION | build s | client CPU s | Redis CPU s | EF_RUNTIME "
        "| recall@10 | p50 ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m, ef_c in grid:
        core = CacheCore(
            redis_url=args.redis_url,
            index_prefix=f"bench-hnsw-{uuid.uuid4().hex[:8]}",
            embedder=embedder,
        )
        try:
            create_index(raw, core.layout, "hnsw", m, ef_c)
            build = timed_build(core, probe, texts, vectors)
            keys = {
                core.layout.key(core.internals.plan(ask(text), MODEL, PARAMS, None).entry_id): i
                for i, text in enumerate(texts)
            }
            for ef in args.ef_runtime:
                recall, p50 = recall_and_latency(core, queries, truth, keys, ef)
                print(
                    f"| {m} | {ef_c} | {build.wall_s:.1f} | {build.client_cpu_s:.1f} | "
                    f"{build.server_cpu_s:.1f} | {ef} | {recall:.4f} | {p50:.3f} |",
                    flush=True,
                )
            growth.append(
                f"- M {m}, EF_CONSTRUCTION {ef_c}: "
                + ", ".join(f"{ms:.3f}" for ms in build.slices_ms)
            )
        finally:
            drop_cache(core)
            core.close()
    print(f"\nRedis main-thread CPU ms per entry written, by successive {SLICE:,} entries:\n")
    print("\n".join(growth))
    print(f"\nload: {Path('/proc/loadavg').read_text().split()[:3]}")


def versus_redisvl(args: argparse.Namespace) -> None:
    """Interleaved builds of RedisVL (FLAT) and ours, as the peer benchmark times them."""
    embedder = Embedder()
    embedder.load()
    if args.vectors is not None:
        vectors = np.load(args.vectors)[: args.entries]
        texts = [f"stored question number {i}" for i in range(len(vectors))]
    else:
        quora = quora_from(args)
        texts = load_questions(args.entries, quora)[0]
        vectors = cached_vectors(embedder, texts, args.cache, f"{tag(quora)}-fill")
    entries = [Entry(t, f"fill-{i}", vectors[i]) for i, t in enumerate(texts)]
    chunks = [entries[i : i + 5000] for i in range(0, len(entries), 5000)]
    probe, shared = RedisProbe(args.redis_url), SharedEmbedder(embedder)
    peers: dict[str, Any] = {
        "RedisVL FLAT": lambda: RedisVLPeer(args.redis_url, shared),
        "ours": lambda: OursPeer(args.redis_url, shared),
    }
    seconds: dict[str, list[float]] = {name: [] for name in peers}
    print(f"## Build of {len(entries):,} entries: RedisVL FLAT vs ours, {args.rounds} rounds\n")
    for round_no in range(args.rounds):
        order = list(peers) if round_no % 2 == 0 else list(reversed(peers))
        for name in order:
            footprint = measure(probe, peers[name], chunks, lambda _: None)[1]
            seconds[name].append(footprint.build_s)
            print(f"round {round_no + 1}: {name} {footprint.build_s:.2f} s", flush=True)
    ratios = [o / r for o, r in zip(seconds["ours"], seconds["RedisVL FLAT"], strict=True)]
    print(
        f"\nmedian build s: RedisVL FLAT {np.median(seconds['RedisVL FLAT']):.2f}, ours "
        f"{np.median(seconds['ours']):.2f}; ratio median {np.median(ratios):.2f}x "
        f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]}")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--m", type=_ints, default=[8, 16, 32])
    parser.add_argument("--ef-construction", type=_ints, default=[64, 100, 200])
    parser.add_argument("--ef-runtime", type=_ints, default=[10, 20, 50, 100])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "semcache" / "bench")
    parser.add_argument(
        "--vectors", type=Path, default=None, help=".npy of unit vectors: entries, then queries"
    )
    parser.add_argument("--rounds", type=int, default=0, help="RedisVL vs ours builds instead")
    add_quora_arguments(parser)
    args = parser.parse_args(argv)
    versus_redisvl(args) if args.rounds else run(args)


if __name__ == "__main__":
    main()
