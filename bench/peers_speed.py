"""Peer semantic caches head to head on one Redis: lookup latency, throughput, memory, index build.

Every peer in ``bench.peers`` runs in this one process with the same ONNX MiniLM (``SharedEmbedder``
without memo: every lookup pays its own embedding); RedisVL's ``SemanticCache`` is the reference
every figure is a ratio to. Caches hold real questions (as in ``core_latency``: Quora's with
``--quora``, else the shipped datasets; vectors precomputed and kept on disk) plus the stored side
of duplicate pairs. Queries: a stored pair question again (exact), its duplicate (paraphrase;
counted only when that pair's answer comes back) and a question whose nearest stored neighbour is
far below any threshold (miss; counted only on None); then the exact queries once more (exact
repeat: ours serves them from its in-process L1). Beside RedisVL and ours, the floor of a
new-prompt lookup on their index (``bench.peers_floor``: a reference row, not a peer). Peers run
one at a time, alone on the server, in a seeded random order, on one seeded shuffled query list.
A peer whose module is missing or which fails is skipped with a note.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bench.core_latency import cached_vectors, load_questions, tag, timed
from bench.data import add_quora_arguments, question_rows, quora_from
from bench.peers import PEER_CLASSES, Entry, PeerCache, SharedEmbedder, make_peer
from bench.peers_floor import Floor, floor_rows, floor_summary
from bench.peers_memory import Footprint, RedisProbe, measure
from semcache_plugins import Embedder

REFERENCE = "redisvl"
TIERS = ("exact", "paraphrase", "miss")
#: The latency table's tiers: an exact query asked a second time (after the timed list) too.
LATENCY_TIERS = (*TIERS, "exact repeat")
CALLERS = (1, 8, 32)
THROUGHPUT_FILL = 1000
WARMUP = 8
CHUNK = 5000
#: Extra fills at the largest size for memory only: peer key -> options of its float16 variant.
FLOAT16 = {"redisvl": {"dtype": "float16"}, "ours": {"vector_dtype": "float16"}}

T = TypeVar("T")
Query = tuple[str, str, str | None]  # tier, text, the answer it must get (None: a miss)


def answer(i: int) -> str:
    return f"pair-{i}"


@dataclass
class Questions:
    """Fill questions with vectors, duplicate pairs (stored side embedded) and miss queries."""

    fill: list[str]
    fill_vectors: np.ndarray
    pairs: list[tuple[str, str]]
    pair_vectors: np.ndarray
    misses: list[str]
    miss_similarity: float  # highest cosine similarity of a miss query to any stored question
    spare: list[str]  # warm-up queries, never timed
    source: str  # where the questions come from

    def chunks(self, size: int, pairs: int) -> Iterator[list[Entry]]:
        """``size`` fill entries then ``pairs`` pair entries, built lazily per chunk."""
        for start in range(0, size, CHUNK):
            stop = min(size, start + CHUNK)
            yield [
                Entry(self.fill[i], f"fill-{i}", self.fill_vectors[i]) for i in range(start, stop)
            ]
        if pairs:
            yield [
                Entry(a, answer(i), self.pair_vectors[i])
                for i, (a, _) in enumerate(self.pairs[:pairs])
            ]

    def query(self, tier: str, i: int) -> Query:
        if tier == "exact":
            return tier, self.pairs[i][0], answer(i)
        if tier == "paraphrase":
            return tier, self.pairs[i][1], answer(i)
        return tier, self.misses[i], None

    def plan(self, per_tier: int, seed: int) -> list[Query]:
        """``per_tier`` queries of each tier, shuffled (the same list for every peer)."""
        queries = [self.query(tier, i) for tier in TIERS for i in range(per_tier)]
        random.Random(seed).shuffle(queries)
        return queries


def load(
    embedder: Embedder,
    largest: int,
    pairs: int,
    misses: int,
    cache: Path,
    quora: Path | None = None,
) -> Questions:
    """Questions for every run; misses are the candidates farthest from everything stored."""
    texts, all_pairs = load_questions(largest + 4 * misses + WARMUP, quora)
    if len(all_pairs) < pairs:
        raise SystemExit(f"only {len(all_pairs)} duplicate pairs; ask for fewer samples/lookups")
    if len(texts) < largest + misses + WARMUP:
        raise SystemExit(f"only {len(texts)} distinct questions; pass --quora or smaller --sizes")
    fill, candidates, chosen = texts[:largest], texts[largest:], all_pairs[:pairs]
    source = tag(quora)
    fill_vectors = cached_vectors(embedder, fill, cache, f"{source}-fill")
    pair_vectors = cached_vectors(embedder, [a for a, _ in chosen], cache, f"{source}-pairs")
    candidate_vectors = cached_vectors(embedder, candidates, cache, f"{source}-after-{largest}")
    nearest = (candidate_vectors @ pair_vectors.T).max(axis=1)
    for start in range(0, largest, 10_000):
        block = candidate_vectors @ fill_vectors[start : start + 10_000].T
        nearest = np.maximum(nearest, block.max(axis=1))
    order = np.argsort(nearest)
    return Questions(
        fill=fill,
        fill_vectors=fill_vectors,
        pairs=chosen,
        pair_vectors=pair_vectors,
        misses=[candidates[i] for i in order[:misses]],
        miss_similarity=float(nearest[order[misses - 1]]),
        spare=[candidates[i] for i in order[misses : misses + WARMUP]],
        source=question_rows(quora)[0],
    )


def forget(peer: PeerCache) -> None:
    """Empty ours' memo of recent query vectors (no query text repeats within one timed pass)."""
    core = getattr(peer, "core", None)
    if core is not None:
        core.internals.work.vectors.clear()


