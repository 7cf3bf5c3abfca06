"""Where the bench reads its data: the repository's ``datasets/``, and Quora pairs only if given.

The shipped datasets (``datasets/{banking77,clinc150,fow_cache}``, each with its licence) are
always there. The Quora question pairs (``qqp_gptcache``) are non-commercial and never shipped:
the bench uses them only from ``--quora PATH`` or, when that is not given, from
``../shared/datasets/qqp_gptcache`` beside the repository if it exists (the CI machine has it);
``--no-quora`` ignores both. Without Quora, the sections that fill a cache with many distinct
questions (latency, soak, peers speed and end-to-end) use the shipped questions instead:
fow-cache's same-answer pairs as the duplicate pairs and CLINC150 + Banking77 as fill.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "DATASETS",
    "QUORA_FILE",
    "add_quora_arguments",
    "question_rows",
    "quora_from",
    "quora_parent",
]

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "datasets"
SHARED_QUORA = ROOT.parent / "shared" / "datasets" / "qqp_gptcache"
QUORA_FILE = "similiar_qqp_full.json"


def add_quora_arguments(parser: argparse.ArgumentParser) -> None:
    """``--quora PATH`` and ``--no-quora`` (see the module docstring)."""
    parser.add_argument(
        "--quora",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"folder holding {QUORA_FILE} (default: {SHARED_QUORA} if it exists)",
    )
    parser.add_argument(
        "--no-quora", action="store_true", help="only the shipped datasets, even if Quora exists"
    )


def quora_from(args: argparse.Namespace) -> Path | None:
    """The Quora folder to use, or None: ``--quora``, else ``../shared`` if present."""
    if args.no_quora:
        return None
    if args.quora is not None:
        if not (args.quora / QUORA_FILE).is_file():
            raise SystemExit(f"--quora {args.quora}: no {QUORA_FILE} there")
        return Path(args.quora)
    return SHARED_QUORA if (SHARED_QUORA / QUORA_FILE).is_file() else None


def quora_parent(quora: Path) -> Path:
    """A folder whose ``qqp_gptcache`` is ``quora`` (guards_eval reads ``DATA/qqp_gptcache``)."""
    if quora.name == "qqp_gptcache":
        return quora.parent
    view = Path(tempfile.mkdtemp(prefix="bench-quora-"))
    (view / "qqp_gptcache").symlink_to(quora.resolve(), target_is_directory=True)
    return view


def _intent_texts() -> list[str]:
    """CLINC150 (every split) then Banking77 (train, test) questions."""
    full = json.loads((DATASETS / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    texts = [text for split in full.values() for text, _ in split]
    for name in ("train.csv", "test.csv"):
        with (DATASETS / "banking77" / name).open(newline="", encoding="utf-8") as handle:
            texts += [row["text"] for row in csv.DictReader(handle)]
    return texts


@cache
def question_rows(quora: Path | None) -> tuple[str, list[dict[str, Any]]]:
    """(source name, rows ``{text_a, text_b, label}``) with label 1 for duplicate questions.

    Quora's rows as they are; else fow-cache's same-answer pairs (label 1; its traps are left
    out) followed by the shipped intent questions, two per row, as non-duplicates (label 0).
    """
    if quora is not None:
        return "Quora", json.loads((quora / QUORA_FILE).read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = []
    with (DATASETS / "fow_cache" / "pairs.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            pair = json.loads(line)
            if pair["same_answer"] and not pair.get("ambiguous"):
                rows.append({"text_a": pair["a"], "text_b": pair["b"], "label": 1})
    texts = _intent_texts()
    rows += [
        {"text_a": a, "text_b": b, "label": 0}
        for a, b in zip(texts[::2], texts[1::2], strict=False)
    ]
    return "fow-cache, CLINC150 and Banking77", rows
