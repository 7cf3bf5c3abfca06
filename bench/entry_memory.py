"""Where one cache entry's Redis memory goes: per stored field, per index structure, per encoding.

Stores ``--entries`` questions through ``CacheCore.store`` (defaults: no TTL, no signing key, as
the peer benchmark runs it) on an embedded Redis this script starts, then prints

- what an entry's hash costs and, per field, what it costs less without it: ``used_memory``
  per copy over as many copies as entries, outside the index prefix (nothing indexed twice);
- ``FT.INFO``'s index structures per document;
- ``used_memory`` per entry with Redis's default hash encoding (``hashtable``: the vector is
  longer than ``hash-max-listpack-value`` 64) and with ``hash-max-listpack-value 2048`` (the
  whole entry in one ``listpack``), each on a fresh index.

``python -m bench.entry_memory --entries 2000``
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import redis

from bench.core_latency import (
    MODEL,
    PARAMS,
    ask,
    cached_vectors,
    load_questions,
    store_seeded,
    timed,
)
from semcache_plugins import CacheCore, Embedder
from semcache_plugins.embedded import EmbeddedRedis

SYSTEM = {"role": "system", "content": "Answer questions from a Q&A site."}
PROBE = "entry-memory-probe"  # outside every cache's key prefix: never indexed
#: The fields entries gained between the 2026-11-29 and 2026-12-02 full runs.
NEW_FIELDS = ("ns", "gen", "vec", "expires_at")
INDEX_SIZES = (
    "inverted_sz_mb",
    "vector_index_sz_mb",
    "doc_table_size_mb",
    "key_table_size_mb",
    "tag_overhead_sz_mb",
    "total_index_memory_sz_mb",
)


def question(i: int) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": f"What is the capital of country number {i}?"}]


def fill(url: str, embedder: Embedder, entries: int) -> tuple[CacheCore, float]:
    """A fresh cache holding ``entries`` entries; ``used_memory`` bytes per entry it added."""
    client: Any = redis.Redis.from_url(url)
    before = int(client.info("memory")["used_memory"])
    core = CacheCore(redis_url=url, index_prefix=f"mem-{uuid.uuid4().hex[:8]}", embedder=embedder)
    for i in range(entries):
        core.store(question(i), {"answer": i}, "bench-llm")
    time.sleep(0.5)  # background indexing
    added = int(client.info("memory")["used_memory"]) - before
    client.close()
    return core, added / entries


def copies_cost(client: Any, fields: dict[bytes, bytes], copies: int) -> float:
    """``used_memory`` bytes per copy of the hash ``fields``, written ``copies`` times under
    keys as long as an entry's, outside every index (one hash alone is too noisy to weigh)."""
    before = int(client.info("memory")["used_memory"])
    with client.pipeline(transaction=False) as pipe:
        for i in range(copies):
            pipe.hset(f"{PROBE}:{i:040d}", mapping=fields)
        pipe.execute()
    added = int(client.info("memory")["used_memory"]) - before
    with client.pipeline(transaction=False) as pipe:
        for i in range(copies):
            pipe.delete(f"{PROBE}:{i:040d}")
        pipe.execute()
    return added / copies


def field_costs(client: Any, key: str, copies: int, group: tuple[str, ...]) -> None:
    """What the entry hash costs, and what it costs less without each field (and ``group``)."""
    fields = client.hgetall(key)
    whole = copies_cost(client, fields, copies)
    print(
        f"entry hash: {len(fields)} fields, encoding {client.object('encoding', key).decode()}, "
        f"MEMORY USAGE {client.memory_usage(key, samples=0)} B; {whole:,.0f} B of used_memory per "
        f"copy ({copies} copies, keys {len(PROBE) + 41} B)"
    )
    print(f"  {'field':<24} {'value B':>7} {'B less without it':>18}")
    rows = sorted(fields.items(), key=lambda item: -len(item[1]))
    wanted = [((name,), len(value)) for name, value in rows]
    wanted.append((tuple(name.encode() for name in group), 0))
    for names, size in wanted:
        rest = {f: v for f, v in fields.items() if f not in names}
        label = "+".join(name.decode() for name in names)
        print(f"  {label:<24} {size or '':>7} {whole - copies_cost(client, rest, copies):>18,.0f}")


