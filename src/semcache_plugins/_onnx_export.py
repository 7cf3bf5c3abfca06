"""Convert a sentence-transformers BERT checkpoint into a fastembed-loadable ONNX dir, no torch."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import ModelError, ModelExportError

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
class BertConfig:
    """The shape of a BERT encoder, read from ``config.json``."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: Path) -> BertConfig:
        """Validate ``config.json``; anything but plain BERT raises ``ModelExportError``."""
        model_type = raw.get("model_type")
        if model_type != "bert":
            raise ModelExportError(
                f"{where}: model_type {model_type!r} is not supported; "
                "only BERT-family checkpoints (model_type 'bert') can be exported"
            )
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ModelExportError(f"{where}: only absolute position embeddings are supported")
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ModelExportError(f"{where}: hidden_act {raw.get('hidden_act')!r} is not 'gelu'")
        try:
            config = cls(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=int(raw["hidden_size"]),
                num_layers=int(raw["num_hidden_layers"]),
                num_heads=int(raw["num_attention_heads"]),
                intermediate_size=int(raw["intermediate_size"]),
                max_position_embeddings=int(raw.get("max_position_embeddings", 512)),
                type_vocab_size=int(raw.get("type_vocab_size", 2)),
                layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelExportError(f"{where}: missing or invalid BERT setting {exc}") from exc
        if config.hidden_size % config.num_heads:
            raise ModelExportError(f"{where}: hidden_size is not a multiple of the head count")
        return config


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


class _Graph:
    """Accumulates ONNX nodes and initializers with generated names."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, value: np.ndarray | float, name: str | None = None) -> str:
        from onnx import numpy_helper

        self._count += 1
        name = name or f"const_{self._count}"
        array = value if isinstance(value, np.ndarray) else np.array(value, dtype=np.float32)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, key: str, *, transpose: bool = False) -> str:
        if key not in self.weights:
            raise ModelExportError(f"checkpoint weights have no tensor {key!r}")
        array = self.weights[key]
        return self.const(array.T if transpose else array, name=key)

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        self._count += 1
        output = out or f"{op_type.lower()}_{self._count}"
        node = helper.make_node(op_type, list(inputs), [output], name=f"n{self._count}", **attrs)
        self.nodes.append(node)
        return output

    def linear(self, x: str, prefix: str) -> str:
        product = self.op("MatMul", x, self.weight(f"{prefix}.weight", transpose=True))
        return self.op("Add", product, self.weight(f"{prefix}.bias"))

    def layer_norm(self, x: str, prefix: str, eps: float, out: str | None = None) -> str:
        gamma, beta = self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")
        return self.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=eps, out=out)

    def gelu(self, x: str) -> str:
        erf = self.op("Erf", self.op("Div", x, self.const(math.sqrt(2.0))))
        return self.op(
            "Mul", self.op("Mul", x, self.const(0.5)), self.op("Add", erf, self.const(1.0))
        )


def _attention(g: _Graph, x: str, mask_bias: str, prefix: str, config: BertConfig) -> str:
    head_dim = config.hidden_size // config.num_heads
    split = g.const(np.array([0, 0, config.num_heads, head_dim], dtype=np.int64))
    merge = g.const(np.array([0, 0, config.hidden_size], dtype=np.int64))

    def heads(name: str, perm: list[int]) -> str:
        projected = g.linear(x, f"{prefix}.self.{name}")
        return g.op("Transpose", g.op("Reshape", projected, split), perm=perm)

    query = g.op("Mul", heads("query", [0, 2, 1, 3]), g.const(1.0 / math.sqrt(head_dim)))
    scores = g.op("Add", g.op("MatMul", query, heads("key", [0, 2, 3, 1])), mask_bias)
    probs = g.op("Softmax", scores, axis=-1)
    context = g.op("MatMul", probs, heads("value", [0, 2, 1, 3]))
    context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge)
    attended = g.op("Add", g.linear(context, f"{prefix}.output.dense"), x)
    return g.layer_norm(attended, f"{prefix}.output.LayerNorm", config.layer_norm_eps)


def build_bert_graph(config: BertConfig, weights: Mapping[str, np.ndarray]) -> Any:
    """The BERT encoder as an ``onnx.ModelProto``; output 0 is ``last_hidden_state``."""
    from onnx import TensorProto, helper

    g = _Graph(weights)
    word = g.op("Gather", g.weight("embeddings.word_embeddings.weight"), "input_ids")
    zero, one = g.const(np.array([0], np.int64)), g.const(np.array([1], np.int64))
    seq_len = g.op("Slice", g.op("Shape", "input_ids"), one, g.const(np.array([2], np.int64)))
    position_table = g.weight("embeddings.position_embeddings.weight")
    position = g.op("Slice", position_table, zero, seq_len, zero)  # rows 0..seq_len-1
    token_type = g.op(
        "Gather", g.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"
    )
    summed = g.op("Add", g.op("Add", word, position), token_type)
    x = g.layer_norm(summed, "embeddings.LayerNorm", config.layer_norm_eps)

    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    mask = g.op("Unsqueeze", mask, g.const(np.array([1, 2], dtype=np.int64)))
    mask_bias = g.op("Mul", g.op("Sub", g.const(1.0), mask), g.const(-10000.0))

    for index in range(config.num_layers):
        prefix = f"encoder.layer.{index}"
        x = _attention(g, x, mask_bias, f"{prefix}.attention", config)
        hidden = g.gelu(g.linear(x, f"{prefix}.intermediate.dense"))
        out = "last_hidden_state" if index == config.num_layers - 1 else None
        residual = g.op("Add", g.linear(hidden, f"{prefix}.output.dense"), x)
        x = g.layer_norm(residual, f"{prefix}.output.LayerNorm", config.layer_norm_eps, out=out)

    axes = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, axes)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, [*axes, config.hidden_size]
    )
    graph = helper.make_graph(g.nodes, "bert_encoder", inputs, [output], g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="semcache-plugins"
    )
    model.ir_version = 8
    return model


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
