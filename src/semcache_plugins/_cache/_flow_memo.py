"""Memos of the lookup flow's pure per-request work (one per ``FlowConfig``, bounded).

- the exact-tier read of a plan (``ReadEntry``: the entry key, its entry counts and the 7
  generation counters, 7 sha256s): it depends only on the layout and the plan's ids and hashes;
- the KNN query of a scope (``FT.SEARCH`` arguments but the vector: the filter expression and
  its query string), unless it filters by creation time (``max_age``: a moving bound);
- the checked fields of a stored record (``_records.checked_fields``: every signed field's text,
  the HMAC and vector checks), keyed by the raw fields read, so only what was just read (from
  Redis or the L1) is ever decoded: an entry changed, deleted or dropped from the L1 is read
  anew, and its new bytes are a new key. The response is parsed afresh for every use.

A memo serves only the layout and signing key it was made for; any other is computed afresh.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, cast

from .._records import StoredRecord, checked_fields, decode_record, record_of
from ._generations import plan_generation_keys
from ._index import KNN_CANDIDATES, IndexLayout, entry_filter, knn_command
from ._scope import RequestPlan

if TYPE_CHECKING:
    from ._flows import ReadEntry

__all__ = ["FlowMemo", "decoded", "exact_read", "knn_args"]

_MAX_READS = 4096
_MAX_RECORDS = 2048
_MAX_RECORD_BYTES = 64 * 1024  # a bigger record is decoded afresh every time
_MAX_BYTES = 16 * 1024 * 1024


class _Bounded:
    """A dict read without a lock, written under one, oldest out first past ``size`` items or
    ``max_bytes`` (by the weights given)."""

    def __init__(self, size: int, max_bytes: int = 0) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self.items: dict[Hashable, tuple[Any, int]] = {}
        self._lock = threading.Lock()

    def put(self, key: Hashable, value: Any, weight: int = 0) -> None:
        with self._lock:
            old = self.items.pop(key, None)
            self._bytes += weight - (0 if old is None else old[1])
            self.items[key] = (value, weight)
            while len(self.items) > self._size or (
                self._max_bytes and self._bytes > self._max_bytes
            ):
                self._bytes -= self.items.pop(next(iter(self.items)))[1]


class FlowMemo:
    """The memos of one flow configuration (its layout and signing key)."""

    def __init__(self, layout: IndexLayout, signing_key: bytes | None) -> None:
        self.layout = layout
        self.signing_key = signing_key
        self._reads = _Bounded(_MAX_READS)
        self._searches = _Bounded(_MAX_READS)
        self._records = _Bounded(_MAX_RECORDS, _MAX_BYTES)

    def __len__(self) -> int:
        return len(self._reads.items) + len(self._searches.items) + len(self._records.items)


def _new_read(layout: IndexLayout, plan: RequestPlan) -> ReadEntry:
    from ._flows import ReadEntry  # noqa: PLC0415 - _flows imports this module

    counts = (layout.count_key(plan.scope), layout.count_key()) if plan.semantic else ()
    return ReadEntry(layout.key(plan.entry_id), counts, plan_generation_keys(layout, plan))


def exact_read(memo: FlowMemo | None, layout: IndexLayout, plan: RequestPlan) -> ReadEntry:
    """The exact-tier read of ``plan`` (key, entry counts if semantic, generation counters)."""
    if memo is None or memo.layout is not layout:
        return _new_read(layout, plan)
    key = (plan.entry_id, plan.scope, plan.semantic, plan.namespace, plan.system_hash,
           plan.model_hash)  # fmt: skip
    held = memo._reads.items.get(key)
    if held is not None:
        read: ReadEntry = held[0]
        return read
    read = _new_read(layout, plan)
    memo._reads.put(key, read)
    return read


_VECTOR = cast(bytes, object())  # where the query's vector goes in a memoized KNN query


def knn_args(
    memo: FlowMemo | None,
    layout: IndexLayout,
    *,
    scope: str,
    vector: bytes,
    min_created: float | None,
    exclude_tool_calls: bool,
    policy: str | None,
    candidates: int = KNN_CANDIDATES,
) -> tuple[Any, ...]:
    """``_index.knn_command`` of the scope's pre-filter (``_index.entry_filter``) and ``vector``."""
    if memo is None or memo.layout is not layout or min_created is not None:
        expression = entry_filter(
            layout, scope=scope, min_created_at=min_created, exclude_tool_calls=exclude_tool_calls
        )
        return knn_command(layout, vector, expression, policy, k=candidates)
    key = (scope, exclude_tool_calls, policy, candidates)
    held = memo._searches.items.get(key)
    if held is None:
        expression = entry_filter(layout, scope=scope, exclude_tool_calls=exclude_tool_calls)
        args = knn_command(layout, _VECTOR, expression, policy, k=candidates)
        at = next(i for i, arg in enumerate(args) if arg is _VECTOR)
        parts = (args[:at], args[at + 1 :])
        memo._searches.put(key, parts)
    else:
        parts = held[0]
    return (*parts[0], vector, *parts[1])


def _weight(fields: Mapping[str, Any]) -> int:
    return sum(len(value) + 64 for value in fields.values() if isinstance(value, bytes | str))


def decoded(
    memo: FlowMemo | None,
    fields: Mapping[str, Any],
    *,
    entry_id: str,
    signing_key: bytes | None,
) -> StoredRecord:
    """``_records.decode_record(fields, ...)``, its checks done once per distinct raw record."""
    if memo is None or memo.signing_key != signing_key:
        return decode_record(fields, entry_id=entry_id, signing_key=signing_key)
    key = (entry_id, tuple(fields), tuple(fields.values()))
    try:
        held = memo._records.items.get(key)
    except TypeError:  # not the bytes a read returns: nothing to key it by
        return decode_record(fields, entry_id=entry_id, signing_key=signing_key)
    if held is None:
        checked = checked_fields(fields, entry_id=entry_id, signing_key=signing_key)
        weight = _weight(fields)
        if weight <= _MAX_RECORD_BYTES:
            memo._records.put(key, checked, weight)
    else:
        checked = held[0]
    return record_of(*checked, entry_id=entry_id)