def run(url: str, entries: int) -> None:
    embedder = Embedder()
    embedder.load()
    client: Any = redis.Redis.from_url(url)
    core, per_entry = fill(url, embedder, entries)
    key = next(iter(client.scan_iter(match=core.layout.key("*"), count=1000))).decode()
    field_costs(client, key, entries, NEW_FIELDS)
    info = client.ft(core.layout.name).info()
    docs = int(info["num_docs"])
    sizes = ", ".join(f"{name} {float(info[name]) * 2**20 / docs:.1f}" for name in INDEX_SIZES)
    print(f"FT.INFO per document (B): {sizes}")
    print(f"used_memory per entry, default encoding: {per_entry:,.0f} B ({entries} entries)")
    core.clear()
    core.close()
    default = client.config_get("hash-max-listpack-value")["hash-max-listpack-value"]
    client.config_set("hash-max-listpack-value", 2048)
    try:
        core, per_entry = fill(url, embedder, entries)
        key = next(iter(client.scan_iter(match=core.layout.key("*"), count=1000))).decode()
        print(
            f"used_memory per entry, hash-max-listpack-value 2048: {per_entry:,.0f} B "
            f"(entry hash {client.memory_usage(key, samples=0)} B, "
            f"{client.object('encoding', key).decode()})"
        )
        core.clear()
        core.close()
    finally:
        client.config_set("hash-max-listpack-value", default)
        client.close()


def latency_ab(url: str, embedder: Embedder, entries: int, rounds: int) -> None:
    """Store and lookup cost, default hash encoding (A) against listpack entries (B), in
    alternating rounds: shipped questions with their vectors seeded (Redis's side only), L1 off
    (every exact lookup reads Redis). Per round: a 100-entry ``store_many``, then every pair's
    stored side (exact) and its duplicate (semantic hit or miss: KNN + candidate reads)."""
    client: Any = redis.Redis.from_url(url)
    fill, pairs = load_questions(entries + 100 * rounds)
    pairs = pairs[:200]
    cache = Path.home() / ".cache" / "semcache" / "bench"
    vectors = cached_vectors(embedder, fill, cache, "shipped-fill")
    asked = [text for pair in pairs for text in pair]
    asked_vectors = cached_vectors(embedder, asked, cache, "shipped-pairs-both")
    cores: dict[str, CacheCore] = {}
    for name, listpack in (("A hashtable", 64), ("B listpack", 2048)):
        client.config_set("hash-max-listpack-value", listpack)
        core = CacheCore(
            redis_url=url,
            index_prefix=f"mem-{uuid.uuid4().hex[:8]}",
            embedder=embedder,
            l1_cache=False,
        )
        for text, vector in zip(asked, asked_vectors, strict=True):
            core.internals.work.vectors.put(" ".join(text.split()), vector)
        rows = [(t, {"a": i}, vectors[i]) for i, t in enumerate(fill[:entries])]
        rows += [(a, {"pair": i}, asked_vectors[2 * i]) for i, (a, _) in enumerate(pairs)]
        store_seeded(core, rows)
        cores[name] = core
    times = {name: {"store": [], "exact": [], "other": []} for name in cores}
    for r in range(rounds):
        chunk = slice(entries + 100 * r, entries + 100 * (r + 1))
        rows = [(t, {"r": r}, v) for t, v in zip(fill[chunk], vectors[chunk], strict=True)]
        for name, core in cores.items():
            client.config_set("hash-max-listpack-value", 64 if name.startswith("A") else 2048)
            times[name]["store"].append(timed(partial(store_seeded, core, rows))[1] / len(rows))
            for what, side in (("exact", 0), ("other", 1)):
                ms = [timed(partial(core.lookup, ask(p[side]), MODEL, PARAMS))[1] for p in pairs]
                times[name][what].append(statistics.median(ms))
    client.config_set("hash-max-listpack-value", 64)
    for what in ("store", "exact", "other"):
        base = statistics.median(times["A hashtable"][what])
        for name in cores:
            values = times[name][what]
            med = statistics.median(values)
            print(
                f"{what:<6} {name:<12} {med:.3f} ms (rounds {min(values):.3f}-{max(values):.3f}) "
                f"{med / base:.2f}x"
            )
    for core in cores.values():
        core.clear()
        core.close()
    client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--ab-rounds", type=int, default=0, help="also time store/lookup A/B")
    args = parser.parse_args(argv)
    with EmbeddedRedis() as server:  # its own server: the script changes a server setting
        run(server.url, args.entries)
        if args.ab_rounds:
            embedder = Embedder()
            embedder.load()
            latency_ab(server.url, embedder, args.entries, args.ab_rounds)


if __name__ == "__main__":
    main()
