"""The ``semcache`` command line: one argparse tree, one module per command group."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ._errors import SemcacheError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full ``semcache`` parser with every sub-command registered."""
    from . import _cli_cache, _cli_calibrate, _cli_demo, _cli_model, _cli_redis

    parser = argparse.ArgumentParser(prog="semcache", description="Semantic cache for LLM calls.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    _cli_redis.register(groups)
    _cli_model.register(groups)
    _cli_demo.register(groups)
    _cli_cache.register(groups)
    _cli_calibrate.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a command, turn a ``SemcacheError`` into one clear line and exit code 1."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except SemcacheError as exc:
        print(f"semcache: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
