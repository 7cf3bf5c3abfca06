"""Issue #12 through the adapters: closed-class words, templates and long (RAG) prompts are
misses or correct hits in ``litellm.completion`` (``mock_response``) and LangChain ``invoke``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402
from langchain_core.messages import HumanMessage  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from test_long_prompts import long_context, rag  # noqa: E402

from semcache_plugins import Embedder  # noqa: E402
from semcache_plugins._cli._fake_llm import FakeLLM, echo_answer  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

# (first asked, then asked: must not be served the first answer)
DIFFERENT = [
    ("Who won the first world war?", "Who won the second world war?"),
    ("What happened in the first quarter?", "What happened in the third quarter?"),
    ("first prompt", "second prompt"),
    ("Find the cheapest flight to Paris", "Find the most expensive flight to Paris"),
    ("Convert this string to uppercase", "Convert this string to lowercase"),
    (rag(long_context(), "What is the refund policy?"), rag(long_context(), "What is the "
     "shipping policy?")),
]  # fmt: skip
# (first asked, then asked: must be served the first answer)
SAME = [
    ("Who won the first world war?", "Who won the 1st world war?"),
    (rag(long_context(), "What is the refund policy?"), rag(long_context(), "What's your "
     "refund policy?")),
]  # fmt: skip


@pytest.fixture
def semcache(make_litellm_cache: Callable[..., SemCache]) -> SemCache:
    return make_litellm_cache(lookup_timeout=30.0)


def complete(text: str) -> Any:
    return litellm.completion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        mock_response=f"answer to: {text[-60:]}",
        temperature=0,
    )


@pytest.mark.parametrize(("first", "then"), DIFFERENT + SAME)
def test_litellm_completion(semcache: SemCache, first: str, then: str) -> None:
    complete(first)
    assert semcache.stats()["stores"] == 1
    served = complete(then).choices[0].message.content
    if (first, then) in SAME:
        assert served == f"answer to: {first[-60:]}"
    else:
        assert served == f"answer to: {then[-60:]}"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    fake = FakeLLM(delay=0, answer=echo_answer).start()
    yield fake
    fake.stop()


@pytest.fixture
async def lc_cache(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> AsyncIterator[LangChainSemCache]:
    cache = LangChainSemCache(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=30.0
    )
    yield cache
    await cache.aclose()


@pytest.mark.parametrize(("first", "then"), DIFFERENT + SAME)
def test_langchain_invoke(
    server: FakeLLM, lc_cache: LangChainSemCache, first: str, then: str
) -> None:
    model = ChatOpenAI(
        api_key=SecretStr("sk-test"),
        base_url=server.api_base,
        max_retries=0,
        cache=lc_cache,
        model="gpt-4o-mini",
        temperature=0,
    )
    start = server.count
    model.invoke([HumanMessage(first)])
    answer = model.invoke([HumanMessage(then)]).content
    asked = first if (first, then) in SAME else then
    assert answer == echo_answer([{"role": "user", "content": asked}], "gpt-4o-mini", 0.0)
    assert server.count == start + (1 if (first, then) in SAME else 2)
