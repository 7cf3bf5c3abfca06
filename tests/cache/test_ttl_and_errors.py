"""TTLs are checked before anything is written; every public error is a ``SemcacheError``.

A store is all-or-nothing: a TTL the cache cannot apply is refused before the first write (no
entry without its expiry, no failure reported after a write); ``ttl=0`` per call means "do not
store" (LiteLLM's meaning). Bad settings, arguments and URLs raise ``ConfigurationError``
(also a ``ValueError``), and the CLI reports them in one line.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

from semcache_plugins import (  # noqa: E402
    CacheCore,
    CacheSettings,
    ConfigurationError,
    SemcacheError,
)
from semcache_plugins._cache._warm import WarmItem, warm_item  # noqa: E402
from semcache_plugins._ttl import MAX_TTL_SECONDS, entry_ttl, validate_ttl  # noqa: E402
from semcache_plugins.langchain import LangChainSemCache  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

QUESTION = [{"role": "user", "content": "How do I reset my password?"}]
BAD_TTLS: list[Any] = [
    -1,
    -0.5,
    -(10**9),
    float("nan"),
    float("inf"),
    -float("inf"),
    True,
    "3600",
    b"10",
    [10],
    MAX_TTL_SECONDS + 1,
    timedelta(seconds=-5),
]


def entry_keys(core: CacheCore, client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match=f"{core.layout.key_prefix}:*"))


# -- pure -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        (None, None),
        (0, 0),
        (0.0, 0),
        (1, 1),
        (0.2, 1),
        (3600.0, 3600),
        (3600.4, 3601),
        (timedelta(hours=1), 3600),
        (timedelta(milliseconds=1500), 2),
        (Fraction(7, 2), 4),
        (MAX_TTL_SECONDS, MAX_TTL_SECONDS),
    ],
)
def test_ttls_are_whole_seconds_rounded_up(ttl: Any, seconds: int | None) -> None:
    assert validate_ttl(ttl) == seconds
    assert type(validate_ttl(ttl)) is type(seconds)


@pytest.mark.parametrize("ttl", BAD_TTLS)
def test_bad_ttls_are_configuration_errors(ttl: Any) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        validate_ttl(ttl)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_any_number_is_whole_seconds_or_a_clear_error(ttl: float) -> None:
    try:
        seconds = validate_ttl(ttl)
    except ConfigurationError:
        assert not (math.isfinite(ttl) and 0 <= ttl <= MAX_TTL_SECONDS)
        return
    assert isinstance(seconds, int) and seconds >= ttl and seconds == math.ceil(ttl)


def test_per_call_ttl_over_the_default() -> None:
    assert entry_ttl(None, 60) == 60 and entry_ttl(None, None) is None
    assert entry_ttl(0, 60) == 0  # do not store
    assert entry_ttl(2.5, 60) == 3


# -- stores on Redis --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "expected"), [(3600.0, 3600), (0.2, 1), (timedelta(minutes=2), 120), (7, 7)]
)
async def test_float_and_timedelta_ttls_set_the_rounded_up_expiry(
    core: CacheCore, redis_client: redis.Redis, ttl: Any, expected: int
) -> None:
    entry = core.store(QUESTION, "answer", "m", ttl=ttl)
    assert entry
    assert expected - 5 <= redis_client.ttl(core.layout.key(entry)) <= expected
    other = await core.astore(QUESTION, "answer", "m2", ttl=ttl)
    assert other
    assert expected - 5 <= redis_client.ttl(core.layout.key(other)) <= expected


@pytest.mark.parametrize("ttl", BAD_TTLS)
async def test_bad_ttl_raises_before_anything_is_written(
    core: CacheCore, redis_client: redis.Redis, ttl: Any
) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        core.store(QUESTION, "answer", "m", ttl=ttl)
    with pytest.raises(ConfigurationError, match="ttl"):
        await core.astore(QUESTION, "answer", "m", ttl=ttl)
    assert entry_keys(core, redis_client) == []
    assert core.lookup(QUESTION, "m") is None


async def test_ttl_zero_per_call_stores_nothing(core: CacheCore, redis_client: redis.Redis) -> None:
    assert core.store(QUESTION, "answer", "m", ttl=0) is None
    assert await core.astore(QUESTION, "answer", "m", ttl=0.0) is None
    assert entry_keys(core, redis_client) == []
    assert core.lookup(QUESTION, "m") is None
    assert core.store(QUESTION, "answer", "m", ttl=30)  # control
    assert core.lookup(QUESTION, "m") is not None


@pytest.mark.parametrize(("ttl", "expiry"), [(0, -1), (None, -1), (90.5, 91), ("120", 120)])
def test_settings_ttl_zero_means_no_default_expiry(
    redis_url: str, index_prefix: str, redis_client: redis.Redis, ttl: Any, expiry: int
) -> None:
    with CacheCore(redis_url=redis_url, index_prefix=index_prefix, ttl=ttl) as core:
        entry = core.store(QUESTION, "answer", "m")
        assert entry
        remaining = redis_client.ttl(core.layout.key(entry))
        assert remaining == -1 if expiry == -1 else expiry - 5 <= remaining <= expiry


def test_warm_items_check_their_ttl_when_made() -> None:
    assert WarmItem(QUESTION, "a", "m", ttl=1.5).ttl == 2
    for ttl in BAD_TTLS:
        with pytest.raises(ConfigurationError, match="ttl"):
            WarmItem(QUESTION, "a", "m", ttl=ttl)
        with pytest.raises(ConfigurationError, match="ttl"):
            warm_item({"prompt": "q", "response": "a", "model": "m", "ttl": ttl})


def test_store_many_skips_ttl_zero_and_expires_the_rest(
    core: CacheCore, redis_client: redis.Redis
) -> None:
    items = [
        WarmItem([{"role": "user", "content": f"Question number {i}?"}], i, "m", ttl=ttl)
        for i, ttl in enumerate([0, 10.2, None, 0.0, 60])
    ]
    assert core.store_many(items) == 3
    ttls = sorted(redis_client.ttl(key) for key in entry_keys(core, redis_client))
    assert ttls[0] == -1 and 5 <= ttls[1] <= 11 and 55 <= ttls[2] <= 60


def semcache_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "semcache_plugins", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def test_warm_with_a_bad_ttl_writes_nothing(
    tmp_path: Path, redis_url: str, index_prefix: str, redis_client: redis.Redis
) -> None:
    records = [
        {"prompt": f"Question {i}?", "response": i, "model": "m", "ttl": 60} for i in range(5)
    ]
    records.append({"prompt": "Last question?", "response": 5, "model": "m", "ttl": -1})
    data = tmp_path / "warm.jsonl"
    data.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    done = semcache_cli("warm", str(data), "--redis-url", redis_url, "--index-prefix", index_prefix)
    assert done.returncode == 1
    assert "ttl" in done.stderr and ":6:" in done.stderr and "Traceback" not in done.stderr
    assert list(redis_client.scan_iter(match=f"{index_prefix}*")) == []


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"similarity_threshold": "high"},
        {"similarity_threshold": 1.5},
        {"ttl": -5},
        {"namespace": ""},
        {"namespace": "a,b"},
        {"index_prefix": "a b"},
        {"redis_url": "redis://localhost:notaport"},
        {"redis_url": "http://localhost:6379"},
        {"vector_dtype": "float64"},
        {"unknown_setting": 1},
    ],
)
def test_bad_settings_are_configuration_errors(bad: dict[str, Any]) -> None:
    for make in (
        lambda: CacheSettings(**bad),
        lambda: CacheCore(**bad),
        lambda: SemCache(**bad),
        lambda: LangChainSemCache(**bad),
    ):
        with pytest.raises(ConfigurationError) as raised:
            make()
        assert isinstance(raised.value, SemcacheError) and isinstance(raised.value, ValueError)
        assert "invalid cache settings" in str(raised.value)
        assert next(iter(bad)) in str(raised.value)


def test_a_url_password_never_appears_in_the_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        CacheSettings(redis_url="redis://:s3cret-pw@localhost:notaport/0")
    assert "s3cret-pw" not in str(raised.value)


def test_bad_environment_setting_is_one_line_from_the_cli() -> None:
    done = semcache_cli("stats", env={"SEMCACHE_SIMILARITY_THRESHOLD": "high"})
    assert done.returncode == 2  # invalid settings, as argparse exits on invalid arguments
    assert "Traceback" not in done.stderr
    assert "similarity_threshold" in done.stderr
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEMCACHE_SIMILARITY_THRESHOLD", "high")
        with pytest.raises(ConfigurationError, match="similarity_threshold"):
            CacheSettings()


def test_invalidate_without_a_filter_is_a_configuration_error(core: CacheCore) -> None:
    with pytest.raises(ConfigurationError, match="needs"):
        core.invalidate()
    with pytest.raises(ValueError):  # still a ValueError, as before
        core.invalidate()


def test_langchain_clear_with_an_empty_namespace_is_refused(
    core: CacheCore, redis_client: redis.Redis
) -> None:
    for tenant in ("acme", "other"):
        assert core.store(QUESTION, tenant, "m", namespace=tenant)
    cache = LangChainSemCache(core=core)
    with pytest.raises(ConfigurationError, match="namespace"):
        cache.clear(namespace="")
    for tenant in ("acme", "other"):
        assert core.lookup(QUESTION, "m", namespace=tenant) is not None


@given(ttl=st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.integers(-(10**6), 10**6)))
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_any_ttl_is_an_entry_with_its_expiry_or_nothing_at_all(
    core: CacheCore, redis_client: redis.Redis, ttl: float
) -> None:
    question = [{"role": "user", "content": f"What is the ttl {ttl!r} for?"}]
    if ttl < 0 or math.isnan(ttl):
        with pytest.raises(ConfigurationError):
            core.store(question, "answer", "m", ttl=ttl)
        assert core.lookup(question, "m") is None
        return
    entry = core.store(question, "answer", "m", ttl=ttl)
    if math.ceil(ttl) == 0:
        assert entry is None and core.lookup(question, "m") is None
        return
    assert entry is not None
    remaining = redis_client.ttl(core.layout.key(entry))
    assert 0 < remaining <= math.ceil(ttl) and remaining >= math.ceil(ttl) - 5
    core.invalidate(model="m")


@pytest.mark.parametrize("max_age", [-1, float("nan"), float("inf"), "60", True, [1]])
async def test_bad_max_age_is_a_configuration_error(core: CacheCore, max_age: Any) -> None:
    assert core.store(QUESTION, "answer", "m")
    with pytest.raises(ConfigurationError, match="max_age"):
        core.lookup(QUESTION, "m", max_age=max_age)
    with pytest.raises(ConfigurationError, match="max_age"):
        await core.alookup(QUESTION, "m", max_age=max_age)
    for fine in (0.0, 60, timedelta(minutes=1)):  # controls
        hit = core.lookup(QUESTION, "m", max_age=fine)
        assert (hit is None) is (fine == 0.0)


# -- expiry on the core's clock (no sleeping: ``core.clock`` moves, Redis keeps the key) ------

PARAPHRASE = [{"role": "user", "content": "I forgot my password, how can I reset it?"}]


@pytest.mark.parametrize(
    ("query", "tier"), [(QUESTION, "exact"), (PARAPHRASE, "semantic")], ids=["exact", "semantic"]
)
@pytest.mark.parametrize(
    ("ttl", "later", "served"),
    [(60, 59.0, True), (60, 61.0, False), (timedelta(hours=1), 3601.0, False), (None, 1e6, True)],
    ids=["before", "after", "timedelta-after", "no-ttl"],
)
async def test_an_entry_past_its_ttl_is_never_served(
    core: CacheCore,
    redis_client: redis.Redis,
    query: list[dict[str, str]],
    tier: str,
    ttl: Any,
    later: float,
    served: bool,
) -> None:
    start = 1_900_000_000.0
    core.clock = lambda: start
    entry = core.store(QUESTION, "answer", "m", ttl=ttl)
    assert entry and redis_client.exists(core.layout.key(entry))
    core.clock = lambda: start + later  # Redis still holds the key: the record's expiry decides
    for hit in (core.lookup(query, "m"), await core.alookup(query, "m")):
        assert (hit is not None and hit.tier == tier) is served
