"""fow-cache's multi-turn pairs through ``CacheCore``: does earlier context ever leak an answer?

Run ``python -m bench.conversation_pairs`` (uses ``$SEMCACHE_REDIS_URL`` / ``$REDIS_URL``, else
starts an embedded Redis). For each of the 240 pairs in ``datasets/fow_cache/conv-parts`` and
``conv-long``, conversation *a* is stored with its own answer and conversation *b* is looked up.
In the traps (context_swap, detail_swap, intent_flip) the last user message is the same, or
nearly, and the earlier turns change the right answer. In the should-hit pairs
(same_context_reworded, irrelevant_history, same_context_extra_chatter) they do not. Two
layouts: each pair in its own namespace, and all 240 in one (each lookup then also meets the
other pairs' entries). Nothing here was tuned on these pairs.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import guards_eval as ge
from semcache_plugins import CacheCore
from semcache_plugins.embedded import EmbeddedRedis, resolve_redis_url

MODEL = "bench-model"
PARTS = ("conv-parts", "conv-long")
DOMAINS = ("billing", "retail", "services")


def read_pairs(data: Path) -> list[tuple[str, dict[str, Any]]]:
    folder = data / "fow_cache"
    return [
        (part, json.loads(line))
        for part in PARTS
        for domain in DOMAINS
        for line in (folder / part / f"{domain}.jsonl").open(encoding="utf-8")
    ]


def _answer(pair_id: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": f"answer {pair_id}"}}]}


def replay(core: CacheCore, pairs: list[tuple[str, dict[str, Any]]], shared: bool) -> list[str]:
    core.clear()
    for _, pair in pairs:
        core.store(pair["a"], _answer(pair["id"]), MODEL, namespace="all" if shared else pair["id"])
    asked: Counter[tuple[str, str, bool]] = Counter()
    right: Counter[tuple[str, str, bool]] = Counter()
    wrong: Counter[tuple[str, str, bool]] = Counter()
    for part, pair in pairs:
        key = (part, pair["subtype"], bool(pair["same_answer"]))
        asked[key] += 1
        hit = core.lookup(pair["b"], MODEL, namespace="all" if shared else pair["id"])
        if hit is not None:
            own = json.dumps(hit.response) == json.dumps(_answer(pair["id"]))
            (right if own and key[2] else wrong)[key] += 1
    control: Counter[bool] = Counter()  # conversation *a* itself, asked again
    for _, pair in pairs:
        hit = core.lookup(pair["a"], MODEL, namespace="all" if shared else pair["id"])
        if hit is not None:
            control[json.dumps(hit.response) == json.dumps(_answer(pair["id"]))] += 1
    layout = "one namespace" if shared else "a namespace per pair"
    return [
        f"| {layout} | {part} | {subtype} | {'should hit' if same else 'trap'} | {n} | "
        f"{right[part, subtype, same]} | {wrong[part, subtype, same]} |"
        for (part, subtype, same), n in sorted(asked.items())
    ] + [f"| {layout} | both | control: *a* asked again | should hit | {len(pairs)} | "
         f"{control[True]} | {control[False]} |"]  # fmt: skip


def run(url: str, data: Path) -> None:
    pairs = read_pairs(data)
    core = CacheCore(
        redis_url=url, index_prefix="bench-conversations", socket_timeout=5.0, lookup_timeout=5.0
    )
    try:
        print("| layout | set | subtype | kind | pairs | served right | served wrong |")
        print("|---|---|---|---|---:|---:|---:|")
        for shared in (False, True):
            print("\n".join(replay(core, pairs, shared)))
        core.clear()
    finally:
        core.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ge.DATASETS)
    args = parser.parse_args(argv)
    url = resolve_redis_url()
    if url is not None:
        run(url, args.data)
        return 0
    with EmbeddedRedis() as server:
        run(server.url, args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
