"""KNN strategy by scope size: entry counts kept beside the index send big scopes through HNSW."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from semcache_plugins import CacheCore, Embedder
from semcache_plugins._cache._flows import (
    BumpGeneration,
    DeleteKeys,
    DeleteMatching,
    EmbedQuery,
    FlowConfig,
    ReadEntry,
    Search,
    WriteEntry,
    invalidate_flow,
    lookup_flow,
    store_flow,
)
from semcache_plugins._cache._index import (
    BATCHES_MIN_ENTRIES,
    IndexLayout,
    entry_filter,
    hybrid_policy,
    knn_command,
    search_rows,
)
from semcache_plugins._cache._scope import plan_request
from semcache_plugins._cache._warm import WarmItem

PARAMS = {"temperature": 0}
LAYOUT = IndexLayout("sc", "v1", 4)
CONFIG = FlowConfig(
    layout=LAYOUT, threshold=0.85, guards=False, signing_key=None, max_response_bytes=10**6
)
UNIT = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_hnsw_only_for_a_big_scope_that_is_much_of_the_index() -> None:
    assert hybrid_policy(BATCHES_MIN_ENTRIES, BATCHES_MIN_ENTRIES) == "BATCHES"
    assert hybrid_policy(BATCHES_MIN_ENTRIES - 1, BATCHES_MIN_ENTRIES - 1) is None  # scan wins
    assert hybrid_policy(10_000, 40_000) == "BATCHES"
    assert hybrid_policy(10_000, 40_001) is None  # under a quarter of the index: batches crawl
    assert hybrid_policy(0, 0) is None


def test_knn_command_names_the_policy_inside_the_knn_clause() -> None:
    plain = knn_command(LAYOUT, b"V", entry_filter(LAYOUT, scope="abc"))
    batches = knn_command(LAYOUT, b"V", entry_filter(LAYOUT, scope="abc"), "BATCHES")
    assert "HYBRID_POLICY" not in plain[2]
    assert "$vector HYBRID_POLICY BATCHES EF_RUNTIME 64 AS vector_distance]" in batches[2]
    assert batches[3:] == plain[3:]
    wider = knn_command(LAYOUT, b"V", entry_filter(LAYOUT, scope="abc"), k=10, ef_runtime=20)
    assert "[KNN 10 @embedding $vector EF_RUNTIME 20 AS vector_distance]" in wider[2]
    assert wider[wider.index("LIMIT") + 2] == 10


def knn_of_lookup(sizes: list[int], **options: Any) -> tuple[ReadEntry, str]:
    """Drive a lookup flow to its KNN: the exact-tier read it asked for and the query text."""
    plan = plan_request(ask("Where is my parcel?"), model="m", params=PARAMS, namespace="")
    flow = lookup_flow(CONFIG, plan, **options)
    read = next(flow)
    assert isinstance(read, ReadEntry)
    assert isinstance(flow.send((None, sizes, "g0")), EmbedQuery)
    search = flow.send(UNIT)
    assert isinstance(search, Search)
    return read, search.args[2]


def test_lookup_counts_the_scope_with_the_exact_read_and_picks_the_policy() -> None:
    read, query = knn_of_lookup([5000, 6000])
    scope = plan_request(ask("x"), model="m", params=PARAMS, namespace="").scope
    assert read.count_keys == (f"sc-s2.v1:n:{scope}", "sc-s2.v1:n")
    assert "HYBRID_POLICY BATCHES" in query
    assert "HYBRID_POLICY" not in knn_of_lookup([50, 6000])[1]  # a small scope is scanned
    # how many entries pass a max_age filter is unknown: RediSearch decides
    assert "HYBRID_POLICY" not in knn_of_lookup([5000, 6000], max_age=60, now=1e9)[1]


def test_store_counts_entries_with_a_vector_and_invalidation_resets_the_counts() -> None:
    plan = plan_request(ask("Where is my parcel?"), model="m", params=PARAMS, namespace="")
    write = next(store_flow(CONFIG, plan, "answer", ttl=60, vector=UNIT, generation="g0"))
    assert isinstance(write, WriteEntry)
    assert write.count_keys == (LAYOUT.count_key(plan.scope), LAYOUT.count_key())
    flow = invalidate_flow(CONFIG, namespace="tenant")
    assert isinstance(next(flow), BumpGeneration)
    assert isinstance(flow.send(1), Search)
    assert isinstance(flow.send([{"id": "sc:v1:e1"}]), DeleteKeys)
    assert isinstance(flow.send(1), Search)
    assert flow.send([]) == DeleteMatching("sc-s2.v1:n*")
    with pytest.raises(StopIteration) as done:
        flow.send(0)
    assert done.value.value == 1
    untouched = invalidate_flow(CONFIG, namespace="tenant")
    next(untouched)
    untouched.send(2)
    with pytest.raises(StopIteration) as done:
        untouched.send([])  # nothing removed: the counts stay
    assert done.value.value == 0


def near(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows if float(row["vector_distance"]) < 0.5]


@pytest.fixture
def big_scope(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> Iterator[tuple[CacheCore, np.ndarray]]:
    """A cache whose one scope holds BATCHES_MIN_ENTRIES + 100 entries (random unit vectors)."""
    core = CacheCore(  # guards off: the texts are placeholders for random vectors
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, guards=False
    )
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((BATCHES_MIN_ENTRIES + 100, embedder.fingerprint.dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    for start in range(0, len(vectors), 512):  # seeded per batch: the vector memo holds 1024
        batch = range(start, min(start + 512, len(vectors)))
        for i in batch:
            core.internals.work.vectors.put(f"question {i}", vectors[i])
        core.store_many(WarmItem(ask(f"question {i}"), i, "m", PARAMS) for i in batch)
    yield core, vectors
    core.close()


def test_a_big_scope_is_searched_by_hnsw_and_finds_the_same_neighbours(
    big_scope: tuple[CacheCore, np.ndarray], redis_client: redis.Redis
) -> None:
    core, vectors = big_scope
    layout = core.layout
    scope = core.internals.plan(ask("x"), "m", PARAMS, None).scope
    entries = redis_client.pfcount(layout.count_key(scope))
    assert entries == pytest.approx(len(vectors), rel=0.03)  # HyperLogLog: about 1% error
    assert redis_client.pfcount(layout.count_key()) == entries  # the only scope
    assert hybrid_policy(entries, entries) == "BATCHES"
    rng = np.random.default_rng(8)
    filter_expression = entry_filter(layout, scope=scope, exclude_tool_calls=True)
    for i in rng.choice(len(vectors), 40, replace=False):
        noisy = vectors[i] + 0.02 * rng.standard_normal(vectors.shape[1]).astype(np.float32)
        query = (noisy / np.linalg.norm(noisy)).astype(np.float32).tobytes()
        scanned = search_rows(
            redis_client.execute_command(*knn_command(layout, query, filter_expression))
        )
        batched = search_rows(
            redis_client.execute_command(*knn_command(layout, query, filter_expression, "BATCHES"))
        )
        # RediSearch's own choice (a scan at this size) and HNSW batches find the same near
        # neighbour, the exact nearest (the rest are random vectors at cosine ~0, in any order)
        assert near(batched) == near(scanned) and len(near(scanned)) == 1
        assert batched[0]["id"] == layout.key(
            core.internals.plan(ask(f"question {i}"), "m", PARAMS, None).entry_id
        )
        core.internals.work.vectors.put(
            f"near question {i}", np.frombuffer(query, dtype=np.float32)
        )
        hit = core.lookup(ask(f"near question {i}"), "m", PARAMS)
        assert hit is not None and hit.response == i


def test_invalidation_clears_the_counts(
    big_scope: tuple[CacheCore, np.ndarray], redis_client: redis.Redis
) -> None:
    core, vectors = big_scope
    name = core.layout.name
    assert len(list(redis_client.scan_iter(match=f"{name}:n*"))) == 2
    assert core.invalidate(system_prompt="Be brief.") == len(vectors)
    assert list(redis_client.scan_iter(match=f"{name}:n*")) == []


async def test_a_foreign_value_under_a_count_key_costs_no_entry(
    redis_url: str, index_prefix: str, embedder: Embedder, redis_client: redis.Redis
) -> None:
    core = CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder)
    layout = core.layout
    redis_client.set(
        layout.count_key(core.internals.plan(ask("x"), "m", PARAMS, None).scope), "not HLL"
    )
    redis_client.set(layout.count_key(), "nor this")  # PFADD and PFCOUNT on them fail
    assert core.store(ask("How do I reset my password?"), "A", model="m", params=PARAMS)
    assert await core.astore(ask("Where is my parcel?"), "B", model="m", params=PARAMS)
    hit = core.lookup(ask("I forgot my password, how do I reset it?"), "m", PARAMS)
    assert hit is not None and hit.response == "A" and hit.tier == "semantic"
    exact = await core.alookup(ask("Where is my parcel?"), "m", PARAMS)
    assert exact is not None and exact.response == "B"
    assert core.stats()["errors"] == 0
    assert redis_client.get(layout.count_key()) == b"nor this"  # left as it was
    await core.aclose()
    core.close()
