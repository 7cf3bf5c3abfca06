"""``semcache demo``: LiteLLM and LangChain calls through the cache, against a local fake LLM.

The scripted session runs on the embedded Redis (or ``--redis-url``) and a local
OpenAI-compatible server that takes 400 ms per answer (``_fake_llm``): no API key, no network.
Each call is a row of a table (hit or miss, tier, similarity, latency, tokens and dollars
saved); :func:`format_table` and :func:`format_totals` are pure and tested on their own.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from .._cache._backend import delete_matching
from .._cache._core import CacheCore
from .._cache._events import CacheEvent
from .._errors import ConfigurationError, SemcacheError
from .._types import CacheHit
from ..embedded import EmbeddedRedis, resolve_redis_url
from ._cache import drop_index
from ._fake_llm import FakeLLM
from ._io import check_redis_url

__all__ = ["SCRIPT", "DemoRow", "format_table", "format_totals", "register", "run_demo"]

MODEL = "gpt-4o-mini"
LATENCY = 0.4
SYSTEM = "You are a concise support agent for Acme Cloud."
#: (adapter, prompt, what the cache should do): "miss", "exact", "semantic" or "guarded".
SCRIPT: tuple[tuple[str, str, str], ...] = (
    ("litellm", "How do I reset my password?", "miss"),
    ("litellm", "How do I reset my password?", "exact"),
    ("litellm", "I forgot my password, how can I reset it?", "semantic"),
    ("litellm", "What is the status of order 48213?", "miss"),
    ("litellm", "What is the status of order 48231?", "guarded"),
    ("langchain", "Can I get a refund for my last invoice?", "miss"),
    ("langchain", "How do I get a refund for my last invoice?", "semantic"),
    ("langchain", "Can I get a refund for my first invoice?", "guarded"),
    ("langchain stream", "Can I get a refund for my last invoice?", "exact"),
)


@dataclass(frozen=True)
class DemoRow:
    """One call of the session and what the cache did for it."""

    via: str
    prompt: str
    hit: CacheHit | None
    guarded: bool  # a near match the precision guards refused
    seconds: float
    tokens: int  # tokens the LLM did not have to process (hits only)
    dollars: float

    @property
    def outcome(self) -> str:
        """``exact``, ``semantic``, ``guarded`` or ``miss``."""
        return self.hit.tier if self.hit else "guarded" if self.guarded else "miss"


def format_table(rows: Sequence[DemoRow], width: int = 44) -> str:
    """The session as a fixed-width text table."""
    head = (
        f"{'via':<16} {'prompt':<{width}} {'result':<14} {'tier':<8} {'sim':>5} "
        f"{'latency':>9} {'tokens':>6} {'$ saved':>10}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        prompt = row.prompt if len(row.prompt) <= width else row.prompt[: width - 3] + "..."
        result = "HIT" if row.hit else "miss (guarded)" if row.guarded else "miss"
        tier = row.hit.tier if row.hit else "-"
        sim = f"{row.hit.similarity:.3f}" if row.hit else "-"
        saved = f"{row.tokens:>6} {row.dollars:>10.6f}" if row.hit else f"{'-':>6} {'-':>10}"
        lines.append(
            f"{row.via:<16} {prompt:<{width}} {result:<14} {tier:<8} {sim:>5} "
            f"{row.seconds * 1000:>7.0f}ms {saved}"
        )
    return "\n".join(lines)


def format_totals(rows: Sequence[DemoRow], llm_requests: int) -> str:
    """Counts per outcome, latency of hits vs misses, tokens and dollars saved."""
    hits = [r for r in rows if r.hit]
    misses = [r for r in rows if not r.hit]
    exact = sum(1 for r in hits if r.outcome == "exact")
    guarded = sum(1 for r in misses if r.guarded)

    def mean_ms(group: Sequence[DemoRow]) -> str:
        return f"{sum(r.seconds for r in group) / len(group) * 1000:.0f} ms" if group else "-"

    return (
        f"TOTAL {len(rows)} calls: {len(hits)} hits ({exact} exact, {len(hits) - exact} "
        f"semantic), {len(misses)} misses ({guarded} guarded); {llm_requests} LLM requests\n"
        f"mean latency: hit {mean_ms(hits)}, miss {mean_ms(misses)}; saved "
        f"{sum(r.tokens for r in rows)} tokens, ${sum(r.dollars for r in rows):.6f}"
    )


class _CallWatch:
    """What the cache did during one adapter call, read from the core's event stream (the
    events ``stats()`` and Prometheus count): the last lookup's hit and any guard refusal."""

    def __init__(self) -> None:
        self.hit: CacheHit | None = None
        self.guarded = False

    def __call__(self, event: CacheEvent) -> None:
        if event.kind == "lookup":
            self.hit = event.hit
        elif event.kind == "count" and event.name == "guard_rejections":
            self.guarded = True

    def reset(self) -> None:
        self.hit, self.guarded = None, False


