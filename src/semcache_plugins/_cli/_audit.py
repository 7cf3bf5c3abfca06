"""``semcache audit``: the audited semantic hits whose fresh answer disagreed, worst first."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .._cache._audit_run import audit_summary, read_audit
from .._precision._audit import AuditRecord, format_rate
from ._cache import _client, _prefix, index_versions
from ._io import command, with_redis

__all__ = ["register", "worst_first"]


def worst_first(records: list[AuditRecord]) -> list[AuditRecord]:
    """Lowest answer similarity first; among equals, the closest prompts (most trusted) first."""
    return sorted(records, key=lambda r: (r.answer_similarity, -r.similarity, -r.at))


def _delete_command(args: argparse.Namespace, entry_id: str) -> str:
    parts = ["semcache", "delete", entry_id]
    if args.index_prefix:
        parts[2:2] = ["--index-prefix", args.index_prefix]
    return " ".join(parts)


def _short(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _audit(args: argparse.Namespace) -> int:
    prefix = _prefix(args)
    report: list[dict[str, Any]] = []
    with _client(args) as client:
        for name in index_versions(client, prefix):
            counts, records = read_audit(client, name)
            worst = worst_first(records)[: args.limit]
            report.append({"index": name, **audit_summary(counts), "worst": worst})
    if args.json:
        rows = [
            {
                **item,
                "worst": [
                    {**vars(r), "delete": _delete_command(args, r.entry_id)} for r in item["worst"]
                ],
            }
            for item in report
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not report:
        print(f"no indexes under {prefix}")
    for item in report:
        print(
            f"index {item['index']}: semantic hits served {item['semantic_hits_served']}, "
            f"audited {item['audited']}, disagreements {item['disagreements']}, "
            f"estimated false-hit rate {format_rate(item)}"
        )
        for record in item["worst"]:
            where = "shadow" if record.shadow else "served"
            print(
                f"\n  answer similarity {record.answer_similarity:.3f} ({record.method}), "
                f"prompt similarity {record.similarity:.3f}, {where}, entry {record.entry_id}"
            )
            print(f"    asked:    {_short(record.query)}")
            print(f"    matched:  {_short(record.matched_prompt)}")
            print(f"    cached:   {_short(record.served)}")
            print(f"    provider: {_short(record.fresh)}")
            print(f"    remove:   {_delete_command(args, record.entry_id)}")
    return 0


def register(groups: Any) -> None:
    """Add ``audit``."""
    audit = with_redis(
        command(
            groups,
            "audit",
            "audited semantic hits the provider answered differently, worst first",
            "For each index under the prefix: semantic hits served (as of the last audit), "
            "audited hits, disagreements and the estimated false-hit rate with its 95% Wilson "
            "interval; then the logged disagreements, lowest answer similarity first, each with "
            "the command that deletes the entry. Needs SEMCACHE_AUDIT_RATE > 0 or shadow mode.",
        )
    )
    audit.add_argument("--limit", type=int, default=20, help="disagreements to show per index")
    audit.add_argument("--json", action="store_true", help="print JSON instead of text")
    audit.set_defaults(handler=_audit)
