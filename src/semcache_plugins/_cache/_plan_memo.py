"""A per-core memo of request plans (``_scope.plan_request``), keyed by the request's content.

Planning hashes the scope, normalizes the text and splits long prompts: tens of microseconds,
most of an exact repeat served from the L1. The key is an exact, type-tagged copy of every
input the plan depends on (messages, model, params, namespace), so a changed message, a
mutated dict or an equal-looking value of another type (``1`` / ``1.0`` / ``True``) never
reuses a plan. Inputs of other types (dict subclasses, objects, str subclasses) and very large
requests are planned afresh every time, as without the memo.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ._scope import RequestPlan, plan_request

__all__ = ["PlanMemo", "request_key"]

_MAX_PLANS = 2048
_MAX_CHARS = 16_384  # a request whose strings add up to more is planned afresh (memory bound)
_MAX_DEPTH = 32


class _Unkeyable(Exception):
    """An input the memo does not key (planned afresh)."""


def _frozen(value: Any, depth: int) -> Any:
    """An exact, hashable, type-tagged image of a JSON-like value (strings as themselves)."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int or kind is float or kind is bool:
        return (kind, value)
    if depth > _MAX_DEPTH:
        raise _Unkeyable
    if kind is list or kind is tuple:
        return (kind, *(_frozen(item, depth + 1) for item in value))
    if kind is dict:
        items: list[Any] = [dict]
        for key, item in value.items():
            if type(key) is not str:
                raise _Unkeyable
            items.append(key)
            items.append(_frozen(item, depth + 1))
        return tuple(items)
    raise _Unkeyable


_STR = frozenset({str})
_PLAIN_VALUES = frozenset({str, type(None)})
_TAGGED = object()  # starts a message key with other values than strings and None


def _message_key(message: Any) -> tuple[Any, ...]:
    """(key, value) pairs of a message whose keys are strings and values strings or None;
    otherwise ``_TAGGED`` and the pairs with type-tagged values (never equal to the former)."""
    if type(message) is not dict or not _STR.issuperset(map(type, message)):
        raise _Unkeyable
    if _PLAIN_VALUES.issuperset(map(type, message.values())):
        return tuple(message.items())
    return (_TAGGED, *((key, _frozen(value, 1)) for key, value in message.items()))


def request_key(
    messages: Any, model: Any, params: Mapping[str, Any] | None, namespace: str
) -> tuple[Any, ...] | None:
    """The memo key of a request (None: not memoized). Equal keys mean equal inputs, in the
    same order and of the same types, so ``plan_request`` would return an equal plan."""
    if (type(messages) is not list and type(messages) is not tuple) or type(model) is not str:
        return None
    if type(namespace) is not str:
        return None
    try:
        turns = tuple(map(_message_key, messages))
        frozen_params = None if params is None else _frozen(params, 0)
    except (_Unkeyable, RecursionError):
        return None
    return (namespace, model, type(messages), frozen_params, turns)


def _chars(key: Any) -> int:
    if isinstance(key, str):
        return len(key)
    if isinstance(key, tuple):
        return sum(_chars(item) for item in key) + 8
    return 8


class PlanMemo:
    """Plans by request key: bounded (oldest out first), read without a lock."""

    def __init__(self, size: int = _MAX_PLANS) -> None:
        self._size = size
        self._plans: dict[tuple[Any, ...], RequestPlan] = {}
        self._lock = threading.Lock()

    def plan(
        self,
        messages: Any,
        *,
        model: str,
        params: Mapping[str, Any] | None,
        namespace: str,
    ) -> RequestPlan:
        """``plan_request(...)``, from the memo when this exact request was planned before."""
        key = request_key(messages, model, params, namespace)
        if key is not None:
            plan = self._plans.get(key)
            if plan is not None:
                return plan
        plan = plan_request(messages, model=model, params=params, namespace=namespace)
        if key is not None and _chars(key) <= _MAX_CHARS:
            with self._lock:
                self._plans[key] = plan
                while len(self._plans) > self._size:
                    del self._plans[next(iter(self._plans))]
        return plan

    def __len__(self) -> int:
        return len(self._plans)
