"""The datasets shipped in the repository's ``datasets/``: tests read them there, so a clone with
nothing beside it is complete (the Quora pairs are never shipped, and no test uses them)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
FOW_PAIRS = DATASETS / "fow_cache" / "pairs.jsonl"


def fow_pairs() -> list[dict[str, Any]]:
    """fow-cache's 600 labelled pairs (``a``, ``b``, ``same_answer``, ``category``, ...)."""
    with FOW_PAIRS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def fow_conversations() -> list[dict[str, Any]]:
    """fow-cache's 240 multi-turn pairs (``conv-parts`` and ``conv-long``; ``a`` and ``b`` are
    message lists, ``subtype``, ``same_answer``)."""
    folder = DATASETS / "fow_cache"
    rows = []
    for name in sorted([*folder.glob("conv-parts/*.jsonl"), *folder.glob("conv-long/*.jsonl")]):
        with name.open(encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def banking77(split: str) -> list[tuple[str, str]]:
    """Banking77 ``(text, category)`` rows of ``train`` or ``test``."""
    with (DATASETS / "banking77" / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
        return [(row["text"], row["category"]) for row in csv.DictReader(handle)]


def calibration_pairs(should_hit: int, must_not_hit: int) -> list[dict[str, Any]]:
    """The first fow-cache pairs of each label (ambiguous rows left out) as calibration records,
    must-not-hit pairs taken round-robin over the trap categories."""
    rows = [row for row in fow_pairs() if not row.get("ambiguous")]
    hits = [row for row in rows if row["same_answer"]][:should_hit]
    by_category: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if not row["same_answer"]:
            by_category.setdefault(row["category"], []).append(row)
    traps = [row for group in zip(*by_category.values(), strict=False) for row in group]
    chosen = hits + traps[:must_not_hit]
    assert len(chosen) == should_hit + must_not_hit, "not that many shipped pairs"
    return [{"cached": r["b"], "query": r["a"], "should_hit": r["same_answer"]} for r in chosen]
