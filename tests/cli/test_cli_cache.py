"""``semcache stats|invalidate|warm|indexes`` run as subprocesses against the session Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
import redis
from redisvl.index import SearchIndex

from semcache_plugins import ConfigurationError, Embedder
from semcache_plugins._cache._index import IndexLayout
from semcache_plugins._cli._main import error_line, main

SYSTEM = "You are a terse support agent."
RECORDS = [
    {"prompt": "How do I reset my password?", "system": SYSTEM, "response": {"a": 1}},
    {"prompt": "How can I cancel my subscription?", "system": SYSTEM, "response": "cancelled"},
    {"prompt": "What are your opening hours?", "response": "9 to 5", "model": "gpt-b"},
    {
        "messages": [{"role": "user", "content": "Where is my parcel?"}],
        "response": "on its way",
        "model": "gpt-b",
    },
]
FAKE_VERSION = "0123456789ab"


def semcache(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "semcache_plugins", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def ok(*args: str) -> str:
    done = semcache(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def target(redis_url: str, index_prefix: str) -> list[str]:
    return ["--redis-url", redis_url, "--index-prefix", index_prefix]


def _warm(tmp_path: Path, target: list[str], records: list[dict[str, Any]]) -> str:
    data = tmp_path / "warm.jsonl"
    data.write_text("\n".join(json.dumps(record) for record in records) + "\n\n")
    return ok("warm", str(data), "--model", "gpt-a", "--batch-size", "2", *target)


def _fake_index(client: redis.Redis, prefix: str, docs: int, dtype: Any = "float32") -> str:
    """An index of another embedding version under the same prefix, with ``docs`` entries."""
    layout = IndexLayout(prefix, FAKE_VERSION, 4, dtype)
    SearchIndex.from_dict(layout.schema(), redis_client=client).create()
    for i in range(docs):
        client.hset(layout.key(f"e{i}"), mapping={"version": FAKE_VERSION, "namespace": "x"})
    return layout.name


def _stats(target: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(ok("stats", "--json", *target))
    return report


def test_warm_stats_invalidate(
    tmp_path: Path, target: list[str], index_prefix: str, embedder: Embedder
) -> None:
    assert _warm(tmp_path, target, RECORDS).splitlines()[-1].startswith("stored 4, skipped 0")
    current = IndexLayout(index_prefix, embedder.fingerprint.digest, 4).name

    report = _stats(target)
    assert report["prefix"] == index_prefix and report["redis_used_memory"] > 0
    [index] = report["indexes"]
    assert (index["index"], index["version"]) == (current, embedder.fingerprint.digest)
    assert index["entries"] == 4 and index["namespaces"] == {"default": 4}
    assert sum(scope["entries"] for scope in index["top_scopes"]) == 4
    assert index["vector_memory_mb"] > 0
    table = ok("stats", *target)
    assert f"index {current}" in table and "entries 4" in table

    prompt_file = tmp_path / "system.txt"
    prompt_file.write_text(SYSTEM)
    removed = ok("invalidate", "--system-prompt", str(prompt_file), *target)
    assert removed.strip() == "removed 2 entries"
    assert ok("invalidate", "--model", "gpt-b", *target).strip() == "removed 2 entries"
    assert _stats(target)["indexes"][0]["entries"] == 0

    _warm(tmp_path, target, RECORDS[:3])
    assert ok("invalidate", "--namespace", "default", *target).strip() == "removed 3 entries"


def test_warm_names_the_bad_line(tmp_path: Path, target: list[str]) -> None:
    data = tmp_path / "warm.jsonl"
    data.write_text(json.dumps(RECORDS[0]) + "\n\n" + '{"prompt": "hi"}\n')
    done = semcache("warm", str(data), "--model", "m", *target)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"semcache: error: {data}:3: each record needs 'response' and a 'model' (or --model)"
    ]
    data.write_text("{not json\n")
    done = semcache("warm", str(data), *target)
    assert done.returncode == 1 and f"{data}:1: invalid JSON" in done.stderr
    assert _stats(target)["indexes"] == []  # nothing was stored


def test_invalidate_embedding_version_drops_that_index(
    target: list[str], index_prefix: str, redis_client: redis.Redis
) -> None:
    name = _fake_index(redis_client, index_prefix, 3)
    [index] = _stats(target)["indexes"]
    assert (index["index"], index["version"], index["entries"]) == (name, FAKE_VERSION, 3)
    out = ok("invalidate", "--embedding-version", FAKE_VERSION, *target)
    assert out.strip() == f"removed 3 entries (dropped index {name})"
    assert name.encode() not in redis_client.execute_command("FT._LIST")
    assert list(redis_client.scan_iter(match=f"{index_prefix}:*")) == []
    missing = semcache("invalidate", "--embedding-version", FAKE_VERSION, *target)
    assert missing.returncode == 1
    assert f"no index of embedding version {FAKE_VERSION}" in missing.stderr
    both = semcache("invalidate", "--embedding-version", "v", "--model", "m", *target)
    assert both.returncode == 1 and "cannot be combined" in both.stderr
    assert "give --system-prompt" in semcache("invalidate", *target).stderr


def test_indexes_drop_old(
    tmp_path: Path,
    target: list[str],
    index_prefix: str,
    redis_client: redis.Redis,
    embedder: Embedder,
) -> None:
    _warm(tmp_path, target, RECORDS[:2])
    old = _fake_index(redis_client, index_prefix, 2)
    redis_client.pfadd(f"{old}:n", "k1", "k2")  # its entry count (see IndexLayout.count_key)
    current = IndexLayout(index_prefix, embedder.fingerprint.digest, 4).name
    listing = ok("indexes", *target).splitlines()
    assert listing[1:] == sorted(
        [
            f"{current:<40} {embedder.fingerprint.digest:<14} {2:>8}  yes",
            f"{old:<40} {FAKE_VERSION:<14} {2:>8}  ",
        ]
    )
    dropped = ok("indexes", "--drop-old", *target).splitlines()
    assert dropped[-2:] == [f"dropping {old} (2 entries)", "dropped 1 old index(es)"]
    names = {n.decode() for n in redis_client.execute_command("FT._LIST")}
    assert old not in names and current in names
    fake_keys = f"{IndexLayout(index_prefix, FAKE_VERSION, 4).key_prefix}:*"
    assert list(redis_client.scan_iter(match=fake_keys)) == []
    assert redis_client.exists(f"{old}:n") == 0  # its counts went with it
    assert redis_client.pfcount(f"{current}:n") == 2  # the current index keeps its own
    assert [i["entries"] for i in _stats(target)["indexes"]] == [2]


def test_float16_indexes_count_for_their_embedding_version(
    tmp_path: Path,
    target: list[str],
    index_prefix: str,
    redis_client: redis.Redis,
    embedder: Embedder,
) -> None:
    _warm(tmp_path, target, RECORDS[:2])
    current = IndexLayout(index_prefix, embedder.fingerprint.digest, 4).name
    current_f16 = IndexLayout(index_prefix, embedder.fingerprint.digest, 4, "float16")
    SearchIndex.from_dict(current_f16.schema(), redis_client=redis_client).create()

    def old_indexes() -> set[str]:  # float32 with 2 entries, float16 with 1
        f16 = _fake_index(redis_client, index_prefix, 1, "float16")
        return {_fake_index(redis_client, index_prefix, 2), f16}

    old = old_indexes()
    dropped = ok("indexes", "--drop-old", *target).splitlines()
    assert dropped[-1] == "dropped 2 old index(es)"  # the current version's float16 index stays
    names = {n.decode() for n in redis_client.execute_command("FT._LIST")}
    assert {current, current_f16.name} <= names and not old & names
    old = old_indexes()
    out = ok("invalidate", "--embedding-version", FAKE_VERSION, *target)
    assert out.strip() == f"removed 3 entries (dropped index {', '.join(sorted(old))})"


def test_no_redis_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SEMCACHE_REDIS_URL", "REDIS_URL")}
    env["SEMCACHE_CACHE_DIR"] = str(tmp_path)  # no embedded server recorded here
    for command in (["stats"], ["indexes"], ["invalidate", "--model", "m"]):
        done = semcache(*command, env=env)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines() == [
            "semcache: error: no Redis: pass --redis-url, set SEMCACHE_REDIS_URL or REDIS_URL, "
            "or start one with 'semcache redis start'"
        ]


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("stats", "invalidate", "warm", "delete", "indexes", "calibrate"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert exit_info.value.code == 0 and out.startswith(f"usage: semcache {command}")
        assert ("--redis-url" in out) == (command != "calibrate")


def test_schema_one_index_of_the_current_version_is_old(
    tmp_path: Path,
    target: list[str],
    index_prefix: str,
    redis_client: redis.Redis,
    embedder: Embedder,
) -> None:
    """Indexes written before the namespace-hash schema (``{prefix}-{version}``) are no longer
    read: listed as not current and dropped by ``--drop-old``, counts included."""
    _warm(tmp_path, target, RECORDS[:2])
    digest = embedder.fingerprint.digest
    schema = IndexLayout(index_prefix, digest, 4).schema()
    old = f"{index_prefix}-{digest}"
    schema["index"].update(name=old, prefix=f"{index_prefix}:{digest}")
    SearchIndex.from_dict(schema, redis_client=redis_client).create()
    redis_client.hset(f"{index_prefix}:{digest}:e1", mapping={"version": digest})
    redis_client.pfadd(f"{old}:n", "k1")
    listing = ok("indexes", *target)
    assert f"{old:<40} {digest:<14} {1:>8}  \n" in listing + "\n"
    dropped = ok("indexes", "--drop-old", *target).splitlines()
    assert dropped[-2:] == [f"dropping {old} (1 entries)", "dropped 1 old index(es)"]
    assert redis_client.exists(f"{index_prefix}:{digest}:e1", f"{old}:n") == 0
    assert [i["entries"] for i in _stats(target)["indexes"]] == [2]


# -- one-line errors and quiet output ---------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMCACHE_")}
    env.pop("REDIS_URL", None)
    return {**env, **extra}


@pytest.mark.parametrize(
    ("command", "extra_env", "code", "says"),
    [
        (["stats", "--redis-url", "foo://x"], {}, 1, "invalid Redis URL 'foo://x'"),
        (["indexes", "--redis-url", "http://localhost:6379"], {}, 1, "invalid Redis URL"),
        (["invalidate", "--model", "m", "--redis-url", "x"], {}, 1, "invalid Redis URL 'x'"),
        (["stats"], {"SEMCACHE_REDIS_URL": "foo://x"}, 2, "malformed Redis URL"),
        (["demo", "--redis-url", "foo://x"], {}, 1, "invalid Redis URL 'foo://x'"),
        (["stats", "--redis-url", "redis://127.0.0.1:1"], {}, 1, "Redis at redis://127.0.0.1:1"),
        (["stats"], {"SEMCACHE_SIMILARITY_THRESHOLD": "high"}, 2, "similarity_threshold"),
        (["stats"], {"SEMCACHE_VECTOR_DTYPE": "float64"}, 2, "vector_dtype"),
        (["warm", "/nonexistent/warm.jsonl", "--redis-url", "redis://127.0.0.1:1"], {}, 1, "read"),
    ],
    ids=["url-scheme", "url-http", "url-bare", "url-env", "url-demo", "unreachable",
         "threshold-env", "dtype-env", "missing-file"],
)  # fmt: skip
def test_every_cli_error_is_one_line(
    command: list[str], extra_env: dict[str, str], code: int, says: str
) -> None:
    done = semcache(*command, env=_env(**extra_env))
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semcache: error: "), done.stderr
    assert says.lower() in lines[0].lower()


def test_verbose_errors_add_the_traceback() -> None:
    done = semcache("-v", "stats", "--redis-url", "foo://x", env=_env())
    assert done.returncode == 1 and "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("semcache: error: invalid Redis URL")


def test_third_party_info_lines_show_only_with_verbose(
    tmp_path: Path, target: list[str], redis_url: str
) -> None:
    data = tmp_path / "warm.jsonl"
    data.write_text(json.dumps(RECORDS[0]) + "\n")
    warm = ["warm", str(data), "--model", "gpt-a", *target]
    first = semcache(*warm)
    assert first.returncode == 0, first.stderr
    again = semcache(*warm)  # the index exists now: RedisVL logs it at INFO
    assert again.returncode == 0 and "Index already exists" not in again.stderr, again.stderr
    verbose = semcache("-v", *warm)
    assert verbose.returncode == 0 and "Index already exists" in verbose.stderr


_HTTPX = """
import http.server, sys, threading
import httpx
from semcache_plugins._cli._main import _configure_logging
_configure_logging(sys.argv[1] == "-v")
server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=server.handle_request, daemon=True).start()
httpx.get(f"http://127.0.0.1:{server.server_port}/")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_httpx_request_lines_show_only_with_verbose(tmp_path: Path, verbose: bool) -> None:
    flag = "-v" if verbose else "-"
    done = subprocess.run(
        [sys.executable, "-c", _HTTPX, flag],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert ("HTTP Request: GET" in done.stderr) == verbose, done.stderr


class _Settings(pydantic.BaseModel):
    similarity_threshold: float


def _validation_error() -> pydantic.ValidationError:
    try:
        _Settings(similarity_threshold="high")  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("no ValidationError")


def _raised_from(error: Exception, cause: BaseException, *, implicit: bool = False) -> Exception:
    try:
        try:
            raise cause
        except BaseException as inner:
            if implicit:
                raise error from None  # the settings error stays its __context__
            raise error from inner
    except Exception as outer:
        return outer


def test_error_line_is_one_line_with_the_exit_code_of_its_kind() -> None:
    invalid = _validation_error()
    setting = (
        "invalid setting SEMCACHE_SIMILARITY_THRESHOLD='high': Input should be a valid number, "
        "unable to parse string as a number"
    )
    assert error_line(invalid) == (setting, 2)
    # A settings error turned into a SemcacheError keeps its message and exit code 2.
    assert error_line(_raised_from(ConfigurationError("bad threshold"), invalid)) == (
        "bad threshold",
        2,
    )
    hidden = _raised_from(ConfigurationError("bad threshold"), invalid, implicit=True)
    assert error_line(hidden) == ("bad threshold", 2)
    assert error_line(ConfigurationError("no index x")) == ("no index x", 1)
    assert error_line(ValueError("bad\nvalue")) == ("bad value", 2)
    assert error_line(RuntimeError("boom")) == (
        "RuntimeError: boom (run with -v for the traceback)",
        1,
    )
