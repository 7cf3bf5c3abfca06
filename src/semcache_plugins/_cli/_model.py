"""``semcache model export|info``: build an ONNX model from a checkpoint, show the fingerprint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._embedding._embedder import Embedder
from .._embedding._onnx_export import export_checkpoint, export_steps
from .._errors import ConfigurationError
from ._io import progress_bar

__all__ = ["register"]

_EXPORT_HELP = """\
Convert a sentence-transformers BERT-family checkpoint (config.json with model_type "bert",
model.safetensors, tokenizer.json, optional modules.json / 1_Pooling / sentence_bert_config.json)
into DST: model.onnx, the tokenizer files and semcache_model.json. No torch needed.

Use it with model_path=DST or SEMCACHE_MODEL_PATH=DST.
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``model`` command group to the ``semcache`` parser."""
    parser = groups.add_parser(
        "model",
        help="build and inspect the local embedding model",
        description="The ONNX embedding model: convert checkpoints, show the fingerprint.",
    )
    commands = parser.add_subparsers(dest="model_command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="convert a sentence-transformers BERT checkpoint dir to ONNX",
        description=_EXPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("src", type=Path, help="checkpoint directory")
    export.add_argument("dst", type=Path, help="output directory (must not exist, or be empty)")
    export.add_argument("--int8", action="store_true", help="quantize the weights to int8")
    export.add_argument(
        "--model-id", help="name recorded in the fingerprint (default: parent/name of SRC)"
    )
    export.add_argument("--force", action="store_true", help="replace an existing DST")
    export.set_defaults(handler=_export)

    info = commands.add_parser(
        "info",
        help="load the configured model and print its fingerprint as JSON",
        description="Resolve and load the model the cache would use (SEMCACHE_* settings apply), "
        "then print its fingerprint, digest and directory as JSON.",
    )
    info.add_argument("--model-path", type=Path, default=None, help="an ONNX or checkpoint dir")
    info.add_argument("--int8", action="store_true", help="use the int8 quantized model")
    info.set_defaults(handler=_info)


def _export(args: argparse.Namespace) -> int:
    with progress_bar(export_steps(args.int8), "export") as advance:
        meta = export_checkpoint(
            args.src,
            args.dst,
            quantize=args.int8,
            model_id=args.model_id,
            overwrite=args.force,
            progress=advance,
        )
    fingerprint = Embedder(model_path=args.dst).fingerprint  # loads: proves the export works
    kind = "int8" if meta.quantized else "fp32"
    print(f"{args.dst} fingerprint={fingerprint.digest} dim={fingerprint.dim} {kind}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .._settings import CacheSettings

    try:
        settings = CacheSettings()
    except ValidationError as exc:
        raise ConfigurationError(f"invalid SEMCACHE_* setting: {exc.errors()[0]['msg']}") from exc
    embedder = Embedder(
        settings.embedding_model,
        model_path=args.model_path if args.model_path is not None else settings.model_path,
        quantize=args.int8 or settings.quantize,
        cache_dir=settings.cache_dir,
    )
    fingerprint = embedder.fingerprint
    report = {
        **fingerprint.as_dict(),
        "digest": fingerprint.digest,
        "path": str(embedder.model_dir),
    }
    print(json.dumps(report, indent=2))
    return 0