def ratio(value: float, reference: float | None) -> str:
    if not reference:
        return ""
    r = value / reference
    return f" ({r:.2f}x)" if r >= 0.1 else f" ({r:.3f}x)"


@dataclass
class Lab:
    """One Redis, one embedder, the peers still standing and why the others were skipped."""

    url: str
    shared: SharedEmbedder
    keys: list[str]
    probe: RedisProbe = field(init=False)
    names: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.probe = RedisProbe(self.url)

    def live(self, seed: int) -> list[str]:
        """Peers not skipped so far, in a seeded random order."""
        keys = [k for k in self.keys if k not in self.skipped]
        random.Random(seed).shuffle(keys)
        return keys

    def run(
        self,
        key: str,
        chunks: Iterator[list[Entry]],
        work: Callable[[PeerCache], T],
        label: str | None = None,
        **options: Any,
    ) -> tuple[T, Footprint] | None:
        """``measure`` peer ``key``; None (and a note under ``label``) when it fails."""
        label = label or key

        def build() -> PeerCache:
            peer = make_peer(key, self.url, self.shared, **options)
            self.names.setdefault(label, peer.name)
            note = peer.notes.rstrip(".")
            note = note if key == "ours" else f"{note}; {self.shared.model_note}"
            self.notes.setdefault(key, note)
            return peer

        try:
            outcome = measure(self.probe, build, chunks, work)
        except Exception as exc:  # a missing module, a constructor or a lookup that fails
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            self.skipped[label] = reason[:200] + ("..." if len(reason) > 200 else "")
            print(f"_skipped {label}: {self.skipped[label]}_\n")
            return None
        footprint = outcome[1]
        if footprint.leftover_keys or footprint.leftover_bytes > 1 << 20:
            print(
                f"_note: {label} left {footprint.leftover_keys} keys and "
                f"{footprint.leftover_bytes / 1e6:.1f} MB of Redis memory after close()_\n"
            )
        return outcome


