"""``semcache redis start|stop|status``: the embedded Redis server that outlives the command."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..embedded import running_server, start_server, stop_server

__all__ = ["register"]

logger = logging.getLogger(__name__)

_STATUS_HELP = """\
Print the URL, pid, data dir and modules of the embedded server.

exit status: 0 running, 3 not running (the LSB convention), 1 on an error.
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``redis`` command group to the ``semcache`` parser."""
    parser = groups.add_parser(
        "redis",
        help="run a local Redis with Search (the 'embedded' extra)",
        description="A local Redis 8 with the Search and JSON modules, running in the background. "
        "Each installation (a checkout's src, a venv) records its own server, in "
        "$SEMCACHE_STATE_DIR or --state-dir if given: stop never stops another one's.",
    )
    commands = parser.add_subparsers(dest="redis_command", required=True, metavar="COMMAND")

    start = commands.add_parser(
        "start",
        help="start the server in the background and print its URL",
        description="Start the embedded Redis in the background and print its URL on stdout. "
        "If it is already running, print that server's URL instead (exit status 0).",
    )
    start.add_argument("--port", type=int, default=None, help="port to listen on (default: free)")
    start.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for it (default: 20)"
    )
    start.set_defaults(handler=_start)

    stop = commands.add_parser(
        "stop",
        help="stop the background server",
        description="Stop the embedded Redis (its data is not saved). Exit status 0 also when "
        "it was not running.",
    )
    stop.set_defaults(handler=_stop)

    status = commands.add_parser(
        "status",
        help="show whether the server runs (exit status 0 running, 3 not running)",
        description=_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.set_defaults(handler=_status)
    for command in (start, stop, status):
        command.add_argument(
            "--state-dir",
            type=Path,
            default=None,
            help="where the server is recorded (default: $SEMCACHE_STATE_DIR, else one folder "
            "per installation under the cache dir)",
        )


def _start(args: argparse.Namespace) -> int:
    existing = running_server(args.state_dir)
    if existing is not None:
        if args.port is not None and args.port != existing.port:
            logger.warning(
                "already running on port %s; run 'semcache redis stop' first to use --port %s",
                existing.port,
                args.port,
            )
        else:
            logger.info("already running (pid %s)", existing.pid)
        print(existing.url)
        return 0
    server = start_server(port=args.port, timeout=args.timeout, folder=args.state_dir)
    print(server.url)
    return 0


def _stop(args: argparse.Namespace) -> int:
    print("stopped" if stop_server(args.state_dir) else "not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    server = running_server(args.state_dir)
    if server is None:
        print("not running")
        return 3
    print(f"url: {server.url}")
    print(f"pid: {server.pid}")
    print(f"data_dir: {server.data_dir}")
    print(f"modules: {', '.join(sorted(server.modules()))}")
    return 0
