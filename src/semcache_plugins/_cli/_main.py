"""The ``semcache`` command line: one argparse tree, one module per command group.

Errors are one line on stderr, ``semcache: error: ...``: exit code 1 for a ``SemcacheError``
(bad input the cache reports, Redis or the model failing), 2 for invalid ``SEMCACHE_*`` settings
or arguments (pydantic's ``ValidationError``, any ``ValueError``; argparse uses 2 as well). Only
``-v`` shows the traceback, and the INFO lines of third-party libraries (RedisVL, httpx, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from pydantic import ValidationError

from .._errors import SemcacheError

__all__ = ["build_parser", "error_line", "main"]

#: Third-party loggers that log routine INFO lines (RedisVL's "Index already exists, not
#: overwriting.", httpx's "HTTP Request: ..."); shown only with ``-v``.
_CHATTY = ("redisvl", "RedisVL", "httpx", "httpcore", "LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


def build_parser() -> argparse.ArgumentParser:
    """The full ``semcache`` parser with every sub-command registered."""
    from . import _audit as _cli_audit
    from . import _cache as _cli_cache
    from . import _calibrate as _cli_calibrate
    from . import _demo as _cli_demo
    from . import _model as _cli_model
    from . import _proxy as _cli_proxy
    from . import _redis as _cli_redis

    parser = argparse.ArgumentParser(prog="semcache", description="Semantic cache for LLM calls.")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log at debug level, with tracebacks"
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    _cli_redis.register(groups)
    _cli_model.register(groups)
    _cli_demo.register(groups)
    _cli_cache.register(groups)
    _cli_calibrate.register(groups)
    _cli_proxy.register(groups)
    _cli_audit.register(groups)
    return parser


def _configure_logging(verbose: bool) -> None:
    """Our INFO lines on stderr; other libraries' only from WARNING up, unless ``verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        logging.getLogger("semcache_plugins").setLevel(logging.INFO)
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)


def _validation_error(exc: BaseException) -> ValidationError | None:
    """The pydantic ``ValidationError`` behind ``exc`` (itself, a cause or the error it was
    raised while handling), if any."""
    seen: BaseException | None = exc
    for _ in range(10):  # chains are short; never loop on a cycle
        if seen is None or isinstance(seen, ValidationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _setting_message(invalid: ValidationError) -> str:
    first = invalid.errors()[0]
    name = "_".join(str(part) for part in first["loc"]).upper()
    name = name if name.startswith("SEMCACHE_") or name == "REDIS_URL" else f"SEMCACHE_{name}"
    return f"invalid setting {name}={first.get('input')!r}: {first['msg']}"


def error_line(exc: BaseException) -> tuple[str, int]:
    """``(one-line message, exit code)`` for an error that ends a command."""
    invalid = _validation_error(exc)
    if isinstance(exc, SemcacheError):
        message, code = str(exc), 2 if invalid is not None else 1
    elif invalid is not None:
        message, code = _setting_message(invalid), 2
    elif isinstance(exc, ValueError):
        message, code = str(exc), 2
    else:
        message, code = f"{type(exc).__name__}: {exc} (run with -v for the traceback)", 1
    return " ".join((message or type(exc).__name__).split()), code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a command; any error becomes one ``semcache: error:`` line."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # every error ends as one line; -v adds the traceback
        if args.verbose:
            traceback.print_exc()
        message, code = error_line(exc)
        print(f"semcache: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
