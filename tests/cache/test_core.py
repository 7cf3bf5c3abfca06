"""CacheCore against the real Redis with Search and the real ONNX model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from semcache_plugins import CacheCore, CacheEvent, CacheHit, CacheSettings, Embedder

SYSTEM = {"role": "system", "content": "You are a helpful support agent."}
PARAMS = {"temperature": 0, "max_tokens": 200}


def ask(text: str, system: dict[str, str] | None = SYSTEM) -> list[dict[str, str]]:
    return [*([system] if system else []), {"role": "user", "content": text}]


@pytest.fixture
def core(redis_url: str, index_prefix: str, embedder: Embedder) -> Iterator[CacheCore]:
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as c:
        yield c


def test_paraphrase_hits_unrelated_misses(core: CacheCore) -> None:
    core.store(
        ask("How do I reset my password?"),
        {"answer": "Use the reset link."},
        model="gpt-4o-mini",
        params=PARAMS,
    )
    hit = core.lookup(
        ask("I forgot my password, how can I reset it?"), model="gpt-4o-mini", params=PARAMS
    )
    assert isinstance(hit, CacheHit)
    assert hit.tier == "semantic"
    assert hit.response == {"answer": "Use the reset link."}
    assert hit.matched_prompt == "How do I reset my password?"
    assert core.settings.similarity_threshold <= hit.similarity < 1.0
    assert (
        core.lookup(ask("What are your opening hours?"), model="gpt-4o-mini", params=PARAMS) is None
    )


def test_exact_repeat_is_served_without_embedding(core: CacheCore) -> None:
    core.store(ask("What is the capital of France?"), "Paris", model="m", params=PARAMS)
    # a second core on the same index: nothing memoized, so an embedding would show
    with CacheCore(settings=core.settings, embedder=core.embedder) as fresh:
        events: list[CacheEvent] = []
        fresh.events.subscribe(events.append)
        hit = fresh.lookup(ask("  What is the capital of France? \n"), model="m", params=PARAMS)
        assert hit is not None and hit.tier == "exact" and hit.similarity == 1.0
        assert hit.response == "Paris"
        assert [(e.kind, e.name) for e in events] == [("lookup", "hits_exact")]
        assert fresh.stats()["embeddings"] == 0


def test_scope_changes_miss_and_equivalent_params_hit(core: CacheCore) -> None:
    core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    q = "How do I reset my password?"
    misses = [
        core.lookup(ask(q, {"role": "system", "content": "You are a pirate."}), "m", PARAMS),
        core.lookup(ask(q), "other-model", PARAMS),
        core.lookup(ask(q), "m", {**PARAMS, "temperature": 0.9}),
        core.lookup(
            ask(q), "m", {**PARAMS, "tools": [{"type": "function", "function": {"name": "f"}}]}
        ),
        core.lookup(
            [
                SYSTEM,
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": q},
            ],
            "m",
            PARAMS,
        ),
    ]
    assert misses == [None] * 5
    reordered = {"max_tokens": 200, "temperature": 0, "stream": True, "user": "u-1"}
    hit = core.lookup(ask(q), "m", reordered)
    assert hit is not None and hit.response == "A"


def test_guards_refuse_changed_numbers_and_negations(make_core: Callable[..., CacheCore]) -> None:
    # generous timeouts: a lookup cut short under load is a miss the guards never saw
    core = make_core(socket_timeout=5.0, lookup_timeout=10.0)
    core.store(ask("What is the status of order 48213?"), "shipped", model="m", params=PARAMS)
    core.store(ask("Cancel my subscription"), "cancelled", model="m", params=PARAMS)
    assert core.lookup(ask("What is the status of order 48231?"), "m", PARAMS) is None
    assert core.lookup(ask("Do not cancel my subscription"), "m", PARAMS) is None
    assert core.stats()["guard_rejections"] == 2
    with CacheCore(
        redis_url=core.settings.redis_url,
        index_prefix=core.settings.index_prefix,
        embedder=core.embedder,
        guards=False,
        socket_timeout=5.0,
        lookup_timeout=10.0,
    ) as unguarded:  # cosine alone is fooled
        hit = unguarded.lookup(ask("What is the status of order 48231?"), "m", PARAMS)
        assert hit is not None and hit.response == "shipped"


@pytest.mark.parametrize("protocol", [2, 3])
def test_semantic_hits_over_resp2_and_resp3_clients(
    protocol: int, redis_url: str, index_prefix: str, embedder: Embedder
) -> None:
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    with CacheCore(redis_client=client, index_prefix=index_prefix, embedder=embedder) as core:
        core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
        hit = core.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
        assert hit is not None and hit.tier == "semantic" and hit.response == "A"
        assert core.lookup(ask("What is the capital of France?"), "m", PARAMS) is None
        assert core.clear() == 1
    client.close()


def test_close_neighbours_with_different_answers_make_a_miss(core: CacheCore) -> None:
    query = ask("I forgot my password, how do I reset it?")
    core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)  # cos 0.94
    core.store(ask("I lost my password, how can I reset it?"), "B", model="m", params=PARAMS)
    assert core.lookup(query, "m", PARAMS) is None  # 0.96 vs 0.94: which answer? neither
    core.store(ask("I lost my password, how can I reset it?"), "A", model="m", params=PARAMS)
    hit = core.lookup(query, "m", PARAMS)  # the neighbours now agree
    assert hit is not None and hit.response == "A" and hit.similarity > 0.95
    core.store(ask("I lost my password, how can I reset it?"), "B", model="m", params=PARAMS)
    with CacheCore(
        redis_url=core.settings.redis_url,
        index_prefix=core.settings.index_prefix,
        embedder=core.embedder,
        agreement_margin=0.0,
    ) as off:
        hit = off.lookup(query, "m", PARAMS)
        assert hit is not None and hit.response == "B"  # the nearest, however close the other


def test_invalidate_system_prompt_only_removes_its_entries(core: CacheCore) -> None:
    other = {"role": "system", "content": "You answer in French."}
    core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    core.store(ask("How do I reset my password?", other), "B", model="m", params=PARAMS)
    core.store(ask("What are your opening hours?"), "C", model="m", params=PARAMS)
    assert core.invalidate(system_prompt=SYSTEM["content"]) == 2
    assert core.lookup(ask("How do I reset my password?"), "m", PARAMS) is None
    hit = core.lookup(ask("How do I reset my password?", other), "m", PARAMS)
    assert hit is not None and hit.response == "B"
    core.store(ask("q1"), "x", model="gone-model", params=PARAMS)
    assert core.invalidate(model="gone-model") == 1
    assert core.clear() == 1


def test_new_embedding_model_never_reads_old_entries(
    redis_url: str, index_prefix: str, embedder: Embedder, int8_embedder: Embedder
) -> None:
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as old:
        old.store(ask("How do I reset my password?"), "old", model="m", params=PARAMS)
        assert old.lookup(ask("How do I reset my password?"), "m", PARAMS) is not None
    with CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=int8_embedder, quantize=True
    ) as new:
        assert new.layout.name != old.layout.name
        assert new.lookup(ask("How do I reset my password?"), "m", PARAMS) is None
        assert new.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS) is None


def test_float16_vectors_hit_like_float32_in_an_index_of_their_own(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> None:
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as f32:
        f32.store(ask("How do I reset my password?"), "f32", model="m", params=PARAMS)
        f32_hit = f32.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
    with CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, vector_dtype="float16"
    ) as f16:
        assert f16.layout.name != f32.layout.name
        assert f16.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS) is None
        f16.store(ask("How do I reset my password?"), "f16", model="m", params=PARAMS)
        hit = f16.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
        assert hit is not None and hit.response == "f16" and f32_hit is not None
        assert hit.similarity == pytest.approx(f32_hit.similarity, abs=2e-3)
        assert f16.lookup(ask("What is the capital of France?"), "m", PARAMS) is None
        assert f16.clear() == 1
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as f32:
        assert f32.clear() == 1  # a closed core stays closed: a new one clears the float32 index


def test_ttl_expiry_and_per_call_override(
    redis_url: str, index_prefix: str, embedder: Embedder, redis_client: Any
) -> None:
    """The one test where Redis itself must expire a key (the others move ``core.clock``)."""
    with CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, ttl=100
    ) as core:
        entry = core.store(ask("short lived"), "v", model="m", params=PARAMS, ttl=1)
        kept = core.store(ask("long lived"), "v", model="m", params=PARAMS)
        assert entry and kept
        assert 0 < redis_client.ttl(core.layout.key(kept)) <= 100
        assert core.lookup(ask("short lived"), "m", PARAMS) is not None
        give_up = time.monotonic() + 30  # a bound, not a timing: Redis deletes it after 1 s
        while redis_client.exists(core.layout.key(entry)) and time.monotonic() < give_up:
            time.sleep(0.1)
        assert not redis_client.exists(core.layout.key(entry))
        assert core.lookup(ask("short lived"), "m", PARAMS) is None
        assert core.lookup(ask("long lived"), "m", PARAMS) is not None


def test_max_age_rejects_older_entries(core: CacheCore) -> None:
    core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    core.clock = lambda: time.time() + 1.1  # 1.1 s later
    assert core.lookup(ask("How do I reset my password?"), "m", PARAMS, max_age=1) is None
    assert (
        core.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS, max_age=1) is None
    )
    assert core.lookup(ask("How do I reset my password?"), "m", PARAMS, max_age=60) is not None


def test_too_long_text_is_stored_for_exact_repeats_not_truncated(core: CacheCore) -> None:
    long_text = "please " * 400
    assert core.store(ask(long_text), "x", model="m", params=PARAMS) is not None
    hit = core.lookup(ask(long_text), "m", PARAMS)
    assert hit is not None and hit.tier == "exact"
    assert core.lookup(ask("please " * 399 + "help"), "m", PARAMS) is None  # never cut to fit
    assert core.stats()["skipped_too_long"] >= 1


def test_corrupt_record_is_a_miss(core: CacheCore, redis_client: Any) -> None:
    entry = core.store(ask("What is Redis?"), "db", model="m", params=PARAMS)
    assert entry
    redis_client.hset(core.layout.key(entry), "payload", "{broken")
    assert core.lookup(ask("What is Redis?"), "m", PARAMS) is None
    assert core.lookup(ask("What is Redis exactly?"), "m", PARAMS) is None


def test_stats_match_what_happened(core: CacheCore) -> None:
    core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    core.lookup(ask("How do I reset my password?"), "m", PARAMS)
    core.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
    core.lookup(ask("Where is your head office?"), "m", PARAMS)
    core.lookup(ask("   "), "m", PARAMS)
    stats = core.stats()
    assert (
        stats["lookups"],
        stats["hits_exact"],
        stats["hits_semantic"],
        stats["misses"],
        stats["stores"],
        stats["skipped"],
    ) == (3, 1, 1, 1, 1, 1)
    assert float(stats["latency_p50_ms"]) > 0  # type: ignore[arg-type]


def test_settings_object_and_env(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("SEMCACHE_SIMILARITY_THRESHOLD", "0.91")
    monkeypatch.setenv("SEMCACHE_NAMESPACE", "tenant-a")
    core = CacheCore(redis_url=redis_url)
    assert core.settings.similarity_threshold == 0.91
    assert core.settings.namespace == "tenant-a"
    explicit = CacheCore(settings=CacheSettings(redis_url=redis_url, namespace="n2"), ttl=5)
    assert explicit.settings.namespace == "n2" and explicit.settings.ttl == 5


async def test_async_twins_and_64_concurrent_calls(make_core: Callable[..., CacheCore]) -> None:
    # 64 callers open their connections at once: on a loaded machine the default 0.5 s connect
    # timeout can run out (a miss, by design); this test is about sharing, not about timeouts.
    core = make_core(socket_timeout=5.0, lookup_timeout=10.0)
    questions = [f"What is the status of order number {n}?" for n in range(32)]
    await asyncio.gather(
        *(
            core.astore(ask(q), {"order": i}, model="m", params=PARAMS)
            for i, q in enumerate(questions)
        )
    )
    hits = await asyncio.gather(
        *(core.alookup(ask(q), "m", PARAMS) for q in questions),
        *(core.alookup(ask(q), "m", PARAMS) for q in questions),
    )
    assert all(h is not None for h in hits)
    assert [h.response for h in hits[:32]] == [{"order": i} for i in range(32)]  # type: ignore[union-attr]
    assert (
        max(core.internals.work.batcher.batch_sizes()) > 1
    )  # concurrent lookups shared model calls
    paraphrase = await core.alookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
    assert paraphrase is None
    await core.astore(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    hit = await core.alookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
    assert hit is not None and hit.tier == "semantic"
    assert await core.aclear() == 33


def test_miss_then_store_embeds_once(core: CacheCore) -> None:
    before = core.stats()["embeddings"]
    assert core.lookup(ask("Which plans include phone support?"), "m", PARAMS) is None
    core.store(ask("Which plans include phone support?"), "Pro and Team", model="m", params=PARAMS)
    assert core.stats()["embeddings"] == int(before) + 1  # type: ignore[call-overload]


async def test_concurrent_misses_on_one_prompt_store_one_entry(
    core: CacheCore, redis_client: Any
) -> None:
    question = ask("How long does a refund take?")
    assert await core.alookup(question, "m", PARAMS) is None
    ids = await asyncio.gather(
        *(core.astore(question, {"writer": i}, model="m", params=PARAMS) for i in range(16))
    )
    assert len(set(ids)) == 1
    keys = list(redis_client.scan_iter(match=f"{core.layout.key_prefix}:*"))
    assert len(keys) == 1
    hit = await core.alookup(question, "m", PARAMS)
    assert hit is not None and hit.response in [{"writer": i} for i in range(16)]


def test_signed_cache_never_serves_forged_entries(
    redis_url: str, index_prefix: str, embedder: Embedder, redis_client: Any
) -> None:
    with CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, signing_key="s3cret"
    ) as core:
        entry = core.store(ask("What is the refund window?"), "30 days", model="m", params=PARAMS)
        assert entry and core.lookup(ask("What is the refund window?"), "m", PARAMS) is not None
        key = core.layout.key(entry)
        redis_client.hset(key, "payload", '{"v":1,"response":"send your card number"}')
        assert core.lookup(ask("What is the refund window?"), "m", PARAMS) is None
        assert core.lookup(ask("How long is the refund window?"), "m", PARAMS) is None
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as unsigned:
        unsigned.store(ask("Is there a student discount?"), "no", model="m", params=PARAMS)
    with CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, signing_key="s3cret"
    ) as core:
        assert core.lookup(ask("Is there a student discount?"), "m", PARAMS) is None


def test_store_many_warms_in_batches(core: CacheCore) -> None:
    from semcache_plugins._cache._warm import WarmItem, warm_item

    items = [
        WarmItem(ask(f"What is the price of plan number {n}?"), n, "m", PARAMS) for n in range(70)
    ]
    items.append(warm_item({"prompt": "   ", "response": "skip me", "model": "m"}))
    items.append(
        warm_item(
            {
                "prompt": "How do I reset my password?",
                "response": "A",
                "system": SYSTEM["content"],
                "model": "m",
                "params": PARAMS,
            }
        )
    )
    seen: list[int] = []
    assert core.store_many(items, batch_size=32, progress=seen.append) == 71
    assert sum(seen) == 72 and core.stats()["stores"] == 71
    hit = core.lookup(ask("What is the price of plan number 17?"), "m", PARAMS)
    assert hit is not None and hit.tier == "exact" and hit.response == 17
    hit = core.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
    assert hit is not None and hit.tier == "semantic"
    assert hit.response == {"semcache_answer": 1, "content": "A", "tool_calls": None}


async def test_lookup_deadline_turns_slow_work_into_a_miss(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> None:
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder) as core:
        core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    with CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=1e-6
    ) as hurried:
        hurried.embedder.load()
        assert hurried.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS) is None
        assert await hurried.alookup(ask("Forgot my password, reset?"), "m", PARAMS) is None
        skipped = hurried.stats()["skipped_by_reason"]  # past the deadline, or shed before it
        assert set(skipped) <= {"timeout", "overloaded"} and sum(skipped.values()) == 2


def test_preload_fails_at_start_up_on_a_broken_model(tmp_path: Any, redis_url: str) -> None:
    from semcache_plugins import ModelError
    from semcache_plugins.litellm import SemCache

    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError) as info:
        CacheCore(redis_url=redis_url, model_path=tmp_path, preload=True)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ModelError):
        SemCache(redis_url=redis_url, model_path=tmp_path, preload=True)
    lazy = CacheCore(redis_url=redis_url, model_path=tmp_path)  # default: nothing loads yet
    assert lazy.settings.preload is False
