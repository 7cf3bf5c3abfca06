"""``semcache proxy`` / ``semcache fake-llm`` argument and config checks (no server started)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from proxy_process import wait_until_live
from semcache_plugins._cli._fake_llm import FakeLLM
from semcache_plugins._cli._main import build_parser, main


def test_proxy_command_is_registered() -> None:
    args = build_parser().parse_args(["proxy", "--config", "c.yaml", "--port", "5000"])
    assert (args.config, args.host, args.port) == (Path("c.yaml"), "127.0.0.1", 5000)
    assert build_parser().parse_args(["fake-llm"]).port == 8001


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read proxy config"),
        ("model_list: [\n", "cannot read proxy config"),
        ("litellm_settings:\n  cache: true\n", "remove `litellm_settings: cache:`"),
    ],
)
def test_bad_configs_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, message: str
) -> None:
    config = tmp_path / "proxy.yaml"
    if text is not None:
        config.write_text(text)
    assert main(["proxy", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_example_config_names_the_handler_and_a_local_upstream() -> None:
    import yaml  # type: ignore[import-untyped]

    root = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((root / "examples" / "proxy.yaml").read_text())
    assert config["litellm_settings"]["callbacks"] == "semcache_plugins.litellm_proxy.handler"
    assert "cache" not in config["litellm_settings"]
    params = config["model_list"][0]["litellm_params"]
    assert params["api_base"] == "http://127.0.0.1:8001/v1"


def test_fake_llm_listens_on_the_given_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with FakeLLM(delay=0, port=port) as llm:
        assert llm.api_base == f"http://127.0.0.1:{port}/v1"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{llm.api_base}/chat/completions", json=body, timeout=10)
        assert reply.json()["choices"][0]["message"]["content"]
        assert llm.count == 1


@pytest.mark.timeout(400)
def test_proxy_with_embedded_redis_starts_and_stops_it(tmp_path: Path) -> None:
    """No SEMCACHE_REDIS_URL: an embedded Redis serves the proxy and goes away with it."""
    pytest.importorskip("backoff", reason="LiteLLM's proxy: pip install 'semcache-plugins[proxy]'")
    root = Path(__file__).resolve().parents[2]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SEMCACHE_REDIS_URL", "REDIS_URL")
    }
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), env.get("PYTHONPATH", "")])
    log_path = tmp_path / "proxy.log"
    config = root / "examples" / "proxy.yaml"
    command = [sys.executable, "-m", "semcache_plugins", "proxy", "--config", str(config)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_live(process, url, log_path, 240)
            headers = {"Authorization": "Bearer sk-semcache-local"}
            ping = httpx.get(f"{url}/cache/ping", headers=headers, timeout=60)
            assert ping.status_code == 200 and ping.json()["cache_type"] == "redis", ping.text
            found = re.search(r"embedded Redis at (redis://[\d.]+:\d+)", log_path.read_text())
            assert found is not None
            redis_url = found.group(1)
            assert redis.Redis.from_url(redis_url).ping()
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) is not None
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()


@pytest.mark.timeout(400)
def test_stock_litellm_proxy_with_the_callback(
    tmp_path: Path, redis_url: str, index_prefix: str
) -> None:
    """`litellm --config` as LiteLLM ships it: the callback line installs the cache, and the
    config's `semcache:` block wins over SEMCACHE_* variables."""
    pytest.importorskip("backoff", reason="LiteLLM's proxy: pip install 'semcache-plugins[proxy]'")
    root = Path(__file__).resolve().parents[2]
    config = tmp_path / "proxy.yaml"
    example = (root / "examples" / "proxy.yaml").read_text()
    config.write_text(example + "semcache:\n  namespace: stock\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        "SEMCACHE_REDIS_URL": redis_url,
        "SEMCACHE_INDEX_PREFIX": index_prefix,
        "SEMCACHE_NAMESPACE": "from-env",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    stock = "from litellm.proxy.proxy_cli import run_server; run_server()"
    log_path = tmp_path / "proxy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", stock, "--config", str(config), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_live(process, url, log_path, 240)
            headers = {"Authorization": "Bearer sk-semcache-local"}
            ping = httpx.get(f"{url}/cache/ping", headers=headers, timeout=60)
            assert ping.status_code == 200, ping.text
            body = ping.json()
            assert body["cache_type"] == "redis"
            assert body["health_check_cache_params"]["namespace"] == "stock"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
