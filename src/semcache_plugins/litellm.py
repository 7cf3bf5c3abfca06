"""LiteLLM integration: ``SemCache``, a ``litellm.Cache`` backed by the semantic cache core.

```python
import litellm
from semcache_plugins.litellm import SemCache

litellm.cache = SemCache(redis_url="redis://localhost:6379")
```

LiteLLM's caching handler (``litellm/caching/caching_handler.py``) calls ``get_cache``,
``async_get_cache``, ``add_cache`` and ``async_add_cache`` on ``litellm.cache`` with the
request's full keyword arguments; a plain ``Cache`` folds them into one exact key and hands
its backend only the key, the messages and the metadata. ``SemCache`` overrides those four
methods (and ``get_cache_key``), so the messages, the model and the parameters all reach the
core's scope on every path: sync, async, streamed, Router.

The model of the scope is what LiteLLM's own exact cache keys on (``Cache._get_model_param_value``):
the Router's caching group, else its model group (``metadata["model_group"]``), else the
``model`` argument. Two deployments of one Router group therefore share entries.

A hit is returned to LiteLLM as the stored ``ModelResponse`` dict plus a ``_hidden_params`` key,
which LiteLLM's ``convert_to_model_response_object`` copies onto the response (it sets every
non-field key as an attribute); LiteLLM then adds ``cache_hit=True``. So
``response._hidden_params["semcache"]`` is ``{"tier", "similarity", "entry_id"}``: no patching
of LiteLLM. Streamed replays and text completions carry ``cache_hit`` only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Unpack

from litellm.caching.caching import Cache, CacheMode

from ._adapters._adapter_core import adapter_core
from ._adapters._audit_adapters import audit_litellm_hit
from ._adapters._core_delegation import CoreDelegation
from ._adapters._litellm_convert import (
    TEXT_CALL_TYPES,
    CallRequest,
    entry_ref,
    failure_detail,
    served_response,
    stored_response,
    to_request,
)
from ._cache._core import CacheCore
from ._embedding._embedder import Embedder
from ._errors import ConfigurationError
from ._options import SettingsOverrides
from ._settings import CacheSettings
from ._types import CacheHit

__all__ = ["SemCache"]

logger = logging.getLogger("semcache_plugins")


class SemCache(CoreDelegation, Cache):
    """A semantic cache for ``litellm.completion`` / ``acompletion`` / ``Router``.

    Set it as ``litellm.cache``. Scope rules are the core's: system prompt, model, output-changing
    parameters and prior turns must match exactly; only the last user turn is compared by
    meaning. Per-request ``cache={...}`` controls: ``no-cache``, ``no-store``, ``ttl``,
    ``s-maxage`` and ``namespace``. Responses with tool calls are served on exact repeats only,
    unless ``semantic_tool_calls=True``. Redis or embedding failures are logged (one warning
    until the cache works again) and the call goes to the provider.

    Settings: ``settings`` plus keyword overrides (every ``CacheSettings`` field, typed by
    ``SettingsOverrides``: ``redis_url``, ``similarity_threshold``, ``ttl``, ``namespace``,
    ...), or ``core=`` to share a ``CacheCore`` (left open by :meth:`close`). ``core``: the
    core this adapter runs on (stats, events, invalidation, ``metrics.instrument``).
    """

    core: CacheCore

    def __init__(
        self,
        *,
        settings: CacheSettings | None = None,
        core: CacheCore | None = None,
        embedder: Embedder | None = None,
        mode: CacheMode | str = CacheMode.default_on,
        supported_call_types: Sequence[str] | None = TEXT_CALL_TYPES,
        semantic_tool_calls: bool = False,
        **overrides: Unpack[SettingsOverrides],
    ) -> None:
        unsupported = set(supported_call_types or ()) - set(TEXT_CALL_TYPES)
        if unsupported:
            raise ConfigurationError(
                f"SemCache caches chat and text completions only, not {sorted(unsupported)}"
            )
        call_types: Any = None if supported_call_types is None else list(supported_call_types)
        super().__init__(
            mode=CacheMode(mode),
            supported_call_types=call_types,
            max_messages=None,  # the scope keeps prior turns exact: long chats are safe to cache
        )
        self.core, self._owns_core = adapter_core(
            core=core, settings=settings, embedder=embedder, overrides=overrides
        )
        self.semantic_tool_calls = semantic_tool_calls
        # LiteLLM's name: "key" scopes by key/team/org, "end_user" by the end user too.
        self.semantic_cache_scope = self.core.settings.semantic_cache_scope
        self._degraded = False
        self._attached()

    def _attached(self) -> None:
        """Hook for subclasses (``ProxySemCache``): set-up after the options are applied."""

    def __repr__(self) -> str:
        return f"SemCache({self.core!r}, semantic_tool_calls={self.semantic_tool_calls})"

    # -- shared pieces ------------------------------------------------------------------------

    def _request(self, kwargs: dict[str, Any]) -> CallRequest | None:
        """The core's view of this call, or None when it bypasses the cache.

        ``no-cache`` and ``no-store`` never get here: LiteLLM's handler skips the call.
        """
        if self.should_use_cache(**kwargs) is not True:  # type: ignore[no-untyped-call]
            return None  # mode="default_off" without cache={"use-cache": True}
        return self._to_request(kwargs)

    def _to_request(self, kwargs: dict[str, Any]) -> CallRequest | None:
        return to_request(
            kwargs,
            model=self._get_model_param_value(kwargs),
            end_user=self.semantic_cache_scope == "end_user",
        )

    def _lookup_args(self, kwargs: dict[str, Any]) -> tuple[CallRequest, dict[str, Any]] | None:
        request = self._request(kwargs)
        if request is None or (request.text and request.stream):
            return None  # LiteLLM cannot replay a cached text completion as a stream
        return request, {
            **request.core_args(),
            "max_age": request.max_age,
            "semantic_tool_calls": self.semantic_tool_calls,
        }

    def _served(
        self, request: CallRequest, hit: CacheHit | None, kwargs: dict[str, Any], asynchronous: bool
    ) -> Any:
        """The response a lookup serves (None on a miss); a served chat hit may be audited."""
        response = served_response(
            hit, text=request.text, model=request.model, stream=request.stream
        )
        if response is not None and not request.text:  # chat only (see _audit_adapters)
            audit_litellm_hit(
                self.core, hit, request.core_args(), kwargs, asynchronous=asynchronous
            )
        return response

    def _store_args(self, result: Any, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        request = self._request(kwargs)
        if request is None or not request.keeps:
            return None  # ttl=0: LiteLLM keeps nothing
        stored = stored_response(result, text=request.text)
        if stored is None:
            return None
        response, exact_only = stored
        return {
            **request.core_args(),
            "response": response,
            "ttl": request.ttl,
            "exact_only": exact_only,
        }

    def _ref(self, kwargs: dict[str, Any]) -> str:
        """The request's exact-tier entry id (a hash), or "unkeyed"; never raises."""
        try:
            request = self._to_request(kwargs)
            return (
                "unkeyed" if request is None else entry_ref(request, self.core.settings.namespace)
            )
        except Exception:
            return "unkeyed"

    def _failed(self, op: str, kwargs: dict[str, Any], exc: Exception) -> None:
        """Log a cache failure without prompt text: one warning until the cache works again."""
        level = logging.DEBUG if self._degraded else logging.WARNING
        self._degraded = True
        logger.log(
            level,
            "semcache: LiteLLM cache %s skipped for entry %s, calling the provider: %s",
            op,
            self._ref(kwargs),
            failure_detail(exc),
        )

    def _worked(self) -> None:
        if self._degraded:
            self._degraded = False
            logger.info("semcache: LiteLLM cache works again")

    # -- litellm.Cache --------------------------------------------------------------------------

    def get_cache_key(self, **kwargs: Any) -> str:
        """``semcache:<entry id>``; LiteLLM logs it as the request's ``cache_key``."""
        return f"semcache:{self._ref(kwargs)}"

    def get_cache(self, dynamic_cache_object: Any = None, **kwargs: Any) -> Any:
        """Look the request up (sync ``completion``); a hit is a response dict, else None."""
        try:
            prepared = self._lookup_args(kwargs)
            if prepared is None:
                return None
            request, lookup = prepared
            hit = self.core.lookup(**lookup)
            response = self._served(request, hit, kwargs, asynchronous=False)
        except Exception as exc:
            self._failed("lookup", kwargs, exc)
            return None
        self._worked()
        return response

    async def async_get_cache(self, dynamic_cache_object: Any = None, **kwargs: Any) -> Any:
        """Async :meth:`get_cache` (``acompletion``, ``Router.acompletion``)."""
        try:
            prepared = self._lookup_args(kwargs)
            if prepared is None:
                return None
            request, lookup = prepared
            hit = await self.core.alookup(**lookup)
            response = self._served(request, hit, kwargs, asynchronous=True)
        except Exception as exc:
            self._failed("lookup", kwargs, exc)
            return None
        self._worked()
        return response

    def add_cache(self, result: Any, **kwargs: Any) -> None:
        """Store a response (a ``ModelResponse``, an assembled stream, or its JSON)."""
        try:
            store = self._store_args(result, kwargs)
            if store is not None:
                self.core.store(**store)
                self._worked()
        except Exception as exc:
            self._failed("store", kwargs, exc)

    async def async_add_cache(
        self, result: Any, dynamic_cache_object: Any = None, **kwargs: Any
    ) -> None:
        """Async :meth:`add_cache`."""
        try:
            store = self._store_args(result, kwargs)
            if store is not None:
                await self.core.astore(**store)
                self._worked()
        except Exception as exc:
            self._failed("store", kwargs, exc)

    # -- lifecycle ------------------------------------------------------------------------------

    async def disconnect(self) -> None:
        """Close sync and async connections if this cache created the core (LiteLLM's name)."""
        if self._owns_core:
            await self.core.aclose()
