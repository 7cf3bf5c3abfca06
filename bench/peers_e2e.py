"""End-to-end cache-hit latency through the call a user makes, as ratios to RedisVL ``check()``.

``litellm.completion``/``acompletion`` under ``litellm.cache`` and a LangChain chat model's
``invoke``/``ainvoke`` under ``set_llm_cache``: ours (``SemCache``, ``LangChainSemCache``) vs
LiteLLM ``Cache(type="redis-semantic")`` and langchain-redis ``RedisSemanticCache``, on one Redis
and one MiniLM ONNX model. No provider: each question is asked once first, the miss answered by a
fake (``mock_response``, ``GenericFakeChatModel``) and stored. Timed misses get a sentinel answer,
so only calls served their own stored answer (LiteLLM: and ``cache_hit``) are timed. Duplicate pairs
(Quora's with ``--quora``, else fow-cache's, see ``bench.data``): "exact" repeats the stored
question, "paraphrase" asks its duplicate. Our memoised query vectors are forgotten before each
phase. LangChain has no per-call no-store: a timed miss stores the sentinel, which later phases can
only serve as an (untimed) non-hit.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402
from langchain_core.globals import set_llm_cache  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402
from litellm.types.caching import LiteLLMCacheType  # noqa: E402

from bench.core_latency import SYSTEM, ask, drop_cache, load_questions  # noqa: E402
from bench.data import add_quora_arguments, question_rows, quora_from  # noqa: E402
from bench.peers import SharedEmbedder, make_peer  # noqa: E402
from semcache_plugins import CacheCore, Embedder  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

MODEL = "openai/gpt-4o-mini"
MISS = "(answered by the fake model: not a cache hit)"
#: LiteLLM timed calls: a miss gets MISS and is not stored (a later phase could hit it exactly).
TIMED: dict[str, Any] = {"model": MODEL, "mock_response": MISS, "cache": {"no-store": True}}
PEERS = ("litellm", "langchain-redis")
KINDS = {"exact": 0, "paraphrase": 1}  # query kind -> which text of each pair is asked
Pairs = list[tuple[str, str]]
Served = Callable[[Any], str | None]  # the answer a call got from the cache; None: from the fake
Calls = dict[str, Callable[[str], Any]]  # call name -> a call with this text (sync, then async)
Found = tuple[list[float], int]  # ms of verified hits, count of wrong answers


def stored_answer(i: int) -> str:
    """What pair ``i``'s first (missed) call answered, hence what a hit must return."""
    return f"Stored answer #{i}."


@dataclass
class Row:
    """Latencies of the verified hits of one (call, system, query kind)."""

    call: str
    system: str
    kind: str
    ms: list[float]
    wrong: int
    stored: int

    def p(self, q: float) -> float:
        return float(np.percentile(self.ms, q)) if self.ms else float("nan")


@dataclass
class System:
    """One cache as a framework takes it, and how to reset and drop it."""

    name: str
    cache: Any
    close: Callable[[], Any]  # drop its index, close clients (may return an awaitable)
    forget: Callable[[], None] = lambda: None  # drop memoised query vectors before a phase


def distinct_pairs(samples: int, quora: Path | None = None) -> Pairs:
    """Duplicate pairs (stored, paraphrase) in which no text occurs twice."""
    seen, pairs = set[str](), Pairs()
    for a, b in load_questions(0, quora)[1]:
        if a != b and not {a, b} & seen:
            seen |= {a, b}
            pairs.append((a, b))
    return pairs[:samples]


def measure(call: Callable[[str], Any], served: Served, texts: list[str]) -> Found:
    """Call on each text (after a warm-up call); time those served their own pair's answer."""
    call(texts[0])  # connections, first-use code paths
    ms, wrong = [], 0
    for i, text in enumerate(texts):
        started = time.perf_counter()
        result = call(text)
        elapsed, answer = (time.perf_counter() - started) * 1000, served(result)
        if answer == stored_answer(i):
            ms.append(elapsed)
        wrong += answer not in (None, stored_answer(i))
    return ms, wrong


