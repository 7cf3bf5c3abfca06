"""How each adapter audits a served semantic hit (``audit_rate``).

LiteLLM (chat completions; text completions are not audited): the hit is returned at once;
a background thread (sync calls) or task (async calls) repeats the call through LiteLLM with
``cache={"no-cache": True, "no-store": True}`` and hands the fresh answer to the core's
``Auditor``.

LangChain: ``BaseCache.lookup`` gets no model to call, so a sampled hit is *withheld*: the
lookup answers "miss", LangChain calls the model as it would without a cache, and the answer
it stores is judged against the withheld hit (``Auditor.withhold`` / ``stored``). The audited
share of calls pays the provider's latency, never more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._types import CacheHit

if TYPE_CHECKING:
    from .._cache._core import CacheCore

__all__ = ["audit_call_kwargs", "audit_litellm_hit", "withhold_for_audit"]

logger = logging.getLogger("semcache_plugins")
_INTERNAL = frozenset({"cache_key", "parent_otel_span", "cache", "stream_options"})
_TASKS: set[asyncio.Task[None]] = set()  # keep background audits alive until they finish


def audit_call_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The user's call again, minus LiteLLM's per-call internals, not streamed, and neither
    read from nor written to the cache."""
    call = {
        key: value
        for key, value in kwargs.items()
        if key not in _INTERNAL and not key.startswith("litellm_")
    }
    call["stream"] = False
    call["cache"] = {"no-cache": True, "no-store": True}
    return call


def _query(core: CacheCore, messages: Any, model: str, params: Any, namespace: Any) -> str:
    return core.internals.plan(messages, model, params, namespace).prompt


def audit_litellm_hit(
    core: CacheCore,
    hit: CacheHit | None,
    core_args: Mapping[str, Any],
    kwargs: Mapping[str, Any],
    *,
    asynchronous: bool,
) -> None:
    """Count a served hit; if it is a semantic one sampled for audit, repeat the call in the
    background (``asynchronous``: a task on the running loop, else the auditor's call threads:
    a sync call may come from a thread whose loop is busy). Never raises: an audit that cannot
    start is logged and lost, and the hit is still served."""
    if hit is None or not core.internals.auditor.served(hit):
        return  # no hit, an exact one, or not sampled
    try:
        _start_audit(core, hit, core_args, kwargs, asynchronous=asynchronous)
    except Exception as exc:
        logger.warning("semcache: audit of entry %s not started: %s", hit.entry_id, exc)


def _start_audit(
    core: CacheCore,
    hit: CacheHit,
    core_args: Mapping[str, Any],
    kwargs: Mapping[str, Any],
    *,
    asynchronous: bool,
) -> None:
    query = _query(core, **core_args)
    call = audit_call_kwargs(kwargs)

    def judge(result: Any) -> None:
        from ._litellm_convert import stored_response

        fresh = stored_response(result, text=False)
        if fresh is not None:
            core.internals.auditor.judge_later(hit, query, fresh[0])

    if asynchronous:  # async_get_cache: a task on the caller's loop
        task = asyncio.get_running_loop().create_task(_arepeat(call, judge))
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)
        return

    def run() -> None:
        import litellm

        try:
            judge(litellm.completion(**call))
        except Exception as exc:
            logger.warning("semcache: audit call for entry %s failed: %s", hit.entry_id, exc)

    core.internals.auditor.run_call(run)


async def _arepeat(call: dict[str, Any], judge: Any) -> None:
    import litellm

    try:
        result = await litellm.acompletion(**call)
        judge(result)
    except Exception as exc:
        logger.warning("semcache: audit call failed: %s", exc)


def withhold_for_audit(
    core: CacheCore,
    hit: CacheHit | None,
    messages: Sequence[Any],
    model: str,
    params: Any,
) -> bool:
    """LangChain: True when ``hit`` is sampled for audit and must be reported as a miss (the
    model's answer, once stored, is judged against it)."""
    if not core.internals.auditor.served(hit) or hit is None:
        return False
    plan = core.internals.plan(messages, model, params, None)
    core.internals.auditor.withhold(plan.entry_id, hit, plan.prompt, shadow=False)
    return True
