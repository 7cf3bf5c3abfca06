"""An embedded Redis 8 with the Search and JSON modules, installed from PyPI wheels only."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, NoReturn, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._errors import EmbeddedRedisError, PortInUseError
from ._paths import cache_dir, state_dir
from ._server._redis_binaries import RedisBinaries, find_redis
from ._server._watchdog import watch

__all__ = [
    "EmbeddedRedis",
    "RedisBinaries",
    "find_redis",
    "resolve_redis_url",
    "running_server",
    "start_server",
    "stop_server",
]


def resolve_redis_url(explicit: str | None = None) -> str | None:
    """``explicit``, else ``$SEMCACHE_REDIS_URL``, else ``$REDIS_URL``, else None."""
    return explicit or os.environ.get("SEMCACHE_REDIS_URL") or os.environ.get("REDIS_URL") or None


def _client(host: str, port: int, timeout: float = 1.0) -> redis.Redis:
    no_retry = Retry(NoBackoff(), 0)
    return redis.Redis(host, port, socket_timeout=timeout, retry=no_retry, decode_responses=True)


def _serves(
    client: redis.Redis, pid: int, *, need_search: bool = False, run_id: str | None = None
) -> bool:
    """The server behind ``client`` is process ``pid`` (and the run ``run_id``, and has Search
    loaded, if asked)."""
    try:
        info: Any = client.info("server")
        if info.get("process_id") != pid or run_id not in (None, info.get("run_id")):
            return False
        reply: Any = client.module_list() if need_search else ()
    except redis.RedisError:
        return False
    return not need_search or any(module["name"] == "search" for module in reply)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _bind_port(host: str, port: int = 0) -> int | None:
    """Bind ``port`` (0: any free one) and release it: the port, or None when it is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return None
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A local redis-server with Search and JSON; nothing starts until ``start()``.

    With ``daemon=True`` the server outlives this process and is recorded in
    ``cache_dir()/redis/embedded.json`` (see ``running_server``, ``stop_server``).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        daemon: bool = False,
        state_dir: Path | None = None,
    ) -> None:
        self._host, self._requested_port, self._port = host, port, port
        self._state_dir = state_dir  # a daemon's record (default: ``_paths.state_dir()``)
        self._run_id: str | None = None  # Redis's id of the run we started (or recorded)
        self._requested_dir = self._data_dir = None if data_dir is None else Path(data_dir)
        self._daemon = daemon
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._launched = False  # we started this pid (vs. found it in the state file)

    def __repr__(self) -> str:
        return f"<EmbeddedRedis port={self._port} pid={self._pid} daemon={self._daemon}>"

    @property
    def url(self) -> str:
        """``redis://HOST:PORT``; raises ``EmbeddedRedisError`` before a port is known."""
        if self._port is None:
            raise EmbeddedRedisError("the embedded Redis has not been started")
        return f"redis://{self._host}:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def data_dir(self) -> Path | None:
        return self._data_dir

    @property
    def watchdog_pid(self) -> int | None:
        """The pid of the watchdog that stops the server if this process dies (None: none)."""
        return None if self._watchdog is None else self._watchdog.pid

    def is_running(self) -> bool:
        """Whether the server process is alive (for a daemon: the recorded pid)."""
        if self._process is not None:
            return self._process.poll() is None  # also reaps an exited child
        return self._pid is not None and _pid_alive(self._pid)

    def modules(self) -> list[str]:
        """Names of the modules loaded in the running server."""
        with _client(self._host, self._port or 0) as client:
            try:
                reply: Any = client.module_list()
            except redis.RedisError as exc:
                raise EmbeddedRedisError(f"cannot query {self.url}: {exc}") from exc
        return [str(module["name"]) for module in reply]

    def start(self, timeout: float = 20.0) -> str:
        """Start the server (on a free port unless one was given) and return its URL."""
        if self.is_running():
            return self.url
        binaries = find_redis()
        for attempt in range(3):  # a free port can be taken by someone else before we bind it
            port = _bind_port(self._host, self._requested_port or 0)
            if port is None:
                raise PortInUseError(f"port {self._requested_port} on {self._host} is in use")
            try:
                self._launch(binaries, port, timeout)
                break
            except PortInUseError:
                if self._requested_port is not None or attempt == 2:
                    raise
            except BaseException:  # e.g. KeyboardInterrupt while waiting: leave nothing behind
                self.stop()
                raise
        if self._daemon:
            with _client(self._host, self._port or 0) as client, contextlib.suppress(Exception):
                self._run_id = str(client.info("server")["run_id"])
            _write_state(self)
        else:
            atexit.register(self.stop)
        return self.url

    def _launch(self, binaries: RedisBinaries, port: int, timeout: float) -> None:
        data_dir = self._requested_dir or cache_dir() / "redis" / str(port)
        data_dir.mkdir(parents=True, exist_ok=True)
        log, pidfile = data_dir / "redis.log", data_dir / "redis.pid"
        log.unlink(missing_ok=True)
        pidfile.unlink(missing_ok=True)
        args = [str(binaries.server), "--port", str(port), "--bind", self._host]
        args += ["--dir", str(data_dir), "--save", "", "--appendonly", "no", "--logfile", str(log)]
        for module in binaries.modules:
            args += ["--loadmodule", str(module)]
        if self._daemon:
            args += ["--daemonize", "yes", "--pidfile", str(pidfile)]
        self._port, self._data_dir = port, data_dir
        with log.open("ab") as out:  # argv is built from our own paths; no shell is involved
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out)  # noqa: S603
        self._launched = True
        if not self._daemon:  # dies with this process, even a SIGKILLed one
            self._process, self._pid = process, process.pid
            self._watchdog = watch(process, binaries.server)
        else:  # the launcher exits as soon as the daemon has forked
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
            if process.poll() != 0:
                process.kill()
                process.wait()
                self._fail(log, port)
        deadline = time.monotonic() + timeout
        with _client(self._host, port) as client:
            while time.monotonic() < deadline:
                if self._pid is None:
                    with contextlib.suppress(OSError, ValueError):
                        self._pid = int(pidfile.read_text().strip())
                if self._pid is not None and not self.is_running():
                    self._fail(log, port)
                if self._pid is not None and _serves(client, self._pid, need_search=True):
                    return
                time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"redis-server not ready on port {port} in {timeout}s; see {log}")

    def _fail(self, log: Path, port: int) -> NoReturn:
        self.stop()
        tail = "(no log)"
        with contextlib.suppress(OSError):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        if "Address already in use" in tail:
            raise PortInUseError(f"port {port} on {self._host} is in use")
        raise EmbeddedRedisError(f"redis-server exited during start; last lines of {log}:\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down (SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL) and reap the process."""
        atexit.unregister(self.stop)
        if self._pid is not None and self._port is not None and self.is_running():
            with _client(self._host, self._port, 2.0) as client:
                # never signal a recycled pid, or a server this record did not start
                ours = _serves(client, self._pid, run_id=self._run_id)
                if ours:
                    with contextlib.suppress(redis.RedisError):
                        client.shutdown(nosave=True)
            for sig in (0, signal.SIGTERM, signal.SIGKILL) if ours or self._launched else ():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._pid, sig)  # 0 only probes: SHUTDOWN went first
                deadline = time.monotonic() + timeout / 2
                while self.is_running() and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not self.is_running():
                    break
        if (
            self._daemon
            and (state := _read_state(self._state_dir)) is not None
            and state.pid == self._pid
        ):
            _state_file(self._state_dir).unlink(missing_ok=True)
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        self._process, self._pid, self._launched = None, None, False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _state_file(folder: Path | None = None) -> Path:
    return (folder or state_dir()) / "embedded.json"