def drive(system: System, pairs: Pairs, stored: int, calls: Calls, served: Served) -> list[Row]:
    """Time the sync then the async call (one at a time) on both query kinds; drop the cache."""
    (sync_name, sync_call), (async_name, async_call) = calls.items()
    rows = []
    with asyncio.Runner() as runner:  # one event loop; closing it cancels leftover tasks

        def run_async(text: str) -> Any:  # the loop is made at the first async call
            return runner.get_loop().run_until_complete(async_call(text))

        runs = {sync_name: sync_call, async_name: run_async}
        try:
            for name, call in runs.items():
                for kind, side in KINDS.items():
                    system.forget()
                    found = measure(call, served, [pair[side] for pair in pairs])
                    rows.append(Row(name, system.name, kind, *found, stored))
        finally:
            if inspect.isawaitable(closing := system.close()):
                runner.get_loop().run_until_complete(closing)
    return rows


def _litellm_served(response: Any) -> str | None:
    hit = response._hidden_params.get("cache_hit") is True
    return str(response.choices[0].message.content) if hit else None


def litellm_rows(system: System, pairs: Pairs) -> list[Row]:
    """Fill through ``completion`` misses, then time hits via ``completion`` and ``acompletion``."""
    litellm.cache = system.cache
    try:
        stored = 0
        for i, (q, _) in enumerate(pairs):
            first = litellm.completion(model=MODEL, messages=ask(q), mock_response=stored_answer(i))
            stored += _litellm_served(first) is None
        calls = {
            "litellm.completion": lambda t: litellm.completion(messages=ask(t), **TIMED),
            "litellm.acompletion": lambda t: litellm.acompletion(messages=ask(t), **TIMED),
        }
        return drive(system, pairs, stored, calls, _litellm_served)
    finally:
        litellm.disable_cache()  # litellm.cache = None, and its "cache" callbacks removed


@dataclass
class Feed(Iterator[str]):
    """What the fake chat model answers next (``answer``); counts the calls that reach it."""

    answer: str = MISS
    calls: int = 0

    def __next__(self) -> str:
        self.calls += 1
        return self.answer


def _chat(text: str) -> list[Any]:
    return [SystemMessage(str(SYSTEM["content"])), HumanMessage(text)]


def _langchain_served(message: Any) -> str | None:
    return None if message.content == MISS else str(message.content)


def langchain_rows(system: System, pairs: Pairs) -> list[Row]:
    """Fill through ``invoke`` misses, then time hits via ``invoke`` and ``ainvoke``."""
    feed = Feed()
    model = GenericFakeChatModel(messages=feed)  # goes through BaseChatModel's cache path
    set_llm_cache(system.cache)
    try:
        for i, (text, _) in enumerate(pairs):
            feed.answer = stored_answer(i)
            model.invoke(_chat(text))
        feed.answer = MISS
        calls = {
            "langchain invoke": lambda t: model.invoke(_chat(t)),
            "langchain ainvoke": lambda t: model.ainvoke(_chat(t)),
        }
        return drive(system, pairs, feed.calls, calls, _langchain_served)
    finally:
        set_llm_cache(None)


def ours(adapter: type[SemCache | LangChainSemCache], url: str, shared: SharedEmbedder) -> System:
    """Our adapter at its defaults (guards on), on its own index prefix."""
    prefix = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    cache = adapter(redis_url=url, index_prefix=prefix, embedder=shared.embedder)
    core: CacheCore = cache.core

    async def aclose() -> None:
        drop_cache(core)
        await core.aclose()

    return System("semcache-plugins", cache, aclose, core.internals.work.vectors.clear)


