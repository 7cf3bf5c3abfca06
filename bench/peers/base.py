"""What every cache in the peer benchmark offers, and the one model they all share.

Every system runs on the same Redis server with the same MiniLM ONNX weights: ``SharedEmbedder``
holds our ``Embedder`` (ours runs on it, as its users do) and, for the peers, fastembed's own
``TextEmbedding`` session of the same ONNX file (``StockFastembed``: ONNX Runtime's defaults,
fastembed's batching), which each peer plugs in through its own extension point (RedisVL
``CustomTextVectorizer``, a LangChain ``Embeddings``, a LiteLLM custom embedding handler, a GPTCache
embedding function): a peer's user gets no session tuning of ours. Fills use vectors computed
once, so only the lookups' (and ``store``'s) embedding differs. Peers are keyed by the user's text
only; ours also scopes by system prompt and model, which costs nothing at lookup time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from semcache_plugins import Embedder
from semcache_plugins._embedding._embedder import fastembed_model_name

__all__ = ["PEER_MODEL_NOTE", "Entry", "PeerCache", "SharedEmbedder", "StockFastembed"]

#: Said in every peer's notes: which session runs its embeddings.
PEER_MODEL_NOTE = (
    "embeddings by fastembed's stock TextEmbedding session of the same MiniLM ONNX file "
    "(ONNX Runtime defaults, fastembed's batching)"
)


@dataclass(frozen=True)
class Entry:
    """One cached question and answer, its vector computed once by the shared embedder."""

    prompt: str
    response: str
    vector: np.ndarray


class StockFastembed:
    """fastembed's ``TextEmbedding`` over our model directory, opened as fastembed opens it.

    The same ONNX file and tokenizer as ``embedder`` (registered as a fastembed custom model:
    the hub is out of reach), with none of ``Embedder``'s tuning (its ONNX Runtime session
    options, shortest-first model batches of 8): what a user of a peer cache would run.
    """

    def __init__(self, embedder: Embedder) -> None:
        from fastembed import TextEmbedding

        directory = embedder.model_dir
        name = fastembed_model_name(embedder.fingerprint, embedder.model_file)
        self.engine = TextEmbedding(
            model_name=name, cache_dir=str(directory), specific_model_path=str(directory)
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(list(self.engine.embed(list(texts))), dtype=np.float32)


@dataclass
class SharedEmbedder:
    """The model as a plain function for the peers; ``memo=True`` remembers vectors (quality
    runs only). ``embedder`` is ours (``OursPeer`` runs on it); peers' lookups embed through
    ``StockFastembed`` (made on first use), or through ``embedder`` with ``stock=False``."""

    embedder: Embedder
    memo: bool = False
    stock: bool = True
    calls: int = 0
    _seen: dict[str, np.ndarray] = field(default_factory=dict)
    stock_session: StockFastembed | None = field(default=None, repr=False)  # made on first use

    @property
    def model_note(self) -> str:
        """Which session runs the peers' embeddings (printed in their notes)."""
        return PEER_MODEL_NOTE if self.stock else "embeddings by our tuned Embedder"

    def _model(self, texts: list[str]) -> np.ndarray:
        if not self.stock:
            return np.asarray(self.embedder.embed(texts), dtype=np.float32)
        if self.stock_session is None:
            self.stock_session = StockFastembed(self.embedder)
        return self.stock_session.embed(texts)

    @property
    def dims(self) -> int:
        return int(self.embedder.embed(["dimension probe"])[0].shape[0])

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """float32 rows, unit length (cosine similarity is a dot product)."""
        self.calls += 1
        if not self.memo:
            return self._model(list(texts))
        missing = [t for t in dict.fromkeys(texts) if t not in self._seen]
        if missing:
            for text, vector in zip(missing, self._model(missing), strict=True):
                self._seen[text] = np.asarray(vector, dtype=np.float32)
        return np.stack([self._seen[t] for t in texts])

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Seed the memo with vectors computed elsewhere (no effect unless ``memo``)."""
        if self.memo:
            self._seen.update(zip(texts, np.asarray(vectors, dtype=np.float32), strict=True))

    def embed(self, text: str) -> list[float]:
        return [float(x) for x in self.vectors([text])[0]]

    def embed_many(self, texts: Sequence[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self.vectors(texts)]

    async def aembed(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed, text)

    async def aembed_many(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_many, texts)


class PeerCache(Protocol):
    """A semantic cache under test, driven through its own public API."""

    name: str
    #: Its documented default threshold, as cosine similarity (1 - cosine distance).
    default_similarity: float
    #: How it was driven, in a few words (async support, threshold source, caveats).
    notes: str

    def fill(self, entries: Sequence[Entry]) -> None:
        """Bulk-store entries with their precomputed vectors (its fastest public path)."""

    def store(self, prompt: str, response: str) -> None:
        """Store one answer through its public API, embedding included."""

    def check(self, prompt: str) -> str | None:
        """Its public lookup at its default threshold, embedding included; the answer or None."""

    async def acheck(self, prompt: str) -> str | None:
        """Its async lookup (or ``check`` in a thread when it has none: say so in ``notes``)."""

    def nearest(self, prompt: str) -> tuple[str | None, float]:
        """The best cached answer at a wide-open threshold and its cosine similarity."""

    def close(self) -> None:
        """Delete its index and keys, close its clients."""