def _write_state(server: EmbeddedRedis) -> None:
    path = _state_file(server._state_dir)
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"url": server.url, "pid": server.pid, "port": server.port}
    state |= {"data_dir": str(server.data_dir), "run_id": server._run_id}
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def _read_state(folder: Path | None = None) -> EmbeddedRedis | None:
    try:
        state = json.loads(_state_file(folder).read_text())
        host = str(state["url"]).removeprefix("redis://").rsplit(":", 1)[0]
        server = EmbeddedRedis(
            port=int(state["port"]), data_dir=Path(state["data_dir"]), host=host, state_dir=folder
        )
        server._daemon, server._pid = True, int(state["pid"])
        server._run_id = str(state["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return server


def running_server(folder: Path | None = None) -> EmbeddedRedis | None:
    """The daemon recorded in ``folder`` (default ``_paths.state_dir()``: one per installation
    or ``$SEMCACHE_STATE_DIR``), if that very server (pid and run id) still answers."""
    server = _read_state(folder)
    if server is None or server.pid is None or server.port is None:
        return None
    with _client(server._host, server.port) as client:
        return server if _serves(client, server.pid, run_id=server._run_id) else None


def start_server(
    *,
    port: int | None = None,
    data_dir: Path | None = None,
    timeout: float = 20.0,
    folder: Path | None = None,
) -> EmbeddedRedis:
    """Start this installation's daemon server (recorded in ``folder``), or return the one
    already running (whatever its port)."""
    if (existing := running_server(folder)) is not None:
        return existing
    server = EmbeddedRedis(port=port, data_dir=data_dir, daemon=True, state_dir=folder)
    server.start(timeout)
    return server


def stop_server(folder: Path | None = None) -> bool:
    """Stop the daemon server recorded in ``folder``; False when none was running (a stale
    record is removed). A server this record did not start is never stopped."""
    server = running_server(folder)
    if server is None:
        _state_file(folder).unlink(missing_ok=True)
        return False
    server.stop()
    return True
