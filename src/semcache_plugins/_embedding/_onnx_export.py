"""Convert a sentence-transformers BERT checkpoint into a fastembed-loadable ONNX dir, no torch."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ModelError, ModelExportError
from ._onnx_graph import BertConfig, build_bert_graph

__all__ = [
    "export_steps",
    "META_FILE",
    "MODEL_FILE",
    "BertConfig",
    "ModelMeta",
    "SentenceConfig",
    "build_bert_graph",
    "export_checkpoint",
    "quantize_onnx_dir",
    "read_mapping",
    "read_sentence_config",
]

MODEL_FILE = "model.onnx"
META_FILE = "semcache_model.json"
EXPORT_FORMAT = 1
_COPIED_FILES = (
    "tokenizer.json",
    "special_tokens_map.json",
    "config.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
_MAX_PROTO_BYTES = 2_000_000_000


@dataclass(frozen=True)
class SentenceConfig:
    """What sentence-transformers does after the encoder: pooling, normalization, truncation."""

    pooling: str
    normalized: bool
    max_seq_length: int


@dataclass(frozen=True)
class ModelMeta:
    """The ``semcache_model.json`` written next to an exported ``model.onnx``."""

    model_id: str
    dim: int | None
    pooling: str
    normalized: bool
    max_seq_length: int
    quantized: bool
    format: int = EXPORT_FORMAT

    @classmethod
    def read(cls, directory: Path) -> ModelMeta | None:
        """The metadata of an exported dir, or None when it has none (or an outdated one)."""
        path = directory / META_FILE
        if not path.is_file():
            return None
        raw = read_mapping(path, ModelError)
        if raw.get("format") != EXPORT_FORMAT:
            return None
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ModelError(f"{path}: unexpected metadata ({exc})") from exc

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")


def _read_json(path: Path, error: type[ModelError]) -> Any:
    """Parse a JSON file, turning any failure into one line of ``error``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(f"cannot read {path}: {exc}") from exc


def read_mapping(path: Path, error: type[ModelError]) -> dict[str, Any]:
    """A JSON file that must hold an object; any failure is one line of ``error``."""
    raw = _read_json(path, error)
    if not isinstance(raw, dict):
        raise error(f"{path} does not hold a JSON object")
    return raw


def _pooling_mode(raw: Mapping[str, Any], where: Path, error: type[ModelError]) -> str:
    names = "cls_token mean_tokens max_tokens mean_sqrt_len_tokens weightedmean_tokens lasttoken"
    modes = [name for name in names.split() if raw.get(f"pooling_mode_{name}")]
    if modes in (["cls_token"], ["mean_tokens"]):
        return "cls" if modes == ["cls_token"] else "mean"
    raise error(f"{where}: pooling {modes or 'none'} is not supported (only mean or cls)")


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def read_sentence_config(
    directory: Path, max_positions: int | None, error: type[ModelError]
) -> SentenceConfig:
    """Pooling, normalization and max_seq_length from the sentence-transformers config files."""
    pooling_dir, normalized = directory / "1_Pooling", False
    if (directory / "modules.json").is_file():
        modules = _read_json(directory / "modules.json", error)
        for module in modules if isinstance(modules, list) else [None]:
            if not isinstance(module, dict):
                raise error(f"{directory / 'modules.json'} is not a list of modules")
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind == "Pooling":
                pooling_dir = directory / str(module.get("path", ""))
            elif kind == "Normalize":
                normalized = True
            elif kind != "Transformer":
                raise error(f"{directory}: module {kind!r} is not supported")
    pooling_file = pooling_dir / "config.json"
    pooling = "mean"
    if pooling_file.is_file():
        pooling = _pooling_mode(read_mapping(pooling_file, error), pooling_file, error)
    candidates = []
    if (directory / "sentence_bert_config.json").is_file():
        raw = read_mapping(directory / "sentence_bert_config.json", error)
        candidates.append(_positive_int(raw.get("max_seq_length")))
    if (directory / "tokenizer_config.json").is_file():
        raw = read_mapping(directory / "tokenizer_config.json", error)
        candidates.append(_positive_int(raw.get("model_max_length")))
    length = next((c for c in candidates if c is not None), max_positions or 512)
    return SentenceConfig(pooling, normalized, min(length, max_positions or length))


def _tokenizer_config(src: Path, max_seq_length: int) -> dict[str, Any]:
    """``tokenizer_config.json`` with fastembed's truncation pinned to ``max_seq_length``."""
    path = src / "tokenizer_config.json"
    raw = read_mapping(path, ModelExportError) if path.is_file() else {}
    raw.pop("max_length", None)
    raw["model_max_length"] = max_seq_length
    raw.setdefault("pad_token", "[PAD]")
    return raw


def _load_weights(path: Path) -> dict[str, np.ndarray]:
    """Float tensors of a safetensors file as fp32, keys stripped of any ``bert.``-style prefix."""
    from safetensors import safe_open

    anchor = "embeddings.word_embeddings.weight"
    try:
        with safe_open(str(path), framework="numpy") as handle:
            keys = list(handle.keys())
            prefix = next((k[: -len(anchor)] for k in keys if k.endswith(anchor)), None)
            if prefix is None:
                raise ModelExportError(f"{path}: no {anchor} tensor; not a BERT checkpoint")
            return {
                key[len(prefix) :]: np.asarray(handle.get_tensor(key), dtype=np.float32)
                for key in keys
                if key.startswith(prefix) and not key.endswith("position_ids")
            }
    except ModelExportError:
        raise
    except Exception as exc:  # safetensors raises bare Exception subclasses (bf16, corrupt header)
        raise ModelExportError(f"{path}: cannot read weights: {exc}") from exc


