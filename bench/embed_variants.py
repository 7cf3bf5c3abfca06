"""Cheaper MiniLM variants (issue #16): build int8 copies, then speed A/B and hit quality.

Each variant is a copy of the fp32 model directory with another ``model.onnx`` (so it loads
through ``Embedder(model_path=...)`` and gets its own fingerprint). Quality: guards_eval's
protocols (fow-cache pairs, Banking77 and CLINC150 nearest-train lookups) at the default
threshold with guards, design halves and held-out halves apart, beside fp32. Speed: one query's
embedding, rounds interleaved fp32, variant, fp32, variant... (median of round medians).
Calibration text for the static variants comes from Banking77 and CLINC150 *train* rows only
(the lookups are their test rows) and never from fow-cache.

``python -m bench.embed_variants build`` then ``... quality`` and ``... speed``.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bench.embed_speed import QUERIES
from bench.guards_eval import (
    DATASETS,
    CachedEmbedder,
    Lookup,
    banking,
    banking_split,
    clinc,
    clinc_split,
    fow_pairs,
    score,
    verdicts,
)
from semcache_plugins import Embedder
from semcache_plugins._precision._guards import DEFAULT_SIMILARITY_THRESHOLD

ROOT = Path(tempfile.gettempdir()) / "semcache_variants"


def fp32_dir() -> Path:
    embedder = Embedder()
    embedder.load()
    return embedder.model_dir


def _weights(model: object) -> dict[str, tuple[int, ...]]:
    return {t.name: tuple(t.dims) for t in model.graph.initializer}  # type: ignore[attr-defined]


def matmuls(path: Path) -> list[tuple[str, int, str]]:
    """(node name, layer, kind) of the weight MatMuls: kind q/k/v/out/ffn1/ffn2, in graph order."""
    import onnx

    model = onnx.load(str(path))
    shapes = _weights(model)
    found: list[tuple[str, int, str]] = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        weight = next((shapes[i] for i in node.input if i in shapes), None)
        if weight is None:
            continue
        found.append((node.name, 0, "x" if weight != (384, 1536) else "ffn1"))
    # 6 weight MatMuls per layer, in order q, k, v, out, ffn1, ffn2
    kinds = ("q", "k", "v", "out", "ffn1", "ffn2")
    return [(name, i // 6, kinds[i % 6]) for i, (name, _, _) in enumerate(found)]


def calibration_texts(n: int = 256, seed: int = 3) -> list[str]:
    train = [t for t, _ in banking_split(DATASETS)[0]] + [t for t, _ in clinc_split(DATASETS)[0]]
    return random.Random(seed).sample(train, n)


class _Reader:
    """Calibration batches (one text each) for ``quantize_static``."""

    def __init__(self, base: Path, texts: list[str]) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(base / "tokenizer.json"))
        self.rows: Iterator[dict[str, np.ndarray]] = iter([self._row(tok.encode(t)) for t in texts])

    @staticmethod
    def _row(enc: object) -> dict[str, np.ndarray]:
        ids = np.array([enc.ids], dtype=np.int64)  # type: ignore[attr-defined]
        mask = np.array([enc.attention_mask], dtype=np.int64)  # type: ignore[attr-defined]
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.rows, None)


def _dynamic(**options: object) -> Callable[[Path, Path, Path], None]:
    def build(base: Path, src: Path, dst: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        nodes = options.pop("nodes", None)
        op_types = options.pop("op_types", ["MatMul"])
        chosen = None
        if callable(nodes):
            chosen = [name for name, layer, kind in matmuls(src) if nodes(layer, kind)]
        quantize_dynamic(
            src,
            dst,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=chosen,
            op_types_to_quantize=op_types,
            **options,  # type: ignore[arg-type]
        )

    return build


def _static(**options: object) -> Callable[[Path, Path, Path], None]:
    def build(base: Path, src: Path, dst: Path) -> None:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        nodes = options.pop("nodes", None)
        chosen = None
        if callable(nodes):
            chosen = [name for name, layer, kind in matmuls(src) if nodes(layer, kind)]
        quantize_static(
            src,
            dst,
            _Reader(base, calibration_texts()),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=chosen,
            extra_options={"ActivationSymmetric": True},
            **options,  # type: ignore[arg-type]
        )

    return build


VARIANTS: dict[str, Callable[[Path, Path, Path], None]] = {
    "dyn-all-gather": _dynamic(op_types=None),  # what ``quantize=True`` ships: every op type
    "dyn-all": _dynamic(),
    "dyn-all-pc-rr": _dynamic(per_channel=True, reduce_range=True),
    "dyn-all-pc": _dynamic(per_channel=True),
    "dyn-pc-rr-no-ffn2": _dynamic(
        per_channel=True, reduce_range=True, nodes=lambda _, k: k != "ffn2"
    ),
    "dyn-pc-rr-mid": _dynamic(per_channel=True, reduce_range=True, nodes=lambda n, _: 0 < n < 5),
    "dyn-pc-rr-attn": _dynamic(
        per_channel=True, reduce_range=True, nodes=lambda _, k: not k.startswith("ffn")
    ),
    "dyn-pc-rr-ffn1": _dynamic(per_channel=True, reduce_range=True, nodes=lambda _, k: k == "ffn1"),
    "dyn-pc-rr-no-last": _dynamic(per_channel=True, reduce_range=True, nodes=lambda n, _: n < 5),
    "dyn-ffn": _dynamic(nodes=lambda layer, kind: kind.startswith("ffn")),
    "dyn-ffn-pc": _dynamic(per_channel=True, nodes=lambda layer, kind: kind.startswith("ffn")),
    "dyn-mid": _dynamic(nodes=lambda layer, kind: 0 < layer < 5),
    "dyn-mid-ffn": _dynamic(nodes=lambda layer, kind: 0 < layer < 5 and kind.startswith("ffn")),
    "static-ffn-pc": _static(per_channel=True, nodes=lambda layer, k: k.startswith("ffn")),
}


def build(names: list[str]) -> None:
    base = fp32_dir()
    logging.getLogger().setLevel(logging.ERROR)
    for name in names:
        dst = ROOT / name
        if (dst / "model.onnx").exists():
            continue
        shutil.copytree(base, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.onnx*"))
        started = time.perf_counter()
        VARIANTS[name](base, base / "model.onnx", dst / "model.onnx")
        size = (dst / "model.onnx").stat().st_size / 1e6
        print(f"built {name}: {size:.1f} MB in {time.perf_counter() - started:.0f}s", flush=True)


LOADERS: dict[str, Callable[[CachedEmbedder], list[Lookup]]] = {
    "fow": lambda emb: fow_pairs(DATASETS, emb, "different"),
    "banking77": lambda emb: banking(DATASETS, emb),
    "clinc150": lambda emb: clinc(DATASETS, emb),
}


def quality(
    names: list[str], cache: Path, datasets: list[str], threshold: float | None = None
) -> None:
    threshold = DEFAULT_SIMILARITY_THRESHOLD if threshold is None else threshold
    print("| variant | threshold | dataset | half | hit % | precision | served |")
    print("|---|---:|---|---|---:|---:|---:|")
    for name in ["fp32", *names]:
        emb = CachedEmbedder(cache)
        if name != "fp32":
            emb.embedder = Embedder(model_path=ROOT / name)
        for dataset in datasets:
            rows = LOADERS[dataset](emb)
            allowed = [v.allowed for v in verdicts(rows, emb)]
            for label, keep in (("design", True), ("held-out", False)):
                idx = [i for i, row in enumerate(rows) if row.design == keep]
                at = DEFAULT_SIMILARITY_THRESHOLD if name == "fp32" else threshold
                hit, _, prec, served = score([rows[i] for i in idx], [allowed[i] for i in idx], at)
                print(
                    f"| {name} | {at:.3f} | {dataset} | {label} | {hit:.2f} | {prec:.4f} "
                    f"| {served} |"
                )
            print("", end="", flush=True)


def _p50(embedder: Embedder, calls: int, batch: int = 1) -> float:
    times = []
    for n in range(calls):
        texts = [QUERIES[(n + i) % len(QUERIES)] for i in range(batch)]
        started = time.perf_counter()
        embedder.embed(texts)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def speed(names: list[str], rounds: int, calls: int, batch: int = 1) -> None:
    base = Embedder()
    base.load()
    for name in names:
        other = Embedder(model_path=ROOT / name)
        other.load()
        a: list[float] = []
        b: list[float] = []
        for _ in range(rounds):
            a.append(_p50(base, calls, batch))
            b.append(_p50(other, calls, batch))
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        cos = float(np.min(np.sum(base.embed(QUERIES) * other.embed(QUERIES), axis=1)))
        print(
            f"| {name} | {batch} | {statistics.median(a):.2f} | {statistics.median(b):.2f} | "
            f"{statistics.median(b) / statistics.median(a):.2f}x "
            f"({min(ratios):.2f}-{max(ratios):.2f}) | {cos:.4f} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("build", "quality", "speed"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threshold", type=float, default=None, help="for the variants")
    parser.add_argument("--batch", type=int, default=1, help="texts per call (speed)")
    parser.add_argument("--datasets", default=",".join(LOADERS))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "guards_cache")
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    if args.what == "build":
        build(names)
    elif args.what == "quality":
        quality(names, args.cache, args.datasets.split(","), args.threshold)
    else:
        speed(names, args.rounds, args.calls, args.batch)


if __name__ == "__main__":
    main()
