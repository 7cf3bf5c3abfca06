"""LangChain integration: a ``BaseCache`` over the semantic cache core, plus streaming support.

```python
from langchain_core.globals import set_llm_cache
from semcache_plugins.langchain import LangChainSemCache, cached

cache = LangChainSemCache(redis_url="redis://localhost:6379")
set_llm_cache(cache)                    # every model; or ChatOpenAI(..., cache=cache)
streaming = cached(model, cache=cache)  # .stream()/.astream() that read and fill the cache
```
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any, Unpack

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.outputs import Generation

from ._adapters._adapter_core import adapter_core
from ._adapters._audit_adapters import withhold_for_audit
from ._adapters._core_delegation import CoreDelegation
from ._adapters._langchain_convert import (
    PAYLOAD_KIND,
    CacheRequest,
    decode_generations,
    encode_generations,
    has_tool_calls,
    parse_llm_string,
    render_generations,
    to_request,
    with_hit_info,
)
from ._adapters._langchain_stream import CachedChatModel, cached
from ._cache._core import CacheCore
from ._cache._scope import canonical_params, sha256_hex
from ._embedding._embedder import Embedder
from ._errors import SemcacheError, SerializationError
from ._options import SettingsOverrides
from ._precision._answer import shown_answers
from ._settings import CacheSettings
from ._types import CacheHit

__all__ = ["CachedChatModel", "LangChainSemCache", "cached", "warm_scope"]

logger = logging.getLogger("semcache_plugins")
_CLEAR_KEYS = frozenset({"system_prompt", "model", "namespace"})


class LangChainSemCache(CoreDelegation, BaseCache):
    """A semantic LLM cache for LangChain: ``set_llm_cache(cache)`` or ``Chat...(cache=cache)``.

    Scope rules are the core's: the system prompt, model, output-changing parameters (bound
    tools included) and prior turns must match exactly; only the last human turn is compared
    by meaning. Redis or embedding failures are logged once and behave as misses.

    Settings: ``settings`` plus keyword overrides (every ``CacheSettings`` field, typed by
    ``SettingsOverrides``), or ``core=`` to share a ``CacheCore`` (left open by ``close``).
    """

    def __init__(
        self,
        *,
        settings: CacheSettings | None = None,
        core: CacheCore | None = None,
        embedder: Embedder | None = None,
        semantic_tool_calls: bool = False,
        **overrides: Unpack[SettingsOverrides],
    ) -> None:
        self._core, self._owns_core = adapter_core(
            core=core, settings=settings, embedder=embedder, overrides=overrides
        )
        self._semantic_tool_calls = semantic_tool_calls
        self._degraded = False

    @property
    def core(self) -> CacheCore:
        """The core this adapter runs on (stats, events, invalidation, ``metrics``); it can be
        shared with the LiteLLM adapter."""
        return self._core

    def __repr__(self) -> str:
        return f"LangChainSemCache({self._core!r})"

    # -- shared pieces ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _failing_open(self, op: str, prompt: str, llm_string: str) -> Iterator[None]:
        """Turn a cache error into a miss / no-op; warn once until the cache works again."""
        try:
            yield
        except SemcacheError as exc:
            level = logging.DEBUG if self._degraded else logging.WARNING
            self._degraded = True
            logger.log(
                level,
                "semcache: LangChain cache %s skipped (prompt sha256 %s, "
                "llm_string sha256 %s): %s: %s",
                op,
                sha256_hex(prompt)[:16],
                sha256_hex(llm_string)[:16],
                type(exc).__name__,
                exc,
            )
        else:
            if self._degraded:
                self._degraded = False
                logger.info("semcache: LangChain cache %s works again", op)

    def _lookup_kwargs(self) -> dict[str, Any]:
        return {"semantic_tool_calls": self._semantic_tool_calls}

    @staticmethod
    def _generations(request: CacheRequest, hit: CacheHit | None) -> list[Generation] | None:
        """The hit as generations: stored ones revived, other shapes (warmed answers, LiteLLM
        responses) rendered; chat messages carry ``response_metadata["semcache"]``."""
        if hit is None:
            return None
        stored = hit.response
        if isinstance(stored, dict) and stored.get("kind") == PAYLOAD_KIND:
            generations = decode_generations(stored)
        elif shown := shown_answers(stored):
            generations = render_generations(shown, chat=request.chat)
        else:
            raise SerializationError("cached value is not an answer LangChain can use")
        info = {"tier": hit.tier, "similarity": hit.similarity, "entry_id": hit.entry_id}
        return with_hit_info(generations, info)

    @staticmethod
    def _store_args(request: CacheRequest, return_val: RETURN_VAL_TYPE) -> dict[str, Any] | None:
        payload = encode_generations(return_val)
        if payload is None:
            logger.debug("semcache: generations cannot be serialized; not caching them")
            return None
        return {
            "messages": request.messages,
            "response": payload,
            "model": request.model,
            "params": request.params,
            "exact_only": has_tool_calls(return_val),
        }

    def _clear_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        unknown = set(kwargs) - _CLEAR_KEYS
        if unknown:
            raise TypeError(f"clear() got unexpected keyword arguments: {sorted(unknown)}")
        given = {key: value for key, value in kwargs.items() if value is not None}
        if not given:
            return None
        return {"namespace": self._core.settings.namespace, **given}

    # -- BaseCache ----------------------------------------------------------------------------

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Cached generations for this prompt and model configuration, or None."""
        request = to_request(prompt, llm_string)
        generations = None
        with self._failing_open("lookup", prompt, llm_string):
            hit = self._core.lookup(
                request.messages, request.model, request.params, **self._lookup_kwargs()
            )
            if withhold_for_audit(self._core, hit, request.messages, request.model, request.params):
                hit = None  # audited: the model answers, and its answer is judged against the hit
            generations = self._generations(request, hit)
        return generations

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """Async :meth:`lookup` (Redis and embedding never block the event loop)."""
        request = to_request(prompt, llm_string)
        generations = None
        with self._failing_open("lookup", prompt, llm_string):
            hit = await self._core.alookup(
                request.messages, request.model, request.params, **self._lookup_kwargs()
            )
            if withhold_for_audit(self._core, hit, request.messages, request.model, request.params):
                hit = None  # audited: the model answers, and its answer is judged against the hit
            generations = self._generations(request, hit)
        return generations

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store generations; answers with tool calls go to the exact tier only."""
        args = self._store_args(to_request(prompt, llm_string), return_val)
        if args is not None:
            with self._failing_open("update", prompt, llm_string):
                self._core.store(**args)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Async :meth:`update`."""
        args = self._store_args(to_request(prompt, llm_string), return_val)
        if args is not None:
            with self._failing_open("update", prompt, llm_string):
                await self._core.astore(**args)

    def clear(self, **kwargs: Any) -> None:
        """Remove this namespace's entries, or only those of ``system_prompt=`` / ``model=``."""
        scoped = self._clear_kwargs(kwargs)
        removed = self._core.clear() if scoped is None else self._core.invalidate(**scoped)
        logger.debug("semcache: cleared %d LangChain cache entries", removed)

    async def aclear(self, **kwargs: Any) -> None:
        """Async :meth:`clear`."""
        scoped = self._clear_kwargs(kwargs)
        removed = await (
            self._core.aclear() if scoped is None else self._core.ainvalidate(**scoped)
        )
        logger.debug("semcache: cleared %d LangChain cache entries", removed)

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        if self._owns_core:
            await self._core.aclose()


def warm_scope(
    model: BaseChatModel | BaseLLM, *, stop: list[str] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """The ``"model"`` and ``"params"`` a warm record needs for this LangChain model to serve
    it (``kwargs``: a chat model's call-time options, such as bound tools).
    ``ChatOpenAI(model="gpt-4o-mini")`` gives ``{"model": "gpt-4o-mini", "params": {}}``; an
    LLM's defaults (temperature, max_tokens, ...) are part of its params.
    """
    if isinstance(model, BaseChatModel):
        llm_string = model._get_llm_string(stop=stop, **kwargs)
    else:  # what BaseLLM.generate hands the cache (call kwargs are not part of it)
        params = {**model._dict_for_compat(), "stop": stop}
        llm_string = str(sorted(params.items()))
    name, params = parse_llm_string(llm_string)
    kept: dict[str, Any] = json.loads(canonical_params(params))
    return {"model": name, "params": kept}
