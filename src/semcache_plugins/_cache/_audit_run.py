"""Audit and shadow mode, the I/O part: judge hits against fresh answers off the caller's
path, and keep the verdicts in Redis.

``Auditor`` (one per ``CacheCore``) runs every comparison and Redis write on its own worker
thread, so a caller never waits for an audit. Per index it keeps, beside the index (outside the
key prefix, so never indexed) and expiring after ``audit_log_ttl``:

- ``<index>:audit:counts``: a hash of ``served`` (semantic hits served, added at each
  audit), ``audited`` and ``disagreements``;
- ``<index>:audit:log``: the latest ``audit_log_size`` disagreements (JSON ``AuditRecord``).

A disagreement also increments the entry's ``disagreements`` field; at
``audit_demote_after`` the entry gets the ``demoted`` flag, which the lookup reads with the
other fields (``_flows.lookup_flow``): the entry then answers exact repeats only, and is still a
neighbour in the agreement test.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from .._precision._audit import (
    DEMOTED_FIELD,
    AuditRecord,
    AuditSampler,
    answer_text,
    compare_answers,
    false_hit_estimate,
)
from .._types import CacheHit

if TYPE_CHECKING:
    from ._core import CacheCore

__all__ = ["Auditor", "audit_counts_key", "audit_log_key", "audit_summary", "read_audit"]

logger = logging.getLogger("semcache_plugins")
_PENDING_MAX = 1024

# Count a disagreement on an entry that still exists (never re-create an expired or deleted
# entry as a hash without its expiry), and flag it once it reaches ARGV[1].
_DEMOTE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = redis.call('HINCRBY', KEYS[1], 'disagreements', 1)
if n >= tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], ARGV[2], '1') end
return n
"""


def audit_counts_key(index_name: str) -> str:
    return f"{index_name}:audit:counts"


def audit_log_key(index_name: str) -> str:
    return f"{index_name}:audit:log"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_audit(client: Any, index_name: str) -> tuple[dict[str, int], list[AuditRecord]]:
    """The counts and the logged disagreements of an index (any redis client)."""
    counts = client.hgetall(audit_counts_key(index_name)) or {}
    numbers = {_text(k): int(_text(v)) for k, v in counts.items()}
    records = [
        AuditRecord.from_json(item) for item in client.lrange(audit_log_key(index_name), 0, -1)
    ]
    return numbers, [record for record in records if record is not None]


def audit_summary(counts: dict[str, int]) -> dict[str, object]:
    """Served semantic hits, audits, disagreements and the estimated false-hit rate (95%
    Wilson interval) from an index's audit counts."""
    audited, disagreements = counts.get("audited", 0), counts.get("disagreements", 0)
    return {
        "semantic_hits_served": counts.get("served", 0),
        "audited": audited,
        "disagreements": disagreements,
        **false_hit_estimate(audited, disagreements),
    }


