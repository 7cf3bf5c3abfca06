"""``semcache proxy``: LiteLLM's own proxy server with the semantic cache installed;
``semcache fake-llm``: a local OpenAI-compatible upstream to try it offline."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError

__all__ = ["register"]

logger = logging.getLogger(__name__)

# What LiteLLM's proxy server imports beyond the SDK (its ``proxy`` extra).
_PROXY_MODULES = ("fastapi", "uvicorn", "backoff", "apscheduler", "yaml", "orjson")


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``proxy`` and ``fake-llm`` commands to the ``semcache`` parser."""
    proxy = groups.add_parser(
        "proxy",
        help="run LiteLLM's OpenAI-compatible proxy with the semantic cache (the 'proxy' extra)",
        description="Start LiteLLM's proxy server (as `litellm --config FILE` does) with the "
        "semantic cache installed. Settings come from SEMCACHE_* variables; without "
        "SEMCACHE_REDIS_URL an embedded Redis is started and stopped with the proxy.",
    )
    proxy.add_argument("--config", required=True, type=Path, help="LiteLLM proxy config (YAML)")
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    proxy.add_argument("--port", type=int, default=4000, help="port to listen on (4000)")
    proxy.set_defaults(handler=_proxy)

    fake = groups.add_parser(
        "fake-llm",
        help="serve a fake OpenAI-compatible model (for trying the proxy offline)",
        description="A deterministic OpenAI-compatible chat server on 127.0.0.1 "
        "(/v1/chat/completions, JSON or SSE) that counts requests. Stop it with Ctrl-C.",
    )
    fake.add_argument("--port", type=int, default=8001, help="port to listen on (8001)")
    fake.add_argument("--delay", type=float, default=0.4, help="seconds each answer takes (0.4)")
    fake.set_defaults(handler=_fake_llm)


def _check_proxy_installed() -> None:
    missing = [name for name in _PROXY_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(
            f"LiteLLM's proxy needs {', '.join(missing)}: install the 'proxy' extra "
            "(in a clone: pip install -e '.[proxy]')"
        )


def _check_config(path: Path) -> None:
    """The file exists and does not ask the proxy to build its own cache over ours."""
    import yaml  # type: ignore[import-untyped]

    try:
        config: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())  # YAML errors span several lines
        raise ConfigurationError(f"cannot read proxy config {path}: {detail}") from exc
    settings = config.get("litellm_settings") if isinstance(config, dict) else None
    if isinstance(settings, dict) and settings.get("cache"):
        raise ConfigurationError(
            f"{path}: remove `litellm_settings: cache:`; semcache proxy installs the cache "
            "(configure it with SEMCACHE_* variables)"
        )


def _proxy(args: argparse.Namespace) -> int:
    """Run the proxy as a child process and own its embedded Redis: LiteLLM's server ends its
    process on SIGTERM without unwinding, so the Redis is stopped here, after the child."""
    _check_proxy_installed()
    _check_config(args.config)
    env = dict(os.environ)
    with ExitStack() as stack:
        if not env.get("SEMCACHE_REDIS_URL"):
            from ..embedded import EmbeddedRedis

            server = stack.enter_context(EmbeddedRedis())
            env["SEMCACHE_REDIS_URL"] = server.url
            logger.info("semcache: embedded Redis at %s", server.url)
        argv = ["--config", str(args.config), "--host", args.host, "--port", str(args.port)]
        child = subprocess.Popen([sys.executable, "-m", __name__, *argv], env=env)  # noqa: S603
        stack.callback(_stop, child)
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
        stack.callback(signal.signal, signal.SIGTERM, previous)
        return child.wait()


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def serve(argv: list[str]) -> int:
    """In the child: install the cache, then run LiteLLM's own proxy CLI with ``argv``."""
    from litellm.proxy.proxy_cli import run_server

    from .. import litellm_proxy

    config = argv[argv.index("--config") + 1] if "--config" in argv else None
    logger.info("semcache: %r installed as litellm.cache", litellm_proxy.install(config).cache)
    result = run_server.main(args=argv, standalone_mode=False)
    return int(result) if isinstance(result, int) else 0


def _fake_llm(args: argparse.Namespace) -> int:
    from ._fake_llm import FakeLLM

    with FakeLLM(delay=args.delay, port=args.port) as llm:
        print(f"fake LLM at {llm.api_base} (Ctrl-C stops it)", flush=True)
        threading.Event().wait()
    return 0  # pragma: no cover - only Ctrl-C ends the wait


if __name__ == "__main__":  # pragma: no cover - the child process of ``semcache proxy``
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(serve(sys.argv[1:]))
