"""Shared helpers of the cache commands: options, JSONL input, progress, dotenv settings."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis.connection import parse_url

from .._errors import ConfigurationError

__all__ = [
    "check_redis_url",
    "command",
    "jsonl_records",
    "progress_bar",
    "read_jsonl",
    "with_redis",
    "write_threshold",
]

_THRESHOLD_LINE = re.compile(r"^\s*(export\s+)?SEMCACHE_SIMILARITY_THRESHOLD\s*=")


def check_redis_url(url: str) -> str:
    """``url`` if redis-py can parse it, else a one-line ``ConfigurationError`` naming it."""
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {url!r}: {exc}") from exc
    return url


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON)`` for each non-blank line; a bad line names its number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc


def jsonl_records(path: Path, parse: Callable[[Any], Any]) -> list[Any]:
    items = []
    for number, record in read_jsonl(path):
        try:
            if not isinstance(record, dict):
                raise ConfigurationError("each line must be a JSON object")
            items.append(parse(record))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{path}:{number}: {exc}") from exc
    return items


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A callback advancing a progress bar on stderr (rich on a terminal, else plain lines)."""
    try:
        from rich.console import Console
        from rich.progress import Progress

        console: Console | None = Console(stderr=True)
    except ImportError:  # pragma: no cover - rich is normally installed
        console = None
    if console is not None and console.is_terminal:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)
        return
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        print(f"{label}: {done}/{total}", file=sys.stderr)

    yield advance


def write_threshold(path: Path, threshold: float) -> None:
    """Set ``SEMCACHE_SIMILARITY_THRESHOLD`` in a dotenv file, replacing the line if present."""
    line = f"SEMCACHE_SIMILARITY_THRESHOLD={threshold:.2f}"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    replaced = [line if _THRESHOLD_LINE.match(old) else old for old in lines]
    if replaced == lines and line not in lines:
        replaced.append(line)
    path.write_text("\n".join(replaced) + "\n", encoding="utf-8")


def command(groups: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = groups.add_parser(name, help=summary, description=description)
    return parser


def with_redis(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--redis-url",
        help="Redis with Search (default: $SEMCACHE_REDIS_URL, $REDIS_URL, "
        "else the server of 'semcache redis start')",
    )
    parser.add_argument("--index-prefix", help="index prefix (default: SEMCACHE_INDEX_PREFIX)")
    return parser
