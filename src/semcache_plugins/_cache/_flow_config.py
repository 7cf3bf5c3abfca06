"""What the flows need from the settings, made once per core when the model is known."""

from __future__ import annotations

from dataclasses import dataclass

from .._embedding._embedder import ModelFingerprint
from .._precision._consensus import ConsensusPolicy
from .._settings import CacheSettings
from ._flow_memo import FlowMemo
from ._generations import GenerationMemo
from ._index import IndexLayout

__all__ = ["FlowConfig", "flow_config"]


@dataclass(frozen=True)
class FlowConfig:
    """What the flows need from the settings."""

    layout: IndexLayout
    threshold: float
    guards: bool
    signing_key: bytes | None
    max_response_bytes: int
    agreement_margin: float = 0.0  # with guards: neighbours this close must agree (0 = off)
    generations: GenerationMemo | None = None  # lookup -> store hand-over (see _generations)
    verifier_floor: float | None = None  # with guards: serve from here if the verifier agrees
    memo: FlowMemo | None = None  # per-request work done once (``_flow_memo``)
    consensus: ConsensusPolicy | None = None  # with guards: the neighbourhood decides (_consensus)


def flow_config(settings: CacheSettings, fingerprint: ModelFingerprint) -> FlowConfig:
    """The flows' view of ``settings`` for the model ``fingerprint`` (which names the index)."""
    layout = IndexLayout(
        settings.index_prefix, fingerprint.digest, fingerprint.dim, settings.vector_dtype
    )
    key = settings.signing_key.encode() if settings.signing_key else None
    return FlowConfig(
        layout=layout,
        threshold=settings.similarity_threshold,
        guards=settings.guards,
        signing_key=key,
        max_response_bytes=settings.max_response_bytes,
        agreement_margin=settings.agreement_margin,
        generations=GenerationMemo(),
        memo=FlowMemo(layout, key),
        verifier_floor=settings.verifier_floor if settings.verifier and settings.guards else None,
        consensus=ConsensusPolicy() if settings.consensus else None,
    )
