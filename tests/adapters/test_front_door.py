"""The typed front door: every constructor takes ``settings`` plus ``SettingsOverrides`` (one
definition, every ``CacheSettings`` field), and a wrong keyword is a ``ConfigurationError``."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from semcache_plugins import (
    CacheCore,
    CacheSettings,
    ConfigurationError,
    Embedder,
    SettingsOverrides,
)
from semcache_plugins.langchain import LangChainSemCache
from semcache_plugins.litellm import SemCache
from semcache_plugins.litellm_proxy import ProxySemCache

URL = "redis://127.0.0.1:1"  # never contacted: connections are lazy


def make_core(**options: Any) -> CacheCore:
    return CacheCore(**options)


def core_of(adapter: type[Any]) -> Callable[..., CacheCore]:
    def build(**options: Any) -> CacheCore:
        core: CacheCore = adapter(**options).core
        return core

    build.__name__ = adapter.__name__
    return build


FRONT_DOORS = [make_core, core_of(SemCache), core_of(LangChainSemCache), core_of(ProxySemCache)]
DOOR_IDS = ["CacheCore", "SemCache", "LangChainSemCache", "ProxySemCache"]

# (override, value, what the settings then hold)
OVERRIDES: list[tuple[str, Any, Any]] = [
    ("namespace", "tenant-a", "tenant-a"),
    ("similarity_threshold", 0.9, 0.9),
    ("ttl", timedelta(minutes=1), 60),
    ("ttl", 1.5, 2),
    ("index_prefix", "fd", "fd"),
    ("guards", False, False),
    ("agreement_margin", 0.0, 0.0),
    ("semantic_cache_scope", "end_user", "end_user"),
    ("serve", False, False),
    ("lookup_timeout", 3.0, 3.0),
    ("l1_cache", False, False),
]


def test_overrides_name_every_setting_once() -> None:
    hints = typing.get_type_hints(SettingsOverrides)
    assert set(hints) == set(CacheSettings.model_fields)
    assert SettingsOverrides.__required_keys__ == frozenset()


@pytest.mark.parametrize("cls", [CacheCore, SemCache, LangChainSemCache, ProxySemCache])
def test_constructors_share_the_one_definition(cls: type[Any]) -> None:
    parameters = inspect.signature(cls).parameters
    overrides = [p for p in parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert [p.name for p in overrides] == ["overrides"]
    assert "Unpack[SettingsOverrides]" in str(overrides[0].annotation)
    assert not set(parameters) & set(CacheSettings.model_fields)  # not repeated one by one
    named = [p for p in parameters.values() if p is not overrides[0]]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in named)


@pytest.mark.parametrize("build", FRONT_DOORS, ids=DOOR_IDS)
@pytest.mark.parametrize(("name", "value", "expected"), OVERRIDES)
def test_each_override_reaches_the_settings(
    build: Callable[..., CacheCore], embedder: Embedder, name: str, value: Any, expected: Any
) -> None:
    core = build(redis_url=URL, embedder=embedder, **{name: value})
    try:
        assert getattr(core.settings, name) == expected
        assert core.settings.redis_url == URL
    finally:
        core.close()


@pytest.mark.parametrize("build", FRONT_DOORS, ids=DOOR_IDS)
def test_overrides_apply_over_a_settings_object(
    build: Callable[..., CacheCore], embedder: Embedder
) -> None:
    settings = CacheSettings(redis_url=URL, namespace="base", similarity_threshold=0.8)
    core = build(settings=settings, embedder=embedder, namespace="over", ttl=None)
    try:  # None is "the default": here the settings object's
        assert (core.settings.namespace, core.settings.similarity_threshold) == ("over", 0.8)
        assert core.settings.ttl is None and settings.namespace == "base"
    finally:
        core.close()


@pytest.mark.parametrize("build", FRONT_DOORS, ids=DOOR_IDS)
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"similarity_treshold": 0.9}, "similarity_treshold"),  # a typo is never ignored
        ({"redis": URL}, "redis"),
        ({"similarity_threshold": 1.5}, "similarity_threshold"),
        ({"namespace": "a b"}, "namespace"),
        ({"ttl": -1}, "ttl"),
    ],
)
def test_a_wrong_keyword_is_a_configuration_error(
    build: Callable[..., CacheCore], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(redis_url=URL, **options)


@pytest.mark.parametrize("cls", [SemCache, LangChainSemCache, ProxySemCache])
def test_a_shared_core_takes_no_settings(cls: type[Any], embedder: Embedder) -> None:
    with CacheCore(redis_url=URL, embedder=embedder) as core:
        assert cls(core=core).core is core
        assert cls(core=core, ttl=None).core is core  # None is no setting
        for options in ({"namespace": "x"}, {"settings": CacheSettings()}, {"embedder": embedder}):
            with pytest.raises(ConfigurationError, match="either core= or the cache settings"):
                cls(core=core, **options)
