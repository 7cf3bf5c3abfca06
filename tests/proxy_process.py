"""Waiting for a LiteLLM proxy started in a subprocess (test_proxy.py, test_cli_proxy.py)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_live(
    process: subprocess.Popen[bytes], url: str, log_path: Path, seconds: float
) -> None:
    """Poll the proxy's liveliness route until it answers 200; fail with the log's tail if the
    process exits, or with "did not start" after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the proxy did not start"
        time.sleep(0.5)
