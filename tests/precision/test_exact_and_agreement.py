"""Exact keys that are exact, notation the embedding cannot see, and neighbour agreement on
answer content: through ``CacheCore``, ``litellm.completion`` and LangChain ``invoke``, with
real Redis and the real model (``mock_response`` / fake chat models are the provider)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402
from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from langchain_core.load import dumps  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration  # noqa: E402

from semcache_plugins import CacheCore  # noqa: E402
from semcache_plugins._embedding._embedder import Embedder  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

MODEL = "openai/gpt-4o-mini"
CODE = "Why does this fail?\ndef total(xs):\n    s = 0\n    for x in xs:\n        s += x\n"

# (stored prompt, query): the same once normalized, a different question as sent.
FOLDED = [
    ("What is 2³ + 1?", "What is 23 + 1?"),
    ("Simplify x² + 2x", "Simplify x2 + 2x"),
    ("How many atoms are in H₂O?", "How many atoms are in H2O?"),
    ("Is CO₂ heavier than air?", "Is CO2 heavier than air?"),
    ("Explain step ① of the guide", "Explain step 1 of the guide"),
    ("Is ½ cup of sugar enough?", "Is 1⁄2 cup of sugar enough?"),
    ("What is １２ + 1?", "What is 12 + 1?"),
    ("How do I open the ﬁle?", "How do I open the file?"),
    (CODE + "    return s", CODE + "        return s"),
    (CODE + "    return s", CODE + "  return s"),
]
SOME_FOLDED = [FOLDED[0], FOLDED[2], FOLDED[4], FOLDED[8]]
RESET = "How do I reset my password?"
RESET_2 = "How can I reset my password?"
RESET_3 = "What's the way to reset my password?"


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- CacheCore ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "query"), FOLDED)
def test_folded_text_is_neither_an_exact_nor_a_semantic_hit(
    core: CacheCore, stored: str, query: str
) -> None:
    core.store(user(stored), "the stored answer", "m")
    assert core.lookup(user(query), "m") is None
    # control: the same text, only trimmed, is still an exact hit
    hit = core.lookup(user(f"  {stored}\n "), "m")
    assert hit is not None and hit.tier == "exact" and hit.matched_prompt == stored


def test_case_and_spacing_are_other_exact_keys_but_may_hit_semantically(core: CacheCore) -> None:
    core.store(user("What is Redis?"), "an in-memory store", "m")
    for query in ("what is redis?", "What  is Redis?", "What is\nRedis?"):
        hit = core.lookup(user(query), "m")
        assert hit is not None and hit.tier == "semantic", query
    assert core.lookup(user("What is Redis? "), "m").tier == "exact"  # type: ignore[union-attr]


def test_paraphrase_controls_still_hit(core: CacheCore) -> None:
    core.store(user(RESET), "Use the reset link.", "m")
    core.store(user("What is x² + y² when x = 1?"), "1 + y²", "m")
    assert core.lookup(user(RESET_3), "m").tier == "semantic"  # type: ignore[union-attr]
    hit = core.lookup(user("When x = 1, what is x² + y²?"), "m")
    assert hit is not None and hit.response == "1 + y²"


def test_system_prompt_and_prior_turns_are_exact(core: CacheCore) -> None:
    system = {"role": "system", "content": "Answer in   base 2³."}
    core.store([system, *user(RESET)], "A", "m")
    for other in ("Answer in base 23.", "Answer in base 2³."):
        assert core.lookup([{"role": "system", "content": other}, *user(RESET)], "m") is None
    assert core.lookup([{**system, "content": " Answer in   base 2³.\n"}, *user(RESET)], "m")
    assert core.invalidate(system_prompt="Answer in base 2³.") == 0  # not the same prompt
    assert core.invalidate(system_prompt="Answer in   base 2³.") == 1
    turns = [*user("Use H₂O."), {"role": "assistant", "content": "ok"}, *user(RESET)]
    core.store(turns, "B", "m")
    other = [*user("Use H2O."), {"role": "assistant", "content": "ok"}, *user(RESET)]
    assert core.lookup(other, "m") is None
    assert core.lookup(turns, "m").response == "B"  # type: ignore[union-attr]


def _chat_response(content: str, id: str, tokens: int) -> dict[str, Any]:
    """A LiteLLM ``model_dump`` with its own envelope (id, created, usage)."""
    return {
        "id": id,
        "created": 1700000000 + tokens,
        "model": "gpt-4o-mini",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {"prompt_tokens": tokens, "completion_tokens": 4, "total_tokens": tokens + 4},
    }


def test_neighbours_with_the_same_answer_text_serve_a_third_paraphrase(core: CacheCore) -> None:
    core.store(user(RESET), _chat_response("Use the reset link.", "chatcmpl-a", 7), "m")
    core.store(user(RESET_2), _chat_response("Use the reset link.", "chatcmpl-b", 9), "m")
    hit = core.lookup(user(RESET_3), "m")
    assert hit is not None and hit.tier == "semantic"
    core.store(user(RESET_2), _chat_response("Call support.", "chatcmpl-c", 9), "m")
    assert core.lookup(user(RESET_3), "m") is None  # two answers near the query: a miss


# -- LiteLLM ------------------------------------------------------------------------------------


@pytest.fixture
def semcache(make_litellm_cache: Callable[..., SemCache]) -> SemCache:
    return make_litellm_cache(lookup_timeout=10.0)


def complete(text: str, answer: str, **kwargs: Any) -> Any:
    return litellm.completion(model=MODEL, messages=user(text), mock_response=answer, **kwargs)


def info(response: Any) -> dict[str, Any] | None:
    return response._hidden_params.get("semcache")


@pytest.mark.parametrize(("stored", "query"), SOME_FOLDED)
def test_litellm_folded_text_reaches_the_provider(
    semcache: SemCache, stored: str, query: str
) -> None:
    complete(stored, "the stored answer")
    fresh = complete(query, "fresh")
    assert fresh.choices[0].message.content == "fresh" and info(fresh) is None
    again = complete(stored + "\n", "not used")
    assert again.choices[0].message.content == "the stored answer"
    assert info(again)["tier"] == "exact"  # type: ignore[index]


def test_litellm_agreement_on_answer_text(semcache: SemCache) -> None:
    no_read = {"cache": {"no-cache": True}}  # concurrent first misses: both stored
    complete(RESET, "Use the reset link.", **no_read)
    complete(RESET_2, "Use the reset link.", **no_read)
    served = complete(RESET_3, "fresh")
    assert served.choices[0].message.content == "Use the reset link."
    assert info(served)["tier"] == "semantic"  # type: ignore[index]


def test_litellm_disagreeing_neighbours_miss(semcache: SemCache) -> None:
    no_read = {"cache": {"no-cache": True}}
    complete(RESET, "Use the reset link.", **no_read)
    complete(RESET_2, "Call support.", **no_read)
    assert complete(RESET_3, "fresh").choices[0].message.content == "fresh"


# -- LangChain ----------------------------------------------------------------------------------


@pytest.fixture
def lc_cache(redis_url: str, index_prefix: str, embedder: Embedder) -> Iterator[LangChainSemCache]:
    cache = LangChainSemCache(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=10.0
    )
    yield cache
    cache.close()


@pytest.mark.parametrize(("stored", "query"), SOME_FOLDED)
def test_langchain_folded_text_reaches_the_model(
    lc_cache: LangChainSemCache, stored: str, query: str
) -> None:
    model = FakeListChatModel(responses=["the stored answer", "fresh", "third"], cache=lc_cache)
    assert model.invoke(stored).content == "the stored answer"
    assert model.invoke(query).content == "fresh"
    again = model.invoke(f" {stored} ")
    assert again.content == "the stored answer"
    assert again.response_metadata["semcache"]["tier"] == "exact"


def _store(cache: LangChainSemCache, model: FakeListChatModel, text: str, answer: str, id: str):
    """What LangChain stores after a model call: its key, a message with its own envelope."""
    message = AIMessage(
        content=answer,
        id=id,
        usage_metadata={"input_tokens": len(id), "output_tokens": 3, "total_tokens": 9},
        response_metadata={"system_fingerprint": id},
    )
    prompt = dumps([HumanMessage(text)])
    cache.update(prompt, model._get_llm_string(stop=None), [ChatGeneration(message=message)])


def test_langchain_agreement_on_message_content(lc_cache: LangChainSemCache) -> None:
    model = FakeListChatModel(responses=["fresh"], cache=lc_cache)
    _store(lc_cache, model, RESET, "Use the reset link.", "run-1")
    _store(lc_cache, model, RESET_2, "Use the reset link.", "run-22")
    served = model.invoke(RESET_3)
    assert served.content == "Use the reset link."
    assert served.response_metadata["semcache"]["tier"] == "semantic"

    _store(lc_cache, model, RESET_2, "Call support.", "run-4")  # replaces the entry
    assert model.invoke(RESET_3).content == "fresh"