class Auditor:
    """Samples semantic hits, holds back shadow / deferred ones until the provider's answer is
    stored, and judges them in the background."""

    def __init__(self, core: CacheCore, sampler: AuditSampler | None = None) -> None:
        self._core = core
        settings = core.settings
        self.sampler = sampler or AuditSampler(
            settings.audit_rate,
            random.Random(settings.audit_seed),  # noqa: S311 - sampling
        )
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, tuple[CacheHit, str, bool]] = OrderedDict()
        self._futures: set[Future[None]] = set()
        self._executor: ThreadPoolExecutor | None = None  # judging: one thread, in order
        self._call_executor: ThreadPoolExecutor | None = None  # provider calls of audits
        self._served = 0  # semantic hits served since the last write of the counts

    # -- deciding -------------------------------------------------------------------------

    def served(self, hit: CacheHit | None) -> bool:
        """Note a hit that is served; True when it is a semantic hit sampled for audit."""
        if hit is None or hit.tier != "semantic":
            return False
        with self._lock:
            self._served += 1
        return self.sampler()

    def shadowed(self, request_id: str, query: str, hit: CacheHit) -> None:
        """Shadow mode found ``hit`` and served nothing: count it; a semantic one is judged
        against the provider's answer once that is stored."""
        self._core.events.count(f"shadow_hits_{hit.tier}")
        if hit.tier == "semantic":
            self.withhold(request_id, hit, query, shadow=True)

    def withhold(self, request_id: str, hit: CacheHit, query: str, *, shadow: bool) -> None:
        """Remember a hit that was not served (shadow mode, or an audit the adapter cannot run
        in the background): the provider's answer, once stored for ``request_id``, is judged."""
        with self._lock:
            if not shadow:  # a sampled hit withheld after all: not served
                self._served = max(0, self._served - 1)
            self._pending[request_id] = (hit, query, shadow)
            self._pending.move_to_end(request_id)
            while len(self._pending) > _PENDING_MAX:
                self._pending.popitem(last=False)

    def stored(self, request_id: str, response: Any) -> None:
        """The provider's answer for a request was stored: judge a hit withheld for it."""
        if not self._pending:
            return
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if pending is not None:
            hit, query, shadow = pending
            self.judge_later(hit, query, response, shadow=shadow)

    # -- judging --------------------------------------------------------------------------

    def judge_later(self, hit: CacheHit, query: str, fresh: Any, *, shadow: bool = False) -> None:
        """Compare ``fresh`` with the hit's answer and record the verdict, off this thread."""
        with self._lock:
            if self._executor is None:
                if self._core.internals.is_closed():
                    return  # too late: the core is closed (audits under way at close finish)
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="semcache-audit")
            future = self._executor.submit(self._judge, hit, query, fresh, shadow)
            self._futures.add(future)
        future.add_done_callback(self._done)

    def run_call(self, call: Callable[[], None]) -> None:
        """Run a provider call of an audit (a sync adapter's) on the audit call threads."""
        with self._lock:
            if self._call_executor is None:
                if self._core.internals.is_closed():
                    return
                self._call_executor = ThreadPoolExecutor(4, thread_name_prefix="semcache-audit")
            future = self._call_executor.submit(call)
            self._futures.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def _judge(self, hit: CacheHit, query: str, fresh: Any, shadow: bool) -> None:
        settings = self._core.settings
        try:
            comparison = compare_answers(
                hit.response, fresh, self._core.embedder.embed, settings.audit_answer_threshold
            )
            record = AuditRecord(
                entry_id=hit.entry_id,
                query=query,
                matched_prompt=hit.matched_prompt,
                similarity=hit.similarity,
                answer_similarity=comparison.similarity,
                agree=comparison.agree,
                method=comparison.method,
                served=answer_text(hit.response),
                fresh=answer_text(fresh),
                at=time.time(),
                shadow=shadow,
            )
            self._write(record)
        except Exception:  # an audit must never fail anything; it is only lost
            logger.warning("semcache: audit of entry %s failed", hit.entry_id, exc_info=True)
            return
        self._core.events.count("audited")
        if not record.agree:
            self._core.events.count("audit_disagreements")
            logger.info(
                "semcache: audit disagreement on entry %s (answer similarity %.3f)",
                record.entry_id,
                record.answer_similarity,
            )

    def _write(self, record: AuditRecord) -> None:
        settings = self._core.settings
        layout = self._core.layout
        client = self._core.internals.sync_backend.client()
        counts, log = audit_counts_key(layout.name), audit_log_key(layout.name)
        with self._lock:
            served, self._served = self._served, 0
        pipe = client.pipeline(transaction=True)
        if served:
            pipe.hincrby(counts, "served", served)
        pipe.hincrby(counts, "audited", 1)
        if not record.agree:
            pipe.hincrby(counts, "disagreements", 1)
            pipe.lpush(log, record.to_json())
            pipe.ltrim(log, 0, settings.audit_log_size - 1)
            pipe.expire(log, settings.audit_log_ttl)
        pipe.expire(counts, settings.audit_log_ttl)
        pipe.execute()
        if not record.agree:
            client.eval(
                _DEMOTE_SCRIPT,
                1,
                layout.key(record.entry_id),
                settings.audit_demote_after,
                DEMOTED_FIELD,
            )

    # -- lifecycle ------------------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the audits under way; True when none is left (tests, notebooks, close)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # a finished call may have queued its judgement
            with self._lock:
                futures = set(self._futures)
            if not futures:
                return True
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            _, not_done = wait(futures, timeout=left)
            if not_done:
                return False

    def close(self) -> None:
        """Finish the audits under way and stop the worker thread."""
        with self._lock:
            calls, self._call_executor = self._call_executor, None
        if calls is not None:
            calls.shutdown(wait=True)
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
