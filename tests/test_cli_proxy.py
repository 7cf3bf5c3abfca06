"""``semcache proxy`` / ``semcache fake-llm`` argument and config checks (no server started)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from semcache_plugins._cli import build_parser, main
from semcache_plugins._fake_llm import FakeLLM


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

    root = Path(__file__).resolve().parents[1]
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
