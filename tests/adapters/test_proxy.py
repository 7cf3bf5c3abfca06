"""``semcache proxy`` end to end: LiteLLM's real proxy server in a subprocess, the ``openai``
client in front, a counting fake upstream behind, a Redis of this module's own (it is stopped
by the last test). One proxy process serves the whole module.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

pytest.importorskip("backoff", reason="LiteLLM's proxy: pip install 'semcache-plugins[proxy]'")
pytest.importorskip("apscheduler", reason="LiteLLM's proxy: pip install 'semcache-plugins[proxy]'")

import httpx  # noqa: E402
import openai  # noqa: E402

from proxy_process import wait_until_live  # noqa: E402
from semcache_plugins._cli._fake_llm import FakeLLM, echo_answer  # noqa: E402
from semcache_plugins.embedded import EmbeddedRedis  # noqa: E402

pytestmark = pytest.mark.timeout(600)

MASTER_KEY = "sk-semcache-test-master"
ROOT = Path(__file__).resolve().parents[2]
QUESTION = "How do I reset my password?"
PARAPHRASE = "I forgot my password, how can I reset it?"
SYSTEM = {"role": "system", "content": "You are a helpful support agent."}
STARTUP_SECONDS = 240.0
CONFIG = """\
model_list:
  - model_name: support
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{api_base}", api_key: sk-fake}}
  - model_name: other
    litellm_params: {{model: openai/gpt-4.1-nano, api_base: "{api_base}", api_key: sk-fake}}
litellm_settings:
  callbacks: semcache_plugins.litellm_proxy.handler
general_settings:
  master_key: {master_key}
