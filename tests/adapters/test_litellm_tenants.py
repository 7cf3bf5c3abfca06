"""Tenants, servers and TTLs under LiteLLM: real LiteLLM, real Redis with Search, real model.

Behind the LiteLLM proxy every request carries its caller's identity in ``metadata``
(``user_api_key`` — the hashed virtual key —, ``user_api_key_team_id``,
``user_api_key_org_id``, ``user_api_key_end_user_id``). Virtual keys need the proxy's
database, so these tests pass the metadata the proxy attaches straight to ``completion()``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch on import

import litellm  # noqa: E402

from litellm_reads import is_hit
from semcache_plugins._adapters._litellm_convert import CallRequest, to_request  # noqa: E402
from semcache_plugins._adapters._litellm_tenant import (
    END_USER_FIELD,
    TENANT_FIELDS,
    server_scope,
    tenant_scope,
)
from semcache_plugins._cli._fake_llm import FakeLLM, echo_answer  # noqa: E402
from semcache_plugins.litellm import SemCache  # noqa: E402

MODEL = "openai/gpt-4o-mini"
SYSTEM = {"role": "system", "content": "You are a helpful support agent."}
MakeCache = Callable[..., SemCache]
FIELDS = (*TENANT_FIELDS, END_USER_FIELD)
_counter = itertools.count()

# A tenant: some of key / team / org / end user (ids as the proxy writes them).
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
tenants = st.fixed_dictionaries({}, optional={field: ids for field in FIELDS})
placements = st.sampled_from(["metadata", "litellm_metadata"])
PAIRS = [
    ("How do I reset my password?", "I forgot my password, how can I reset it?"),
    ("What are your opening hours?", "What are your opening hours?"),
    ("How can I cancel my subscription?", "how can I cancel my subscription"),
]
SLOW = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def ask(text: str) -> list[dict[str, Any]]:
    return [SYSTEM, {"role": "user", "content": text}]


def unique(text: str) -> str:
    """A question no other example asked (hypothesis examples share one Redis index)."""
    return f"{text} (case {next(_counter)} {uuid.uuid4().hex[:6]})"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    server = FakeLLM(delay=0, answer=echo_answer).start()
    yield server
    server.stop()


@pytest.fixture
def make_cache(make_litellm_cache: MakeCache) -> MakeCache:
    return make_litellm_cache


@pytest.fixture
def cache(make_cache: MakeCache) -> SemCache:
    return make_cache()


def chat(server: FakeLLM, text: str, **kwargs: Any) -> Any:
    options = {"model": MODEL, "api_base": server.api_base, "api_key": "x", "temperature": 0}
    return litellm.completion(messages=ask(text), **{**options, **kwargs})


def as_proxy(tenant: dict[str, str], placement: str = "metadata") -> dict[str, Any]:
    """The metadata the proxy attaches: every field present, unset ones as None."""
    return {placement: {field: tenant.get(field) for field in FIELDS}}


def key_part(tenant: dict[str, str], *, end_user: bool) -> dict[str, str]:
    fields = FIELDS if end_user else TENANT_FIELDS
    return {field: tenant[field] for field in fields if field in tenant}


# -- pure: the tenant part of the scope -----------------------------------------------------------


@given(a=tenants, b=tenants, end_user=st.booleans(), place_a=placements, place_b=placements)
def test_tenant_scope_splits_exactly_by_the_tenant_fields(
    a: dict[str, str], b: dict[str, str], end_user: bool, place_a: str, place_b: str
) -> None:
    scope_a = tenant_scope(as_proxy(a, place_a), end_user=end_user)
    scope_b = tenant_scope(as_proxy(b, place_b), end_user=end_user)
    same = key_part(a, end_user=end_user) == key_part(b, end_user=end_user)
    assert (scope_a == scope_b) is same
    assert (scope_a is None) is (not key_part(a, end_user=end_user))


@given(tenant=tenants.filter(bool), spoof=tenants.filter(bool))
def test_caller_metadata_cannot_name_another_tenant(
    tenant: dict[str, str], spoof: dict[str, str]
) -> None:
    """The proxy's authenticated bucket wins over a caller's own ``litellm_metadata``."""
    kwargs = {**as_proxy(tenant, "metadata"), "litellm_metadata": spoof}
    kwargs["metadata"]["user_api_key"] = tenant.get("user_api_key") or "key-of-caller"
    honest = {**as_proxy(tenant, "metadata")}
    honest["metadata"]["user_api_key"] = kwargs["metadata"]["user_api_key"]
    assert tenant_scope(kwargs) == tenant_scope(honest)


@pytest.mark.parametrize(
    ("kwargs", "scoped"),
    [
        ({"api_base": "http://a.example/v1"}, True),
        ({"base_url": "http://a.example/v1"}, True),
        ({"api_base": "http://a.example/v1/"}, True),
        ({}, False),
        ({"api_base": "  "}, False),
        ({"api_base": "http://a.example/v1", "metadata": {"model_group": "g"}}, False),
        ({"api_base": "http://a.example/v1", "litellm_metadata": {"model_group": "g"}}, False),
    ],
)
def test_server_scope_for_direct_calls_only(kwargs: dict[str, Any], scoped: bool) -> None:
    scope = server_scope(kwargs)
    assert (scope is not None) is scoped
    if scoped:
        assert scope == server_scope({"api_base": "http://a.example/v1"})
        assert scope != server_scope({"api_base": "http://b.example/v1"})
        assert "example" not in str(scope)


def request_of(**kwargs: Any) -> CallRequest:
    made = to_request({"messages": ask("hi"), **kwargs}, model=MODEL)
    assert made is not None
    return made


@pytest.mark.parametrize(
    ("kwargs", "ttl", "keeps"),
    [
        ({}, None, True),
        ({"ttl": 30}, 30, True),
        ({"ttl": 2.5}, 3, True),
        ({"ttl": 0.2}, 1, True),
        ({"ttl": "45"}, 45, True),
        ({"ttl": 0}, None, False),
        ({"ttl": -1}, None, False),
        ({"cache": {"ttl": 0}}, None, False),
        ({"cache": {"ttl": 0.0}}, None, False),
        ({"cache": {"ttl": 10}, "ttl": 0}, 10, True),  # the cache dict wins, as in LiteLLM
        ({"cache": {"ttl": 0}, "ttl": 10}, None, False),
        ({"ttl": "soon"}, None, True),  # not a number: ignored (LiteLLM's get_ttl)
        ({"ttl": float("inf")}, None, True),
        ({"ttl": True}, None, True),
    ],
)
def test_ttl_resolution(kwargs: dict[str, Any], ttl: int | None, keeps: bool) -> None:
    request = request_of(**kwargs)
    assert (request.ttl, request.keeps) == (ttl, keeps)


# -- end to end: tenants --------------------------------------------------------------------------


@SLOW
@given(
    a=tenants.filter(bool), b=tenants.filter(bool), place=placements, pair=st.sampled_from(PAIRS)
)
def test_tenants_never_share_and_each_hits_its_own(
    cache: SemCache,
    fake: FakeLLM,
    a: dict[str, str],
    b: dict[str, str],
    place: str,
    pair: tuple[str, str],
) -> None:
    question, paraphrase = pair
    fresh = {"cache": {"namespace": f"case{next(_counter)}"}}  # examples share one index
    before = fake.count
    first = chat(fake, question, **as_proxy(a, place), **fresh)
    again = chat(fake, paraphrase, **as_proxy(a, place), **fresh)
    other = chat(fake, question, **as_proxy(b, place), **fresh)
    same_tenant = key_part(a, end_user=False) == key_part(b, end_user=False)
    assert not is_hit(first)
    assert is_hit(again), "the same tenant must hit its own entry"
    assert is_hit(other) is same_tenant
    assert fake.count == before + (1 if same_tenant else 2)


@pytest.mark.parametrize("scope", ["key", "end_user"])
def test_end_user_scope_is_an_option(make_cache: MakeCache, fake: FakeLLM, scope: str) -> None:
    make_cache(semantic_cache_scope=scope)
    key = {"user_api_key": "hashed-key", "user_api_key_team_id": "team-1"}
    users = [{**key, END_USER_FIELD: user} for user in ("alice", "bob")]
    question = unique("How do I reset my password?")
    chat(fake, question, **as_proxy(users[0]))
    assert is_hit(chat(fake, question, **as_proxy(users[0])))
    assert is_hit(chat(fake, question, **as_proxy(users[1]))) is (scope == "key")
    # No end user on the request: the key scope (LiteLLM's fallback), shared by the key.
    chat(fake, question + "?", **as_proxy(key))
    assert is_hit(chat(fake, question + "?", **as_proxy(key)))


def test_end_user_scope_from_the_environment(
    make_cache: MakeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEMCACHE_SEMANTIC_CACHE_SCOPE", "end_user")
    assert make_cache().semantic_cache_scope == "end_user"


def test_tenant_without_metadata_and_with_metadata_do_not_share(
    cache: SemCache, fake: FakeLLM
) -> None:
    question = unique("What are your opening hours?")
    chat(fake, question)
    assert not is_hit(chat(fake, question, **as_proxy({"user_api_key": "k1"})))
    assert is_hit(chat(fake, question))


def test_raw_tenant_ids_never_reach_redis(
    cache: SemCache, fake: FakeLLM, redis_client: redis.Redis, index_prefix: str
) -> None:
    secret = {"user_api_key": "sk-raw-SECRET-key", "user_api_key_team_id": "team-SECRET"}
    chat(fake, unique("How do I reset my password?"), **as_proxy(secret))
    keys = list(redis_client.scan_iter(match="*"))
    assert any(k.decode().startswith(index_prefix) for k in keys)
    for key in keys:
        assert b"SECRET" not in key
        if redis_client.type(key) == b"hash":
            assert not any(b"SECRET" in v for v in redis_client.hgetall(key).values())


# -- end to end: servers --------------------------------------------------------------------------


@pytest.fixture
def second_fake() -> Iterator[FakeLLM]:
    server = FakeLLM(delay=0, answer=echo_answer).start()
    yield server
    server.stop()


def test_same_model_on_another_server_is_asked(
    cache: SemCache, fake: FakeLLM, second_fake: FakeLLM
) -> None:
    for question, _ in PAIRS:
        question = unique(question)  # noqa: PLW2901
        chat(fake, question)
        assert is_hit(chat(fake, question))
        assert not is_hit(chat(second_fake, question))
        assert is_hit(chat(second_fake, question))
        # base_url names a server as api_base does: the first server's entry
        assert is_hit(chat(second_fake, question, api_base=None, base_url=fake.api_base + "/"))
    assert second_fake.count == len(PAIRS)


async def test_router_groups_share_across_servers(
    cache: SemCache, fake: FakeLLM, second_fake: FakeLLM
) -> None:
    deployments = [
        {
            "model_name": "support",
            "litellm_params": {"model": f"openai/d-{i}", "api_base": s.api_base, "api_key": "x"},
        }
        for i, s in enumerate((fake, second_fake))
    ]
    router = litellm.Router(model_list=deployments, cache_responses=True)
    question, paraphrase = PAIRS[0]
    fresh = {"cache": {"namespace": f"case{next(_counter)}"}, "temperature": 0}
    before = fake.count + second_fake.count
    router.completion(model="support", messages=ask(question), **fresh)
    served = [
        router.completion(model="support", messages=ask(text), **fresh)
        for text in (question, paraphrase) * 6
    ]
    served += [
        await router.acompletion(model="support", messages=ask(question), **fresh) for _ in range(6)
    ]
    assert fake.count + second_fake.count == before + 1
    assert all(is_hit(s) for s in served)
    # Both deployments (two servers) answered from the one entry of their group.
    assert len({s._hidden_params.get("model_id") for s in served}) == 2


# -- end to end: TTLs -----------------------------------------------------------------------------


def entry_key(cache: SemCache, response: Any) -> str:
    info = response._hidden_params.get("semcache")
    assert info is not None, "expected a semcache hit"
    return cache.core.layout.key(info["entry_id"])


@pytest.mark.parametrize(
    ("kwargs", "low", "high"),
    [
        ({"ttl": 30}, 1, 30_000),
        ({"ttl": 2.5}, 1, 3_000),
        ({"cache": {"ttl": 40}}, 1, 40_000),
        ({"cache": {"ttl": 40}, "ttl": 5}, 5_001, 40_000),
    ],
)
async def test_ttl_reaches_redis(
    cache: SemCache,
    fake: FakeLLM,
    redis_client: redis.Redis,
    kwargs: dict[str, Any],
    low: int,
    high: int,
) -> None:
    question = unique("How do I reset my password?")
    chat(fake, question, **kwargs)
    assert low <= redis_client.pttl(entry_key(cache, chat(fake, question))) <= high


async def test_async_ttl_reaches_redis(
    cache: SemCache, fake: FakeLLM, redis_client: redis.Redis
) -> None:
    question = unique("When are you open?")
    options = {"model": MODEL, "api_base": fake.api_base, "api_key": "x", "temperature": 0}
    await litellm.acompletion(messages=ask(question), ttl=20, **options)
    for _ in range(500):  # LiteLLM stores async results in a background task
        if cache.stats()["stores"]:
            break
        await asyncio.sleep(0.02)
    hit = await litellm.acompletion(messages=ask(question), **options)
    assert 1 <= redis_client.pttl(entry_key(cache, hit)) <= 20_000


@pytest.mark.parametrize(
    "kwargs", [{"ttl": 0}, {"cache": {"ttl": 0}}, {"ttl": -5}, {"cache": {"ttl": 0}, "ttl": 60}]
)
def test_ttl_zero_keeps_nothing(
    make_cache: MakeCache, fake: FakeLLM, redis_client: redis.Redis, kwargs: dict[str, Any]
) -> None:
    cache = make_cache(ttl=3600)  # a default TTL must not turn ttl=0 into "keep an hour"
    keys_before = set(redis_client.scan_iter(match=f"{cache.core.settings.index_prefix}:*"))
    question = unique("How do I reset my password?")
    chat(fake, question, **kwargs)
    assert cache.stats()["stores"] == 0
    assert set(redis_client.scan_iter(match=f"{cache.core.settings.index_prefix}:*")) == (
        keys_before
    )
    assert not is_hit(chat(fake, question))  # a control: this one is stored, then served
    assert is_hit(chat(fake, question))
