"""The BERT encoder as an ONNX graph built with ``onnx.helper`` (no torch), and its config."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ModelExportError

__all__ = ["BertConfig", "build_bert_graph"]


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
