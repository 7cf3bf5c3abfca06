"""Sentence embeddings from a local ONNX model through fastembed, with a stable fingerprint."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigurationError, EmbeddingError, ModelError
from .._paths import cache_dir as default_cache_dir
from .._settings import DEFAULT_EMBEDDING_MODEL, CacheSettings
from ._model_resolve import ResolvedModel, model_slug, resolve_model

__all__ = [
    "CONCURRENT_RUNS",
    "SPIN_DURATION_US",
    "Embedder",
    "ModelFingerprint",
    "fastembed_model_name",
    "spin_config",
]

# Texts go to the model shortest first, 8 at a time: every text in a model batch is padded to the
# longest one, and on CPU that padding costs more than the extra calls (measured on Quora
# questions, 16-64 per call: 1.2-1.5 ms per text, against 2.0 ms unsorted in batches of 32).
_BATCH_SIZE = 8
# Model calls that may run at once on one session (ONNX Runtime's run and fastembed's tokenizing
# are thread-safe): with two, a small batch no longer leaves the second core idle while it runs
# and a guard's phrase check no longer waits behind a whole batch (issue #16,
# bench/results/fragments/throughput.md); more would only oversubscribe the intra-op threads.
CONCURRENT_RUNS = 2
_REGISTRY_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelFingerprint:
    """Everything that decides which vectors a model produces; ``digest`` names Redis indexes."""

    model_id: str
    dim: int
    pooling: str
    normalized: bool
    max_tokens: int
    onnx_sha256: str
    quantized: bool

    @property
    def digest(self) -> str:
        """12 hex characters of a sha256 over all fields, stable across processes."""
        payload = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ModelError(f"cannot read ONNX model {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _onnx_output_dim(path: Path) -> int:
    """The last axis of the model's first output, for directories without a config.json."""
    import onnx

    try:
        output = onnx.load(str(path), load_external_data=False).graph.output[0]
        size = int(output.type.tensor_type.shape.dim[-1].dim_value)
    except Exception as exc:  # onnx raises DecodeError, IndexError, ...
        raise ModelError(f"cannot load ONNX model {path}: {_one_line(exc)}") from exc
    if size <= 0:
        raise ModelError(f"cannot tell the embedding size of {path}: add a config.json")
    return size


