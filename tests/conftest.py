"""Shared fixtures: one Redis with Search per session, a unique key/index prefix per test."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from semcache_plugins import CacheCore, Embedder
from semcache_plugins._cli._fake_llm import FakeLLM, echo_answer
from semcache_plugins.embedded import EmbeddedRedis, resolve_redis_url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``$SEMCACHE_REDIS_URL`` or ``$REDIS_URL`` if set, else one embedded server per session."""
    url = resolve_redis_url()
    if url is not None:
        yield url
        return
    data_dir: Path = tmp_path_factory.mktemp("redis")
    with EmbeddedRedis(data_dir=data_dir) as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client (bytes replies) on ``redis_url``."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def index_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A unique prefix; indexes named and keys starting with it are dropped after the test."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    drop_prefixed(redis_client, prefix)


def drop_prefixed(client: redis.Redis, prefix: str) -> None:
    """Drop every index whose name starts with ``prefix`` (with its docs), then its keys."""
    for raw in client.execute_command("FT._LIST"):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        if name.startswith(prefix):
            client.ft(name).dropindex(delete_documents=True)
    pattern = re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*"
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(cert, key)``: a self-signed certificate for 127.0.0.1, made with the openssl CLI. It is
    its own CA: clients pass ``cert`` as ``ssl_ca_certs``. For the TLS tests of
    test_connection_security.py (a proxy) and test_tls_redis.py (a real TLS Redis)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl executable to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The default embedder (all-MiniLM-L6-v2 ONNX), loaded once per session."""
    model = Embedder()
    model.load()
    return model


@pytest.fixture(scope="session")
def int8_embedder() -> Embedder:
    """The int8-quantized default embedder: a different fingerprint, so a different index."""
    model = Embedder(quantize=True)
    model.load()
    return model


@pytest.fixture
async def core(redis_url: str, index_prefix: str, embedder: Embedder) -> AsyncIterator[CacheCore]:
    """A core on the test prefix with a generous lookup timeout (a timed-out lookup is a miss
    that would skew hit counts on a busy machine). test_core.py keeps its own, with defaults."""
    c = CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, lookup_timeout=10.0
    )
    yield c
    await c.aclose()


@pytest.fixture
async def make_litellm_cache(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> AsyncIterator[Callable[..., Any]]:
    """Build ``SemCache``s, each installed as ``litellm.cache``; the old one is restored after.

    Generous lookup and socket timeouts by default: on a loaded CI machine, a timed-out lookup
    or connect is a (correct) miss that would still break the request counts the tests assert."""
    import litellm

    from semcache_plugins.litellm import SemCache

    previous = litellm.cache
    made: list[SemCache] = []

    def make(**options: Any) -> SemCache:
        defaults = {"redis_url": redis_url, "index_prefix": index_prefix, "embedder": embedder}
        cache = SemCache(**{**defaults, "lookup_timeout": 5.0, "socket_timeout": 5.0, **options})
        made.append(cache)
        litellm.cache = cache
        return cache

    yield make
    litellm.cache = previous
    for cache in made:
        await cache.disconnect()


@pytest.fixture
def cores(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> Iterator[tuple[CacheCore, CacheCore]]:
    """Two cores on one prefix: (with the L1, without it: the 'other process')."""
    ours = CacheCore(redis_url=redis_url, index_prefix=index_prefix, embedder=embedder)
    other = CacheCore(
        redis_url=redis_url, index_prefix=index_prefix, embedder=embedder, l1_cache=False
    )
    yield ours, other
    ours.close()
    other.close()


@pytest.fixture
def make_core(
    redis_url: str, index_prefix: str, embedder: Embedder
) -> Iterator[Callable[..., Any]]:
    """Build ``CacheCore``s on the test Redis and prefix (closed after the test); options
    override the defaults, a generous ``lookup_timeout`` among them (a loaded CI machine)."""
    made: list[CacheCore] = []

    def make(**options: Any) -> CacheCore:
        defaults = {"redis_url": redis_url, "index_prefix": index_prefix, "embedder": embedder}
        core = CacheCore(**{**defaults, "lookup_timeout": 5.0, **options})
        made.append(core)
        return core

    yield make
    for core in made:
        core.close()


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    """A fresh local OpenAI-compatible server (the one fake provider): echoes the question."""
    server = FakeLLM(delay=0, answer=echo_answer).start()
    yield server
    server.stop()
