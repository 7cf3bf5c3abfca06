"""A watchdog that stops the embedded redis-server when the process that started it dies."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["watch"]

logger = logging.getLogger("semcache_plugins")

# Run by a separate, stdlib-only Python (``-I``): stops the server once this process is gone,
# however it ended (SIGKILL included). It polls getppid() rather than relying on Linux's
# PR_SET_PDEATHSIG, which fires when the *thread* that started the child exits (a worker
# thread of a pool, say) and does not exist elsewhere. It exits as soon as the server does.
_WATCHDOG = """
import os, signal, sys, time
parent, server, exe = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
def alive():
    try:
        os.kill(server, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{server}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
def ours():
    try:
        with open(f"/proc/{server}/cmdline", "rb") as cmdline:
            return cmdline.read().startswith(exe)  # redis rewrites its title after it
    except OSError:
        return not os.path.isdir("/proc")
while os.getppid() == parent:
    if not alive():
        sys.exit(0)
    time.sleep(0.2)
for sig in (signal.SIGTERM, signal.SIGKILL):
    if not alive() or not ours():
        sys.exit(0)
    os.kill(server, sig)
    end = time.monotonic() + 5
    while alive() and time.monotonic() < end:
        time.sleep(0.05)
"""


def watch(server: subprocess.Popen[bytes], executable: Path) -> subprocess.Popen[bytes] | None:
    """A watchdog process that stops ``server`` when this process dies (see ``_WATCHDOG``);
    None (and a warning) when no Python can be started for it: the server still runs."""
    args = [sys.executable, "-I", "-c", _WATCHDOG, str(os.getpid()), str(server.pid)]
    try:
        return subprocess.Popen(  # noqa: S603 -- our own interpreter and code, no shell
            [*args, str(executable)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, ValueError) as exc:
        logger.warning(
            "semcache: no watchdog for the embedded Redis (%s): it may outlive a killed process",
            exc,
        )
        return None