def fastembed_model_name(fingerprint: ModelFingerprint, model_file: str) -> str:
    """The name fastembed opens this model by, registered as a custom model (once per
    fingerprint and file): fastembed knows only hub models, and the hub is never asked."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    slug = model_slug(fingerprint.model_id)
    name = f"semcache/{slug}-{fingerprint.digest}-{model_slug(model_file)}"
    with _REGISTRY_LOCK:
        known = {
            description.model.lower() for description in TextEmbedding._list_supported_models()
        }
        if name.lower() not in known:
            TextEmbedding.add_custom_model(
                model=name,
                pooling=PoolingType.CLS if fingerprint.pooling == "cls" else PoolingType.MEAN,
                normalization=fingerprint.normalized,
                sources=ModelSource(hf=name),
                dim=fingerprint.dim,
                model_file=model_file,
            )
    return name


def _open_engine(
    resolved: ResolvedModel, fingerprint: ModelFingerprint, threads: int | None, spin_us: int
) -> Any:
    """Load ``resolved`` through fastembed, with our session options (``_tune_session``)."""
    from fastembed import TextEmbedding

    name = fastembed_model_name(fingerprint, resolved.model_file)
    path = resolved.path / resolved.model_file
    try:
        engine = TextEmbedding(
            model_name=name,
            cache_dir=str(resolved.path),  # never used: nothing is downloaded
            specific_model_path=str(resolved.path),
            threads=threads,
        )
    except Exception as exc:  # onnxruntime and fastembed raise assorted types
        raise ModelError(f"cannot load ONNX model {path}: {_one_line(exc)}") from exc
    _tune_session(engine, path, threads, spin_us)
    tokenizer = getattr(engine.model, "tokenizer", None)
    truncation = getattr(tokenizer, "truncation", None) or {}
    if tokenizer is not None and truncation.get("max_length") != fingerprint.max_tokens:
        direction = truncation.get("direction", "right")
        tokenizer.enable_truncation(max_length=fingerprint.max_tokens, direction=direction)
    try:
        probe = np.asarray(list(engine.embed(["semcache"])))
    except Exception as exc:
        raise ModelError(f"ONNX model {path} fails on a test input: {_one_line(exc)}") from exc
    if probe.shape != (1, fingerprint.dim):
        raise ModelError(
            f"ONNX model {path} returns shape {probe.shape[1:]}, not ({fingerprint.dim},)"
        )
    return engine


#: How long an idle intra-op worker spins for more work before it sleeps, in microseconds.
#: Spinning between the operators of one run is what makes one query fast on an idle
#: machine; spinning for ONNX Runtime's default time after each op is what made it 1.6-2x
#: slower when the cores are shared. 20 µs keeps the first and drops the second
#: (``python -m bench.embed_sessions``; ``bench/results/fragments/spin.md``).
SPIN_DURATION_US = 20
#: The first ONNX Runtime that reads ``session.intra_op.spin_duration_us``; an older one
#: would spin for its default time, so spinning stays off there.
_SPIN_DURATION_SINCE = (1, 27)


def spin_config(ort_version: str, spin_us: int = SPIN_DURATION_US) -> dict[str, str]:
    """Session config entries for the intra-op and inter-op thread pools of this ONNX
    Runtime version: spinning for ``spin_us`` where the duration can be bounded, else none
    (``spin_us=0``: none, for hosts whose cores are always oversubscribed)."""
    try:
        major, minor = (int(part) for part in ort_version.split(".")[:2])
    except ValueError:
        major, minor = 0, 0
    entries = {"session.inter_op.allow_spinning": "0"}  # sequential execution: unused pool
    if spin_us <= 0 or (major, minor) < _SPIN_DURATION_SINCE:
        return {**entries, "session.intra_op.allow_spinning": "0"}
    return {
        **entries,
        "session.intra_op.allow_spinning": "1",
        "session.intra_op.spin_duration_us": str(spin_us),
    }


def _tune_session(engine: Any, path: Path, threads: int | None, spin_us: int) -> None:
    """Reopen fastembed's ONNX Runtime session with bounded thread spinning (same graph,
    same ``ORT_ENABLE_ALL`` optimizations, bit-identical outputs). Workers that spin for
    ONNX Runtime's default time burn a core while they wait; on a machine whose cores are
    shared (Redis, the app's own threads, other processes) that made one query's embedding
    2-4x slower at the median (``bench/embed_speed.py``), and no spinning at all cost ~25%
    on an idle machine. fastembed exposes no such option, hence the reopen."""
    import onnxruntime as ort

    model = getattr(engine, "model", None)
    session = getattr(model, "model", None)
    if model is None or not isinstance(session, ort.InferenceSession):
        return  # another fastembed layout: keep its session
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in spin_config(ort.__version__, spin_us).items():
        options.add_session_config_entry(key, value)
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
    try:
        tuned = ort.InferenceSession(str(path), options, providers=session.get_providers())
    except Exception:  # noqa: BLE001 - fastembed's own session works: keep it
        return
    model.model = tuned


def _token_counter(directory: Path) -> Any:
    """The model's tokenizer with truncation and padding off, for exact token counts."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises a bare Exception
        raise ModelError(f"cannot load {directory / 'tokenizer.json'}: {_one_line(exc)}") from exc
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@dataclass(frozen=True)
class _Loaded:
    resolved: ResolvedModel
    engine: Any
    counter: Any
    fingerprint: ModelFingerprint


class Embedder:
    """Unit-length sentence embeddings; cheap to create, loads on first use, thread-safe."""

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        model_path: Path | str | None = None,
        quantize: bool = False,
        cache_dir: Path | None = None,
        threads: int | None = None,
        spin_us: int = SPIN_DURATION_US,
    ) -> None:
        """``spin_us``: how long ONNX Runtime's idle workers spin before they sleep; 0 turns
        spinning off, which pays on a host whose cores are always oversubscribed."""
        if type(spin_us) is not int or spin_us < 0:
            raise ConfigurationError(f"spin_us must be whole microseconds >= 0, not {spin_us!r}")
        self._model = model
        self._model_path = Path(model_path).expanduser() if model_path is not None else None
        self._quantize = quantize
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._threads = threads
        self._spin_us = spin_us
        self._load_lock = threading.Lock()
        self._runs = threading.BoundedSemaphore(CONCURRENT_RUNS)
        self._loaded: _Loaded | None = None
        self._failure: ModelError | None = None

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> Embedder:
        return cls(
            settings.embedding_model,
            model_path=settings.model_path,
            quantize=settings.quantize,
            cache_dir=settings.cache_dir,
        )

    def __repr__(self) -> str:
        where = f"model_path={str(self._model_path)!r}" if self._model_path else repr(self._model)
        return f"<Embedder {where} quantize={self._quantize} loaded={self._loaded is not None}>"

    def load(self) -> None:
        """Resolve and load the model once; a broken model raises ``ModelError`` here."""
        self._state()

    def _state(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._load_lock:
            if self._loaded is None:
                if self._failure is not None:
                    raise self._failure
                try:
                    self._loaded = self._load()
                except ModelError as exc:
                    self._failure = exc
                    raise
            return self._loaded

    def _load(self) -> _Loaded:
        resolved = resolve_model(
            self._model,
            model_path=self._model_path,
            quantize=self._quantize,
            cache_dir=self._cache_dir,
        )
        onnx_path = resolved.path / resolved.model_file
        meta = resolved.meta
        fingerprint = ModelFingerprint(
            model_id=meta.model_id,
            dim=meta.dim or _onnx_output_dim(onnx_path),
            pooling=meta.pooling,
            normalized=meta.normalized,
            max_tokens=meta.max_seq_length,
            onnx_sha256=_file_sha256(onnx_path),
            quantized=meta.quantized,
        )
        counter = _token_counter(resolved.path)
        engine = _open_engine(resolved, fingerprint, self._threads, self._spin_us)
        return _Loaded(resolved, engine, counter, fingerprint)

    @property
    def fingerprint(self) -> ModelFingerprint:
        return self._state().fingerprint

    @property
    def dim(self) -> int:
        return self._state().fingerprint.dim

    @property
    def max_tokens(self) -> int:
        """Inputs longer than this are truncated by the model (see ``count_tokens``)."""
        return self._state().fingerprint.max_tokens

    @property
    def model_dir(self) -> Path:
        """The directory the ONNX model was loaded from."""
        return self._state().resolved.path

    @property
    def model_file(self) -> str:
        """The ONNX file in ``model_dir`` that was loaded."""
        return self._state().resolved.model_file

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """An ``(len(texts), dim)`` float32 array of L2-normalized sentence embeddings."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single str")
        state = self._state()
        batch = list(texts)
        if not batch:
            return np.zeros((0, state.fingerprint.dim), dtype=np.float32)
        try:
            order = sorted(range(len(batch)), key=lambda i: len(batch[i]))
            with self._runs:
                rows = list(state.engine.embed([batch[i] for i in order], batch_size=_BATCH_SIZE))
            vectors = np.empty((len(batch), state.fingerprint.dim), dtype=np.float32)
            vectors[order] = np.asarray(rows, dtype=np.float32).reshape(vectors.shape)
        except Exception as exc:  # onnxruntime, tokenizers and numpy raise assorted types
            raise EmbeddingError(
                f"embedding {len(batch)} text(s) failed: {_one_line(exc)}"
            ) from exc
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts including special tokens, never truncated (compare with ``max_tokens``)."""
        if isinstance(texts, str):
            raise TypeError("count_tokens() takes a sequence of strings, not a single str")
        state = self._state()
        try:
            encodings = state.counter.encode_batch(list(texts))
        except Exception as exc:  # tokenizers raises TypeError or a bare Exception
            raise EmbeddingError(f"counting tokens failed: {_one_line(exc)}") from exc
        return [len(encoding.ids) for encoding in encodings]