def _session(core: CacheCore, llm: FakeLLM) -> list[tuple[str, str, Callable[[], Any]]]:
    """The scripted calls: (via, prompt, call returning (prompt_tokens, completion_tokens))."""
    import litellm
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    from ..langchain import LangChainSemCache, cached
    from ..litellm import SemCache

    litellm.cache = SemCache(core=core)
    lc_cache = LangChainSemCache(core=core)
    model = ChatOpenAI(
        model=MODEL,
        temperature=0,
        api_key=SecretStr("sk-demo"),
        base_url=llm.api_base,
        max_retries=0,
        cache=lc_cache,
        stream_usage=True,
    )
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", "{question}")])
    chain = prompt | model

    def via_litellm(text: str) -> tuple[int, int]:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        response = litellm.completion(
            model=f"openai/{MODEL}",
            messages=messages,
            api_base=llm.api_base,
            api_key="sk-demo",
            temperature=0,
        )
        return int(response.usage.prompt_tokens), int(response.usage.completion_tokens)

    def via_langchain(text: str) -> tuple[int, int]:
        return _lc_tokens(chain.invoke({"question": text}))

    def via_stream(text: str) -> tuple[int, int]:
        chunks = list(cached(model).stream(prompt.invoke({"question": text})))
        return _lc_tokens(sum(chunks[1:], chunks[0]))

    calls = {"litellm": via_litellm, "langchain": via_langchain, "langchain stream": via_stream}
    return [(via, text, functools.partial(calls[via], text)) for via, text, _ in SCRIPT]


def _lc_tokens(message: Any) -> tuple[int, int]:
    """(input, output) tokens of a LangChain AI message (its ``usage_metadata``)."""
    usage: dict[str, Any] = dict(message.usage_metadata or {})
    return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))


def _quiet_litellm() -> None:
    """No per-call INFO logs; import now what LiteLLM imports on its first cache hit (~0.5 s)."""
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        importlib.import_module("litellm.proxy.pass_through_endpoints.success_handler")


def run_demo(redis_url: str, *, out: Callable[[str], Any] = print) -> list[DemoRow]:
    """Run :data:`SCRIPT` on ``redis_url`` against a local fake LLM; print and return the rows."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost-map download
    try:
        import langchain_openai  # noqa: F401
        import litellm
    except ImportError as exc:
        raise ConfigurationError(
            f"semcache demo needs LiteLLM and LangChain ({exc.name} is missing): "
            "install the 'litellm' and 'langchain' extras and langchain-openai "
            "(in a clone: pip install -e '.[litellm,langchain]' langchain-openai)"
        ) from exc
    _quiet_litellm()
    prefix = f"semcache-demo-{uuid.uuid4().hex[:8]}"
    core = CacheCore(
        redis_url=redis_url, index_prefix=prefix, lookup_timeout=5.0, socket_timeout=2.0
    )
    watch = _CallWatch()
    core.events.subscribe(watch)
    previous = litellm.cache
    rows: list[DemoRow] = []
    try:
        with FakeLLM(delay=LATENCY) as llm:
            started = time.perf_counter()
            core.embedder.load()
            out(
                f"model {core.embedder.fingerprint.model_id} loaded in "
                f"{time.perf_counter() - started:.1f}s; redis {redis_url}; "
                f"fake LLM {llm.api_base} ({LATENCY * 1000:.0f} ms per answer)\n"
            )
            for via, text, call in _session(core, llm):
                watch.reset()
                t0 = time.perf_counter()
                prompt_tokens, completion_tokens = call()
                seconds = time.perf_counter() - t0
                hit = watch.hit
                dollars = 0.0
                if hit is not None:
                    costs = litellm.cost_per_token(
                        model=MODEL,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                    )
                    dollars = float(costs[0]) + float(costs[1])
                guarded = hit is None and watch.guarded
                tokens = prompt_tokens + completion_tokens if hit else 0
                rows.append(DemoRow(via, text, hit, guarded, seconds, tokens, dollars))
            out(format_table(rows))
            out("")
            out(format_totals(rows, llm.count))
    finally:
        litellm.cache = previous
        core.close()
        with contextlib.suppress(SemcacheError, redis.RedisError):  # keep the error we are in
            _drop_demo_data(redis_url, prefix)
    return rows


def _drop_demo_data(redis_url: str, prefix: str) -> None:
    """Drop the session's indexes (entries and counts) and any other key under its prefix."""
    with redis.Redis.from_url(redis_url) as client:
        for raw in client.execute_command("FT._LIST"):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            if name.startswith(prefix):
                drop_index(client, name)
        delete_matching(client, re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*")


def _run(args: argparse.Namespace) -> int:
    url = args.redis_url or resolve_redis_url()
    if url:
        run_demo(check_redis_url(url))
        return 0
    with EmbeddedRedis() as server:
        print(f"started embedded Redis at {server.url}")
        run_demo(server.url)
    return 0


def register(groups: Any) -> None:
    """Add ``semcache demo``."""
    parser = groups.add_parser(
        "demo",
        help="run a short scripted LiteLLM + LangChain session on the embedded Redis",
        description="Start the embedded Redis (unless SEMCACHE_REDIS_URL/REDIS_URL is set) and "
        "a local fake LLM (400 ms per answer), then make LiteLLM and LangChain calls through the "
        "cache: exact hits, semantic hits and guarded misses, with tokens and dollars saved.",
    )
    parser.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    parser.set_defaults(handler=_run)
