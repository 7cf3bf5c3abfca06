"""The benchmark's peer caches (bench/peers/) on a real Redis with the real MiniLM, no mocks."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import pytest
import redis

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

from bench.peers import PEER_CLASSES, make_peer  # noqa: E402
from bench.peers.base import Entry, PeerCache, SharedEmbedder  # noqa: E402

from semcache_plugins import Embedder  # noqa: E402

PASSWORD = "How do I reset my password?"
ENTRIES = [
    (PASSWORD, "Open Settings, then Security, then Reset password."),
    ("What is the capital of France?", "Paris."),
    ("How many legs does a spider have?", "Eight."),
]
PARAPHRASE = "how can I reset my password"
UNRELATED = "Recommend a good pasta recipe"  # cosine < 0.07 to every entry
#: cosine 0.27 to "What is the capital of France?": a hit only for a threshold below that.
LOOSE = "What is the boiling point of water?"


def _entries(shared: SharedEmbedder) -> list[Entry]:
    vectors = shared.vectors([prompt for prompt, _ in ENTRIES])
    return [Entry(p, r, v) for (p, r), v in zip(ENTRIES, vectors, strict=True)]


def _footprint(client: redis.Redis) -> tuple[int, int]:
    """Keys and search indexes on the server."""
    indexes = client.execute_command("FT._LIST")  # type: ignore[no-untyped-call]
    return int(client.dbsize()), len(indexes)


def _exercise(make: Callable[[], PeerCache], client: redis.Redis, shared: SharedEmbedder) -> None:
    """Fill, exact hit, paraphrase per threshold, miss, nearest, store, then a clean close."""
    before = _footprint(client)
    peer = make()
    try:
        assert 0.0 < peer.default_similarity < 1.0 and peer.notes
        peer.fill(_entries(shared))
        keys, indexes = _footprint(client)
        assert keys >= before[0] + 3 and indexes == before[1] + 1
        answer = ENTRIES[0][1]
        assert peer.check(PASSWORD) == answer
        best, similarity = peer.nearest(PASSWORD)
        assert best == answer and similarity == pytest.approx(1.0, abs=1e-3)
        best, similarity = peer.nearest(PARAPHRASE)
        assert best == answer and 0.9 < similarity < 1.0
        assert peer.check(PARAPHRASE) == (answer if similarity >= peer.default_similarity else None)
        assert peer.check(UNRELATED) is None
        assert peer.nearest(UNRELATED)[1] < peer.default_similarity
        peer.store("What is the boiling point of water at sea level?", "100 degrees Celsius.")
        assert peer.check("What is the boiling point of water at sea level?") == (
            "100 degrees Celsius."
        )
    finally:
        peer.close()
    assert _footprint(client) == before


async def _agrees(make: Callable[[], PeerCache], shared: SharedEmbedder) -> None:
    """``acheck`` gives what ``check`` gives: hit, paraphrase and miss."""
    peer = make()
    try:
        peer.fill(_entries(shared))
        for prompt in (PASSWORD, PARAPHRASE, UNRELATED, LOOSE):
            assert await peer.acheck(prompt) == peer.check(prompt), prompt
        assert await peer.acheck(PASSWORD) == ENTRIES[0][1]
    finally:
        peer.close()


PEERS = pytest.mark.parametrize("key", list(PEER_CLASSES))


@PEERS
def test_peer_hits_misses_and_cleans_up(
    key: str, redis_url: str, redis_client: redis.Redis, embedder: Embedder
) -> None:
    shared = SharedEmbedder(embedder)
    _exercise(partial(make_peer, key, redis_url, shared), redis_client, shared)


@PEERS
async def test_peer_acheck_agrees_with_check(key: str, redis_url: str, embedder: Embedder) -> None:
    shared = SharedEmbedder(embedder)
    await _agrees(partial(make_peer, key, redis_url, shared), shared)


# --- langchain-redis -------------------------------------------------------------------------


def test_langchain_redis_peer_default_is_distance_0_2(redis_url: str, embedder: Embedder) -> None:
    shared = SharedEmbedder(embedder)
    peer = make_peer("langchain-redis", redis_url, shared)
    try:
        assert peer.default_similarity == pytest.approx(0.8)
        peer.fill(_entries(shared))
        assert peer.check(LOOSE) is None  # cosine 0.27 < 0.8
    finally:
        peer.close()


# --- LiteLLM redis-semantic ------------------------------------------------------------------


async def test_litellm_peer_embeds_through_litellm(redis_url: str, embedder: Embedder) -> None:
    """Every lookup embeds via litellm.embedding/aembedding into the registered provider."""
    import litellm
    import numpy as np
    from bench.peers.litellm_peer import EMBEDDING_MODEL, LiteLLMRedisSemanticPeer

    shared = SharedEmbedder(embedder)
    peer = LiteLLMRedisSemanticPeer(redis_url, shared)
    try:
        response = litellm.embedding(model=EMBEDDING_MODEL, input=[PARAPHRASE])
        got = np.asarray(response.data[0]["embedding"], dtype=np.float32)
        assert np.allclose(got, shared.vectors([PARAPHRASE])[0], atol=1e-6)
        peer.fill(_entries(shared))
        calls = peer.handler.calls
        assert peer.check(PASSWORD) == ENTRIES[0][1]
        assert await peer.acheck(PASSWORD) == ENTRIES[0][1]
        assert peer.handler.calls == calls + 2
        assert peer.check(LOOSE) is None  # cosine 0.27 < 0.8
    finally:
        peer.close()


# --- GPTCache --------------------------------------------------------------------------------


def test_gptcache_peer_default_is_cosine_0_2(redis_url: str, embedder: Embedder) -> None:
    """Its defaults (0.8 of a 0..4 distance range) on Redis cosine distance mean cos >= 0.2."""
    shared = SharedEmbedder(embedder)
    peer = make_peer("gptcache", redis_url, shared)
    try:
        assert peer.default_similarity == pytest.approx(0.2)
        peer.fill(_entries(shared))
        best, similarity = peer.nearest(LOOSE)
        assert best == "Paris." and 0.2 < similarity < 0.5
        assert peer.check(LOOSE) == "Paris."  # a wrong answer, served at its default threshold
    finally:
        peer.close()


# --- the peers' model session ----------------------------------------------------------------


def test_peers_embed_through_stock_fastembed_ours_through_its_embedder(
    redis_url: str, embedder: Embedder
) -> None:
    """Peers run fastembed's own session of the same ONNX file (no tuning of ours); the vectors
    agree with ours, and ``stock=False`` (quality runs) embeds through ours."""
    import numpy as np
    from bench.peers.base import PEER_MODEL_NOTE, StockFastembed

    texts = [PASSWORD, PARAPHRASE, LOOSE]
    shared = SharedEmbedder(embedder)
    got = shared.vectors(texts)
    stock = shared.stock_session
    assert isinstance(stock, StockFastembed)
    session = stock.engine.model.model
    config = session.get_session_options().get_session_config_entry
    with pytest.raises(RuntimeError):  # ours sets it (spin_config); fastembed leaves the default
        config("session.intra_op.allow_spinning")
    assert np.allclose(got, embedder.embed(texts), atol=1e-5)
    assert shared.model_note == PEER_MODEL_NOTE
    own = SharedEmbedder(embedder, stock=False)
    assert np.array_equal(own.vectors(texts), embedder.embed(texts)) and own.stock_session is None
    peer = make_peer("ours", redis_url, shared)
    try:
        assert peer.core.embedder is embedder  # type: ignore[attr-defined]
    finally:
        peer.close()
