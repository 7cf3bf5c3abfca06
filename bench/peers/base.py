"""What every cache in the peer benchmark offers, and the one embedder they all share.

Every system runs on the same Redis server with the same MiniLM ONNX model: ``SharedEmbedder``
wraps our ``Embedder`` and each peer plugs it in through its own extension point (RedisVL
``CustomTextVectorizer``, a LangChain ``Embeddings``, a LiteLLM custom embedding handler, a GPTCache
embedding function). Peers are keyed by the user's text only; ours also scopes by system prompt and
model, which costs nothing at lookup time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from semcache_plugins import Embedder

__all__ = ["Entry", "PeerCache", "SharedEmbedder"]


@dataclass(frozen=True)
class Entry:
    """One cached question and answer, its vector computed once by the shared embedder."""

    prompt: str
    response: str
    vector: np.ndarray


@dataclass
class SharedEmbedder:
    """Our ONNX MiniLM as a plain function; ``memo=True`` remembers vectors (quality runs only)."""

    embedder: Embedder
    memo: bool = False
    calls: int = 0
    _seen: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def dims(self) -> int:
        return int(self.embedder.embed(["dimension probe"])[0].shape[0])

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """float32 rows, unit length (cosine similarity is a dot product)."""
        self.calls += 1
        if not self.memo:
            return np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)
        missing = [t for t in dict.fromkeys(texts) if t not in self._seen]
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
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
