"""Async throughput, ours against RedisVL, rounds interleaved (issue #16).

``peers_speed``'s throughput section runs each peer once; on a shared 2-core machine a ratio
from one pass moves by 10-20%. Here both caches are filled once on one Redis and driven in
alternating rounds (RedisVL, ours, RedisVL, ours... at 1, 8 and 32 callers) on one event loop,
with the same query list (1/3 exact, 1/3 paraphrase, 1/3 miss); the figure is the median of the
round ratios. RedisVL embeds with fastembed's stock session, ours with its own ``Embedder`` (as in
``peers_speed``). ``--model-path`` runs ours on another ONNX directory (e.g. an int8 variant of
``bench.embed_variants``); ``--model-batch N`` adds ours with N texts per model call instead of
``_embedder._BATCH_SIZE`` (set around that peer's passes only).
``python -m bench.throughput --rounds 5``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from bench.core_latency import tag
from bench.data import add_quora_arguments, quora_from
from bench.peers import SharedEmbedder, make_peer
from bench.peers_speed import CALLERS, THROUGHPUT_FILL, Questions, forget, load
from bench.peers_throughput import pump
from semcache_plugins import Embedder
from semcache_plugins._embedding import _embedder
from semcache_plugins.embedded import EmbeddedRedis


def _filled(key: str, url: str, shared: SharedEmbedder, q: Questions, third: int, **opts: Any):
    peer = make_peer(key, url, shared, **opts)
    for chunk in q.chunks(max(0, THROUGHPUT_FILL - third), third):
        peer.fill(chunk)
    return peer


async def rounds(
    peers: dict[str, Any],
    q: Questions,
    third: int,
    n: int,
    seed: int,
    model_batch: dict[str, int] | None = None,
) -> None:
    plan = q.plan(third, seed)
    for peer in peers.values():
        await asyncio.gather(*(peer.acheck(text) for text in q.spare))
    rates: dict[tuple[str, int], list[float]] = {}
    batches: dict[tuple[str, int], list[int]] = {}
    for _ in range(n):
        for callers in CALLERS:
            for name, peer in peers.items():
                forget(peer)
                work = getattr(getattr(peer, "core", None), "_work", None)
                seen = len(work.batcher.batch_sizes()) if work else 0
                default = _embedder._BATCH_SIZE
                _embedder._BATCH_SIZE = (model_batch or {}).get(name, default)
                try:
                    per_s, _ = await pump(peer, plan, callers)
                finally:
                    _embedder._BATCH_SIZE = default
                rates.setdefault((name, callers), []).append(per_s)
                if work:
                    batches.setdefault((name, callers), []).extend(
                        work.batcher.batch_sizes()[seen:]
                    )
    names = list(peers)
    print("| peer | " + " | ".join(f"{c} callers" for c in CALLERS) + " |")
    print("|---|" + "---:|" * len(CALLERS))
    for name in names:
        cells = []
        for callers in CALLERS:
            mine, ref = rates[(name, callers)], rates[(names[0], callers)]
            ratios = [a / b for a, b in zip(mine, ref, strict=True)]
            cells.append(
                f"{statistics.median(mine):,.0f}/s ({statistics.median(ratios):.2f}x, "
                f"{min(ratios):.2f}-{max(ratios):.2f})"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")
    for (name, callers), sizes in batches.items():
        print(
            f"{name} {callers} callers: micro-batches mean {np.mean(sizes):.1f}, max {max(sizes)}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--lookups", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--model-batch", type=int, default=None, help="add ours at this size")
    parser.add_argument("--model-path", type=Path, default=None, help="ours on this ONNX dir")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "semcache" / "bench")
    add_quora_arguments(parser)
    args = parser.parse_args(argv)
    third = max(1, args.lookups // 3)
    embedder = Embedder()
    embedder.load()
    q = load(embedder, THROUGHPUT_FILL, third, third, args.cache, quora_from(args))
    print(f"questions: {tag(quora_from(args))}, {3 * third} lookups per pass")
    with EmbeddedRedis() as server:
        url = args.redis_url or server.url
        shared = SharedEmbedder(embedder)
        ours_shared = shared
        if args.model_path is not None:
            ours_shared = SharedEmbedder(Embedder(model_path=args.model_path))
        peers = {
            "RedisVL": _filled("redisvl", url, shared, q, third),
            "ours": _filled("ours", url, ours_shared, q, third),
        }
        sizes = {}
        if args.model_batch:
            label = f"ours (model batch {args.model_batch})"
            peers[label] = _filled("ours", url, SharedEmbedder(Embedder()), q, third)
            sizes[label] = args.model_batch
        try:
            asyncio.run(rounds(peers, q, third, args.rounds, args.seed, sizes))
        finally:
            for peer in peers.values():
                peer.close()


if __name__ == "__main__":
    main()