def litellm_peer(redis_url: str, shared: SharedEmbedder) -> System:
    """``litellm.Cache(type="redis-semantic")`` embedding through the peer's custom provider."""
    from bench.peers.litellm_peer import DOCS_SIMILARITY, EMBEDDING_MODEL, register_provider

    register_provider(shared)  # our MiniLM as a LiteLLM embedding provider
    cache: Any = litellm.Cache(  # type: ignore[attr-defined]
        type=LiteLLMCacheType.REDIS_SEMANTIC,
        redis_url=redis_url,
        similarity_threshold=DOCS_SIMILARITY,
        redis_semantic_cache_embedding_model=EMBEDDING_MODEL,
        redis_semantic_cache_index_name=f"bench-e2e-litellm-{uuid.uuid4().hex[:8]}",
    )

    async def aclose() -> None:
        cache.cache.llmcache.delete()
        await cache.cache.llmcache.adisconnect()

    return System(f"litellm redis-semantic ({DOCS_SIMILARITY})", cache, aclose)


def langchain_redis_peer(redis_url: str, shared: SharedEmbedder) -> System:
    """langchain-redis ``RedisSemanticCache`` as the peer benchmark builds (and drops) it."""
    from bench.peers.langchain_redis_peer import LangChainRedisPeer

    peer = LangChainRedisPeer(redis_url, shared)

    async def aclose() -> None:
        if client := peer.llm_cache.cache._async_redis_client:  # made by redisvl for alookup
            await client.aclose()  # from the peer's sync client, so redisvl never closes it
        peer.close()

    return System(f"langchain-redis ({peer.default_similarity:.2f})", peer.llm_cache, aclose)


#: (system key, how it is driven, how it is built), in run order; "ours" always runs.
PLAN: list[tuple[str, Callable[[System, Pairs], list[Row]], Callable[..., System]]] = [
    ("ours", litellm_rows, partial(ours, SemCache)),
    ("litellm", litellm_rows, litellm_peer),
    ("ours", langchain_rows, partial(ours, LangChainSemCache)),
    ("langchain-redis", langchain_rows, langchain_redis_peer),
]


def redisvl_rows(redis_url: str, shared: SharedEmbedder, pairs: Pairs) -> list[Row]:
    """RedisVL ``SemanticCache.check()`` on the same questions: the reference for every ratio."""
    peer = make_peer("redisvl", redis_url, shared)
    try:
        for i, (text, _) in enumerate(pairs):
            peer.store(text, stored_answer(i))
        found = {
            k: measure(peer.check, lambda a: a, [p[i] for p in pairs]) for k, i in KINDS.items()
        }
        return [Row("RedisVL check()", peer.name, k, *found[k], len(pairs)) for k in KINDS]
    finally:
        peer.close()


def report(rows: list[Row], samples: int, source: str = "Quora") -> None:
    """The markdown section; ratios are to the RedisVL rows (first) of the same query kind."""
    reference = {r.kind: r.p(50) for r in rows if r.call == "RedisVL check()"}
    print("## End-to-end hit latency\n")
    print(
        f"{samples} duplicate pairs ({source}); ms over verified hits only; wrong = served another "
        "question's answer; stored = first calls that missed and were stored; "
        "x RedisVL = p50 / RedisVL SemanticCache.check() p50 for the same query kind.\n"
    )
    print("| call | system | query | p50 ms | p99 ms | hits | wrong | stored | x RedisVL |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = r.p(50) / reference[r.kind]
        print(
            f"| {r.call} | {r.system} | {r.kind} | {r.p(50):.2f} | {r.p(99):.2f} "
            f"| {len(r.ms)}/{samples} | {r.wrong} | {r.stored} | {ratio:.2f} |"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run RedisVL then every system in ``PLAN``, print the section."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma list; uses {PEERS}")
    add_quora_arguments(parser)
    args = parser.parse_args(argv)
    quora = quora_from(args)
    peers = set(args.peers.split(","))  # other keys (redisvl, ours, gptcache): not in this section
    shared = SharedEmbedder(Embedder())
    pairs = distinct_pairs(args.samples, quora)
    rows = redisvl_rows(args.redis_url, shared, pairs)
    for key, run, build in PLAN:
        if key == "ours" or key in peers:
            rows += run(build(args.redis_url, shared), pairs)
    report(rows, len(pairs), question_rows(quora)[0])


if __name__ == "__main__":
    main()