semcache:
  namespace: proxytest
  lookup_timeout: 5
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proxy:
    def __init__(self, url: str, upstream: FakeLLM, redis_server: EmbeddedRedis) -> None:
        self.url = url
        self.upstream = upstream
        self.redis_server = redis_server
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER_KEY, max_retries=0)
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=60
        )

    def ask(self, text: str, *, model: str = "support", **kwargs: Any) -> Any:
        """The raw response (headers) of a chat completion; ``.parse()`` gives the completion."""
        messages = [SYSTEM, {"role": "user", "content": text}]
        options = {"temperature": 0, **kwargs}
        return self.client.chat.completions.with_raw_response.create(
            model=model, messages=messages, **options
        )

    @property
    def count(self) -> int:
        """Chat completions the upstream received."""
        return self.upstream.count


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("proxy")
    upstream = FakeLLM(delay=0, answer=echo_answer).start()
    server = EmbeddedRedis(data_dir=folder / "redis")
    server.start()
    config = folder / "proxy.yaml"
    config.write_text(CONFIG.format(api_base=upstream.api_base, master_key=MASTER_KEY))
    port = free_port()
    env = {
        **os.environ,
        "SEMCACHE_REDIS_URL": server.url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    log = (folder / "proxy.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "semcache_plugins", "proxy", "--config", str(config)]
        + ["--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(process, url, folder / "proxy.log", STARTUP_SECONDS)
        yield Proxy(url, upstream, server)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        server.stop()
        upstream.stop()


def content(raw: Any) -> str:
    return str(raw.parse().choices[0].message.content)


def cache_key(raw: Any) -> str:
    key = raw.headers.get("x-litellm-cache-key", "")
    assert re.fullmatch(r"semcache:[0-9a-f]{32}", key), key
    return str(key)


def wait_until_cached(proxy: Proxy, text: str, **kwargs: Any) -> Any:
    """The proxy writes the cache in a background task: ask until the answer is a hit."""
    for _ in range(100):
        raw = proxy.ask(text, **kwargs)
        if raw.headers.get("x-semcache-tier"):
            return raw
        time.sleep(0.1)
    raise AssertionError(f"{text!r} was never served from the cache")


def test_repeat_and_paraphrase_hit_with_headers(proxy: Proxy) -> None:
    before = proxy.count
    first = proxy.ask(QUESTION)
    assert proxy.count == before + 1 and "x-semcache-tier" not in first.headers
    repeat = wait_until_cached(proxy, QUESTION)
    paraphrase = proxy.ask(PARAPHRASE)
    assert proxy.count == before + 1
    assert content(repeat) == content(paraphrase) == content(first)
    assert repeat.headers["x-semcache-tier"] == "exact"
    assert float(repeat.headers["x-semcache-similarity"]) == pytest.approx(1.0)
    assert paraphrase.headers["x-semcache-tier"] == "semantic"
    assert 0.5 < float(paraphrase.headers["x-semcache-similarity"]) < 1.0
    # The hit's similarity reached the request's metadata (LiteLLM's own header reads it).
    assert float(paraphrase.headers["x-litellm-semantic-similarity"]) < 1.0
    assert cache_key(repeat) != cache_key(paraphrase)  # LiteLLM names it on hits only


def test_other_temperature_or_model_reaches_upstream(proxy: Proxy) -> None:
    text = "What are your opening hours?"
    proxy.ask(text)
    wait_until_cached(proxy, text)
    before = proxy.count
    assert "x-semcache-tier" not in proxy.ask(text, temperature=0.9).headers
    assert "x-semcache-tier" not in proxy.ask(text, model="other").headers
    assert proxy.count == before + 2


def test_extra_body_controls(proxy: Proxy) -> None:
    text = "How can I change my email address?"
    proxy.ask(text)
    wait_until_cached(proxy, text)
    before = proxy.count
    fresh = proxy.ask(text, extra_body={"cache": {"no-cache": True}})
    assert proxy.count == before + 1 and "x-semcache-tier" not in fresh.headers

    unstored = "How do I delete my account?"
    proxy.ask(unstored, extra_body={"cache": {"no-store": True}})
    proxy.ask(unstored, extra_body={"cache": {"no-store": True}})
    assert proxy.count == before + 3  # neither was stored, so neither was served

    for controls in ({"cache": {"ttl": 0}}, {"ttl": 0}):  # LiteLLM: ttl=0 keeps nothing
        kept_not, control = (f"{q} {controls}" for q in ("Do you have a phone number?", "Hi"))
        proxy.ask(kept_not, extra_body=controls)
        proxy.ask(control)
        wait_until_cached(proxy, control)  # written after the first one would have been
        assert "x-semcache-tier" not in proxy.ask(kept_not).headers
    assert proxy.count == before + 9

    timed = "Can I get a refund?"
    client = redis.Redis.from_url(proxy.redis_server.url)
    proxy.ask(timed, extra_body={"cache": {"ttl": 40}})
    hit = wait_until_cached(proxy, timed)
    entry = cache_key(hit).split(":", 1)[1]
    keys = [k for k in client.scan_iter(match=f"*:{entry}") if b"-" not in k.split(b":")[0]]
    assert len(keys) == 1 and 0 < client.pttl(keys[0]) <= 40_000


def test_streamed_miss_is_replayed_as_a_stream(proxy: Proxy) -> None:
    text = "Where can I download my invoices?"
    messages = [SYSTEM, {"role": "user", "content": text}]
    before = proxy.count

    def stream() -> tuple[str, Any]:
        raw = proxy.client.chat.completions.with_raw_response.create(
            model="support", messages=messages, temperature=0, stream=True
        )
        parts = [c.choices[0].delta.content or "" for c in raw.parse() if c.choices]
        assert len(parts) > 1
        return "".join(parts), raw.headers

    streamed, first_headers = stream()
    assert "x-semcache-tier" not in first_headers
    served = wait_until_cached(proxy, text)
    assert content(served) == streamed
    replayed, headers = stream()
    assert replayed == streamed and proxy.count == before + 1
    assert headers.get("x-semcache-tier") == "exact"


def test_admin_ping_reports_the_real_redis(proxy: Proxy) -> None:
    proxy.http.get("/cache/ping")  # the report is taken by each ping
    reply = proxy.http.get("/cache/ping")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "healthy" and body["cache_type"] == "redis"
    assert body["health_check_cache_params"]["namespace"] == "proxytest"  # the semcache: block
    report = body["health_check_cache_params"]["redis_kwargs"]
    assert report["search_module"] is True and report["index_exists"] is True
    assert report["entries"] >= 1
    assert proxy.redis_server.url.split("//")[1] not in reply.text  # no Redis URL shown


def test_admin_delete_removes_the_named_entry(proxy: Proxy) -> None:
    text = "How do I update my billing address?"
    proxy.ask(text)
    key = cache_key(wait_until_cached(proxy, text))
    bad = proxy.http.post("/cache/delete", json={"keys": ["semcache:*"]})
    assert bad.status_code == 500
    assert proxy.ask(text).headers.get("x-semcache-tier") == "exact"  # the bad call deleted none
    assert proxy.http.post("/cache/delete", json={"keys": [key]}).status_code == 200
    before = proxy.count
    assert "x-semcache-tier" not in proxy.ask(text).headers
    assert proxy.count == before + 1


def test_admin_flushall_empties_this_cache_only(proxy: Proxy) -> None:
    text = "Do you ship internationally?"
    proxy.ask(text)
    wait_until_cached(proxy, text)
    client = redis.Redis.from_url(proxy.redis_server.url)
    client.set("someone-else:data", "kept")
    assert proxy.http.post("/cache/flushall").status_code == 200
    before = proxy.count
    assert "x-semcache-tier" not in proxy.ask(text).headers
    assert "x-semcache-tier" not in proxy.ask(QUESTION).headers
    assert proxy.count == before + 2
    assert client.get("someone-else:data") == b"kept"


def test_redis_stopped_mid_run_every_request_is_answered(proxy: Proxy) -> None:
    """Last: it stops this module's Redis."""
    text = "Is there a student discount?"
    proxy.ask(text)
    wait_until_cached(proxy, text)
    proxy.redis_server.stop()
    before = proxy.count
    answers = [proxy.ask(q) for q in (text, QUESTION, PARAPHRASE, text)]
    assert all(content(a) for a in answers)
    assert proxy.count == before + len(answers)
    assert proxy.http.get("/cache/ping").status_code == 503