def _publish(staging: Path, dst: Path, *, overwrite: bool) -> None:
    """Move a finished staging dir to ``dst`` in one rename, so readers never see half a model."""
    try:
        staging.rename(dst)  # replaces an empty dst on POSIX
        return
    except OSError:
        if not overwrite or not dst.is_dir():
            raise
    retired = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:8]}")
    dst.rename(retired)
    staging.rename(dst)
    shutil.rmtree(retired, ignore_errors=True)


def _exists(dst: Path) -> bool:
    return dst.is_file() or (dst.is_dir() and any(dst.iterdir()))


@contextlib.contextmanager
def _staged(dst: Path, *, overwrite: bool) -> Iterator[Path]:
    """A temp dir next to ``dst`` that becomes ``dst`` on success and vanishes on failure."""
    if not overwrite and _exists(dst):
        raise ModelExportError(f"{dst} already exists (replace it with --force)")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    except OSError as exc:
        raise ModelExportError(f"cannot write {dst}: {exc.strerror or exc}") from exc
    try:
        yield staging
        os.chmod(staging, 0o755)  # noqa: S103 - mkdtemp makes it 0700; models are shareable
        _publish(staging, dst, overwrite=overwrite)
    except OSError as exc:
        reason = "already exists" if _exists(dst) and not overwrite else "cannot be written"
        raise ModelExportError(f"{dst} {reason}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _quiet_quantizer(record: logging.LogRecord) -> bool:
    """Drop onnxruntime.quantization's per-tensor chatter and its pre-processing advice."""
    advice = str(record.msg).startswith("Please consider to run pre-processing")
    return record.levelno >= logging.WARNING and not advice


def _quantize_into(staging: Path) -> None:
    """Replace ``staging/model.onnx`` by its int8 dynamic quantization."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = staging / "model.fp32.onnx"
    (staging / MODEL_FILE).rename(fp32)
    root = logging.getLogger()
    root.addFilter(_quiet_quantizer)
    try:
        quantize_dynamic(fp32, staging / MODEL_FILE, weight_type=QuantType.QInt8)
    except Exception as exc:  # onnxruntime raises assorted types for unsupported graphs
        raise ModelExportError(f"int8 quantization of {fp32.parent} failed: {exc}") from exc
    finally:
        root.removeFilter(_quiet_quantizer)
    fp32.unlink()


def export_checkpoint(
    src: Path,
    dst: Path,
    *,
    quantize: bool = False,
    model_id: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] = lambda steps: None,
) -> ModelMeta:
    """Convert the checkpoint in ``src`` into ``dst`` (``model.onnx`` + tokenizer + metadata).

    ``progress`` is called with 1 after each of ``export_steps(quantize)`` steps.
    """
    import onnx

    src = Path(src).expanduser()
    if not src.is_dir():
        raise ModelExportError(f"checkpoint directory {src} does not exist")
    for required in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (src / required).is_file():
            raise ModelExportError(
                f"{src} is not a sentence-transformers checkpoint: no {required}"
            )
    config = BertConfig.parse(read_mapping(src / "config.json", ModelExportError), src)
    sentence = read_sentence_config(src, config.max_position_embeddings, ModelExportError)
    model = build_bert_graph(config, _load_weights(src / "model.safetensors"))
    progress(1)
    if model.ByteSize() > _MAX_PROTO_BYTES:
        raise ModelExportError(f"{src}: model over 2 GB is too large for a single model.onnx")
    meta = ModelMeta(
        model_id=model_id or f"{src.resolve().parent.name}/{src.resolve().name}",
        dim=config.hidden_size,
        pooling=sentence.pooling,
        normalized=sentence.normalized,
        max_seq_length=sentence.max_seq_length,
        quantized=quantize,
    )
    with _staged(Path(dst).expanduser(), overwrite=overwrite) as staging:
        onnx.save_model(model, str(staging / MODEL_FILE))
        del model
        progress(1)
        for name in _COPIED_FILES:
            if (src / name).is_file():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / name, staging / name)
        tokenizer_config = _tokenizer_config(src, meta.max_seq_length)
        (staging / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
        if quantize:
            _quantize_into(staging)
            progress(1)
        meta.write(staging / META_FILE)
    progress(1)
    return meta


def export_steps(quantize: bool) -> int:
    """How many progress steps :func:`export_checkpoint` reports."""
    return 4 if quantize else 3


def quantize_onnx_dir(
    src: Path, dst: Path, meta: ModelMeta, *, model_file: str, overwrite: bool = False
) -> ModelMeta:
    """Write an int8 (dynamic) copy of the ONNX dir ``src`` into ``dst``."""
    quantized = replace(meta, quantized=True)
    with _staged(dst, overwrite=overwrite) as staging:
        shutil.copytree(src, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.onnx*"))
        shutil.copyfile(src / model_file, staging / MODEL_FILE)
        _quantize_into(staging)
        quantized.write(staging / META_FILE)
    return quantized