def time_lookups(
    peer: PeerCache, plan: list[Query], spare: list[str], floor: Floor | None = None
) -> dict[str, list[float]]:
    """Milliseconds of each sync ``check`` that answered as expected, per tier (after a warm-up),
    then of the exact queries again ("exact repeat"); ``floor`` is timed after each new prompt."""
    for text in spare:
        peer.check(text)
        if floor:
            floor.lookup(text)
    forget(peer)
    samples: dict[str, list[float]] = {tier: [] for tier in LATENCY_TIERS}
    for tier, text, expected in plan:
        got, ms = timed(partial(peer.check, text))
        if got == expected:
            samples[tier].append(ms)
        if floor:
            floor.time(tier, text)
    for _, text, expected in (query for query in plan if query[0] == "exact"):
        got, ms = timed(partial(peer.check, text))
        if got == expected:
            samples["exact repeat"].append(ms)
    return samples


def cell(ms: list[float], reference: list[float] | None, q: float) -> str:
    if not ms:
        return "-"
    value = float(np.percentile(ms, q))
    base = float(np.percentile(reference, q)) if reference else None
    return (f"{value:.2f}" if value >= 0.1 else f"{value:.3f}") + ratio(value, base)


def latency_section(
    lab: Lab, q: Questions, sizes: list[int], samples: int, seed: int
) -> dict[str, Footprint]:
    """Run and print the latency table; the footprints of the largest size's fills."""
    print("## Peer lookup latency\n")
    plan = q.plan(samples, seed)
    results: dict[int, dict[str, dict[str, list[float]]]] = {}
    floors: dict[int, list[Floor]] = {}
    footprints: dict[str, Footprint] = {}
    for size in sizes:
        results[size], floors[size] = {}, []
        for key in lab.live(seed + size):

            def work(peer: PeerCache, key: str = key, size: int = size) -> dict[str, list[float]]:
                floor = Floor.beside(key, peer, lab.url, lab.shared)
                try:
                    return time_lookups(peer, plan, q.spare, floor)
                finally:
                    if floor:
                        floor.close()
                        floors[size].append(floor)

            outcome = lab.run(key, q.chunks(size, samples), work)
            if outcome:
                results[size][key] = outcome[0]
                if size == max(sizes):
                    footprints[key] = outcome[1]
    print(
        f"Sync `check()` in ms, ratio to RedisVL's same figure in brackets. Each cache holds "
        f"*entries* questions: {q.source} questions plus the stored sides of {samples} "
        f"duplicate pairs; {samples} queries per tier, timed in one shuffled list, counted only "
        "when answered as expected (paraphrase: that pair's answer; miss: None; miss queries are "
        f"at cosine <= {q.miss_similarity:.2f} from every stored question); *exact repeat*: "
        "the exact queries asked again after the list. The *floor* rows are a reference, not a "
        "peer: one query embedding by fastembed's stock session plus one raw FT.SEARCH KNN 1 on "
        "that peer's index (no filter, no record read), timed right after each of its checks of "
        "a new prompt; no cache that embeds the query can be faster than the floor of its index.\n"
    )
    print("| entries | tier | peer | p50 ms | p99 ms | counted |")
    print("|---:|---|---|---:|---:|---:|")
    for size, by_peer in results.items():
        reference = by_peer.get(REFERENCE)
        for tier in LATENCY_TIERS:
            for key in (k for k in lab.keys if k in by_peer):
                ms, ref = by_peer[key][tier], reference[tier] if reference else None
                print(
                    f"| {size + samples:,} | {tier} | {lab.names[key]} | {cell(ms, ref, 50)} "
                    f"| {cell(ms, ref, 99)} | {len(ms)}/{samples} |"
                )
            ref = reference[tier] if reference else None
            for row in floor_rows(size + samples, tier, floors[size], ref, cell):
                print(row)
    summaries = [floor_summary(size + samples, results[size], floors[size]) for size in results]
    if any(summaries):
        print(
            "\nNew prompts against their floor (#16: ours <= 0.8x RedisVL's check; where a floor is"
            " above 0.8x, no cache searching that index with the stock session can meet it):\n"
        )
        print("\n".join(line for line in summaries if line))
    print("\nHow each peer was driven:\n")
    for key in (k for k in lab.keys if k in lab.notes):
        print(f"- **{lab.names[key]}** (`{key}`): {lab.notes[key]}")
    print()
    return footprints


def memory_section(
    lab: Lab, q: Questions, largest: int, samples: int, base: dict[str, Footprint]
) -> None:
    print("## Peer memory and index build\n")
    rows = [(key, "default", footprint) for key, footprint in base.items()]
    for key, options in FLOAT16.items():
        if key in base:
            label = f"{key} float16"
            outcome = lab.run(key, q.chunks(largest, samples), lambda _: None, label, **options)
            if outcome:
                rows.append((key, "float16", outcome[1]))
    rows.sort(key=lambda row: (lab.keys.index(row[0]), row[1]))
    print(
        "Redis INFO `used_memory` after `fill()` of the largest cache minus before the peer was "
        "built (each peer alone on the server), per entry; build: `fill()` plus the wait until "
        "FT.INFO of its new search indexes reports indexing done. Ratio to RedisVL (float32). "
        "Redis only: a peer keeping part of an entry elsewhere (see its notes) looks smaller.\n"
    )
    print("| peer | vectors | entries | Redis memory | bytes/entry | build s | search indexes |")
    print("|---|---|---:|---:|---:|---:|---:|")
    reference = base.get(REFERENCE)
    for key, vectors, fp in rows:
        ref_entry, ref_build = (reference.per_entry, reference.build_s) if reference else (0, 0)
        per_entry = f"{fp.per_entry:,.0f}" + ratio(fp.per_entry, ref_entry)
        build = f"{fp.build_s:.2f}" + ratio(fp.build_s, ref_build)
        print(
            f"| {lab.names[key]} | {vectors} | {fp.entries:,} | {fp.bytes_used / 1e6:,.1f} MB "
            f"| {per_entry} | {build} | {len(fp.indexes) or 'none'} |"
        )
    if lab.skipped:
        print("\nSkipped:\n")
        for label, reason in lab.skipped.items():
            print(f"- `{label}`: {reason}")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--sizes", default="1000,10000,100000", help="cache sizes (latency)")
    parser.add_argument("--lookups", type=int, default=600, help="per throughput setting")
    parser.add_argument("--samples", type=int, default=300, help="latency queries per tier")
    parser.add_argument(
        "--throughput-fill", type=int, default=THROUGHPUT_FILL, help="entries (throughput)"
    )
    parser.add_argument("--peers", default=",".join(PEER_CLASSES), help="comma list of keys")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "semcache" / "bench")
    add_quora_arguments(parser)
    args = parser.parse_args(argv)
    wanted = {k.strip() for k in args.peers.split(",") if k.strip()}
    if unknown := sorted(wanted - set(PEER_CLASSES)):
        parser.error(f"unknown peers {unknown}; choose from {list(PEER_CLASSES)}")
    keys = [k for k in PEER_CLASSES if k in wanted]  # the reference first
    sizes = [int(s) for s in args.sizes.split(",")]
    third = max(1, args.lookups // 3)
    embedder = Embedder()
    embedder.load()
    most = max(args.samples, third)
    largest = max(*sizes, args.throughput_fill)
    q = load(embedder, largest, most, most, args.cache, quora_from(args))
    lab = Lab(args.redis_url, SharedEmbedder(embedder), keys)
    footprints = latency_section(lab, q, sizes, args.samples, args.seed)
    from bench.peers_throughput import throughput_section  # it imports this module

    throughput_section(lab, q, args.lookups, args.seed + 1, args.throughput_fill)
    memory_section(lab, q, max(sizes), args.samples, footprints)


if __name__ == "__main__":
    main()
