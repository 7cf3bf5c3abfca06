"""The per-call memos of an exact repeat (``_plan_memo``, ``_flow_memo``, the L1's derived
reads): a memo may only ever return what the work it saves would have returned now.

Plans: every input a plan depends on (message content, roles, extra message keys, model,
params, their types, namespace, system prompt, prior turns) changes the key, so no changed
request reuses a plan; the same content in new objects does (the control). Records: only the
raw fields just read are decoded, each response is parsed afresh, and an entry the L1 dropped
(deleted, overwritten, invalidated) is never served from a memo.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
import redis

from semcache_plugins import CacheCore
from semcache_plugins._cache._flow_memo import FlowMemo, decoded, exact_read, knn_args
from semcache_plugins._cache._generations import plan_generation_keys
from semcache_plugins._cache._index import IndexLayout, entry_filter, knn_command
from semcache_plugins._cache._l1_reads import held_result
from semcache_plugins._cache._plan_memo import PlanMemo, request_key
from semcache_plugins._cache._scope import plan_request
from semcache_plugins._errors import SerializationError
from semcache_plugins._records import SIGNED_FIELDS, decode_record, record_signature

MODEL = "memo-model"
_POLL = 10.0


def ask(text: str, system: str = "Be brief.") -> list[dict[str, Any]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


BASE: dict[str, Any] = {
    "messages": ask("What is the capital of France?"),
    "model": "gpt-x",
    "params": {"temperature": 0.5, "max_tokens": 100},
    "namespace": "tenant-a",
}


def _variant(**changes: Any) -> dict[str, Any]:
    request = copy.deepcopy(BASE)
    request.update(changes)
    return request


# each differs from BASE in one thing the plan depends on
VARIANTS: dict[str, dict[str, Any]] = {
    "content": _variant(messages=ask("What is the capital of Spain?")),
    "content case": _variant(messages=ask("what is the capital of France?")),
    "content spacing": _variant(messages=ask("What is the capital of  France?")),
    "system prompt": _variant(messages=ask("What is the capital of France?", "Be verbose.")),
    "no system prompt": _variant(messages=ask("What is the capital of France?")[1:]),
    "prior turn": _variant(
        messages=[
            *ask("Hi")[:1],
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "What is the capital of France?"},
        ]
    ),
    "last role": _variant(
        messages=[*ask("x")[:1], {"role": "assistant", "content": "What is the capital of France?"}]
    ),
    "message name": _variant(
        messages=[
            *ask("x")[:1],
            {"role": "user", "content": "What is the capital of France?", "name": "bob"},
        ]
    ),
    "content parts": _variant(
        messages=[
            *ask("x")[:1],
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "a"}}]},
        ]
    ),
    "model": _variant(model="gpt-y"),
    "param value": _variant(params={"temperature": 0.7, "max_tokens": 100}),
    "param int": _variant(params={"temperature": 1, "max_tokens": 100}),
    "param bool": _variant(params={"temperature": True, "max_tokens": 100}),
    "param str": _variant(params={"temperature": "0.5", "max_tokens": 100}),
    "param nested": _variant(params={"temperature": 0.5, "max_tokens": 100, "stop": ["\n"]}),
    "param added": _variant(params={"temperature": 0.5, "max_tokens": 100, "seed": 1}),
    "no params": _variant(params=None),
    "namespace": _variant(namespace="tenant-b"),
}


def plan_of(memo: PlanMemo, request: dict[str, Any]) -> Any:
    return memo.plan(
        request["messages"],
        model=request["model"],
        params=request["params"],
        namespace=request["namespace"],
    )


def fresh_plan(request: dict[str, Any]) -> Any:
    return plan_request(
        request["messages"],
        model=request["model"],
        params=request["params"],
        namespace=request["namespace"],
    )


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_changed_request_never_reuses_a_plan(name: str) -> None:
    memo = PlanMemo()
    base = plan_of(memo, BASE)
    variant = VARIANTS[name]
    for _ in range(2):  # after each has been memoized, in both orders
        assert plan_of(memo, variant) == fresh_plan(variant)
        assert plan_of(memo, BASE) == base == fresh_plan(BASE)
    assert plan_of(memo, variant) != base  # the variant changes the plan itself
    assert request_key(**variant) != request_key(**BASE)


def test_every_variant_differs_in_its_plan() -> None:
    """The table is worth its rows: each variant plans differently from BASE and the rest."""
    plans = {name: fresh_plan(request) for name, request in VARIANTS.items()}
    scopes = [(plan.scope, plan.entry_id, plan.namespace) for plan in plans.values()]
    assert len(set(scopes)) == len(scopes)
    assert fresh_plan(BASE).entry_id not in {plan.entry_id for plan in plans.values()}


def test_the_same_content_in_new_objects_reuses_the_plan() -> None:
    """Control: the memo serves (a memo that never hits fails here)."""
    memo = PlanMemo()
    first = plan_of(memo, BASE)
    assert plan_of(memo, copy.deepcopy(BASE)) is first
    assert len(memo) == 1


def test_a_message_changed_in_place_is_planned_again() -> None:
    memo = PlanMemo()
    request = copy.deepcopy(BASE)
    before = plan_of(memo, request)
    request["messages"][1]["content"] = "What is the capital of Italy?"
    after = plan_of(memo, request)
    assert after == fresh_plan(request) and after.entry_id != before.entry_id
    request["params"]["temperature"] = 0.9
    assert plan_of(memo, request) == fresh_plan(request) != after


class _Text(str):
    pass


@pytest.mark.parametrize(
    "request_",
    [
        _variant(messages=[OrderedDict(m) for m in BASE["messages"]]),  # dict subclass
        _variant(messages=[{"role": "user", "content": _Text("hello")}]),  # str subclass
        _variant(params={"temperature": object()}),  # not JSON-like
        _variant(params=OrderedDict(temperature=0.5)),
        _variant(messages="What is the capital of France?"),  # not a list
        _variant(messages=[]),
    ],
)
def test_inputs_the_memo_cannot_key_are_planned_afresh(request_: dict[str, Any]) -> None:
    memo = PlanMemo()
    assert plan_of(memo, request_).skip_reason == fresh_plan(request_).skip_reason
    assert plan_of(memo, request_).scope == fresh_plan(request_).scope


def test_the_plan_memo_is_bounded() -> None:
    memo = PlanMemo(size=4)
    for i in range(10):
        plan_of(memo, _variant(messages=ask(f"question {i}")))
    assert len(memo) == 4
    huge = _variant(messages=ask("x" * 50_000))
    assert plan_of(memo, huge) == fresh_plan(huge)  # too big to keep: planned, not kept
    assert len(memo) == 4


# -- records ---------------------------------------------------------------------------------

KEY = b"signing-key"
LAYOUT = IndexLayout("memo", "v1", 4)


def _fields(answer: str, *, sign: bytes | None = KEY, gen: str = "g1") -> dict[str, Any]:
    text = {name: "" for name in SIGNED_FIELDS}
    text.update(
        scope="s", ns="n", namespace="ns", system="y", model="m", version="v1", tools="0",
        created_at="1700000000.000000", gen=gen, prompt="q",
        payload=f'{{"v":1,"response":{{"answer":"{answer}"}}}}',
    )  # fmt: skip
    fields: dict[str, Any] = {name: value.encode() for name, value in text.items()}
    if sign is not None:
        fields["sig"] = record_signature(sign, entry_id="e1", fields=text).encode()
    return fields


def test_a_record_memo_decodes_only_what_was_read() -> None:
    memo = FlowMemo(LAYOUT, KEY)
    first = decoded(memo, _fields("A"), entry_id="e1", signing_key=KEY)
    assert first.response == {"answer": "A"}
    first.response["answer"] = "mutated by a caller"
    again = decoded(memo, _fields("A"), entry_id="e1", signing_key=KEY)
    assert again.response == {"answer": "A"}  # parsed afresh: a caller's change stays theirs
    assert len(memo) == 1  # control: the checks were kept
    changed = decoded(memo, _fields("B", gen="g2"), entry_id="e1", signing_key=KEY)
    assert changed.response == {"answer": "B"} and changed.generation == "g2"
    assert changed == decode_record(_fields("B", gen="g2"), entry_id="e1", signing_key=KEY)


@pytest.mark.parametrize(
    "forged",
    [
        _fields("A", sign=b"another key"),
        _fields("A", sign=None),
        {**_fields("A"), "payload": b'{"v":1,"response":{"answer":"B"}}'},
    ],
)
def test_a_record_memo_never_skips_the_signature_check(forged: dict[str, Any]) -> None:
    memo = FlowMemo(LAYOUT, KEY)
    decoded(memo, _fields("A"), entry_id="e1", signing_key=KEY)  # the honest one is kept
    for _ in range(2):
        with pytest.raises(SerializationError):
            decoded(memo, forged, entry_id="e1", signing_key=KEY)
    with pytest.raises(SerializationError):  # nor moved to another entry
        decoded(memo, _fields("A"), entry_id="e2", signing_key=KEY)


def test_a_memo_serves_only_its_own_layout_and_key() -> None:
    memo = FlowMemo(LAYOUT, KEY)
    decoded(memo, _fields("A", sign=None), entry_id="e1", signing_key=None)  # not kept
    assert len(memo) == 0
    plan = fresh_plan(BASE)
    other = IndexLayout("other", "v1", 4)
    assert exact_read(memo, other, plan).key == other.key(plan.entry_id)
    assert exact_read(memo, LAYOUT, plan) is exact_read(memo, LAYOUT, plan)
    assert exact_read(memo, LAYOUT, plan) == exact_read(None, LAYOUT, plan)


# -- the L1 and the memos, on Redis ---------------------------------------------------------


def _until(check: Callable[[], bool]) -> None:
    stop = time.monotonic() + _POLL
    while time.monotonic() < stop:
        if check():
            return
        time.sleep(0.005)
    raise AssertionError("the change never showed")


def _held_read(core: CacheCore, messages: list[dict[str, Any]]) -> Any:
    """The exact read's result from the L1 (polled until it holds the entry), or fail."""
    l1 = core.internals.sync_backend.l1
    assert l1 is not None
    plan = core.internals.plan(messages, MODEL, None, None)
    assert plan is not None
    read = exact_read(core.config.memo, core.layout, plan)
    stop = time.monotonic() + _POLL
    while time.monotonic() < stop:
        assert core.lookup(messages, MODEL) is not None
        result = held_result(l1, read)
        if result is not None:
            return result
        time.sleep(0.01)
    raise AssertionError("the L1 never held the entry")


def _reused(core: CacheCore, messages: list[dict[str, Any]]) -> Any:
    """Control: two reads in a row from the L1 give the very same derived result (polled: a
    late push of our own stores may drop the entry once more)."""
    l1 = core.internals.sync_backend.l1
    assert l1 is not None
    stop = time.monotonic() + _POLL
    while time.monotonic() < stop:
        first = _held_read(core, messages)
        plan = core.internals.plan(messages, MODEL, None, None)
        assert plan is not None
        if held_result(l1, exact_read(core.config.memo, core.layout, plan)) is first:
            return first
    raise AssertionError("the L1's derived read was never reused")


def _overwrite(other: CacheCore, client: redis.Redis, question: list[dict[str, Any]]) -> Any:
    other.store(question, {"answer": "changed"}, MODEL)
    return {"answer": "changed"}


def _delete(other: CacheCore, client: redis.Redis, question: list[dict[str, Any]]) -> Any:
    hit = other.lookup(question, MODEL)
    assert hit is not None
    client.delete(other.layout.key(hit.entry_id))


def _invalidate(other: CacheCore, client: redis.Redis, question: list[dict[str, Any]]) -> Any:
    other.invalidate(system_prompt="Be brief.")


def _restore_same_answer(
    other: CacheCore, client: redis.Redis, question: list[dict[str, Any]]
) -> Any:
    """Invalidated, then stored again with the same answer: served again, as the new entry."""
    other.invalidate(system_prompt="Be brief.")
    other.store(question, {"answer": "original"}, MODEL)
    return {"answer": "original"}


@pytest.mark.parametrize("change", [_overwrite, _delete, _invalidate, _restore_same_answer])
def test_what_the_l1_dropped_is_never_served_from_a_memo(
    cores: tuple[CacheCore, CacheCore], redis_client: redis.Redis, change: Any
) -> None:
    ours, other = cores
    question, control = ask("capital of France"), ask("control", system="Other.")
    ours.store(question, {"answer": "original"}, MODEL)
    ours.store(control, {"answer": "control"}, MODEL)
    _reused(ours, question)
    _held_read(ours, control)
    hit = ours.lookup(question, MODEL)
    assert hit is not None and hit.response == {"answer": "original"}
    assert ours.config.memo is not None and len(ours.config.memo) > 0
    old = hit
    expected = change(other, redis_client, question)

    def changed() -> bool:
        now = ours.lookup(question, MODEL)
        if expected is None:
            return now is None
        return now is not None and (now.response, now.created_at) != (
            old.response,
            old.created_at,
        )

    _until(changed)
    for _ in range(20):
        now = ours.lookup(question, MODEL)
        if expected is None:
            assert now is None
        else:
            assert now is not None and now.response == expected
            assert now.created_at != old.created_at  # the new entry, not the memoized one
    assert _held_read(ours, control) is not None  # other entries stay held
    hit = ours.lookup(control, MODEL)
    assert hit is not None and hit.response == {"answer": "control"}


@pytest.mark.parametrize(
    ("one", "other"),
    [(1, True), (0, False), (1.0, True), ([1], [True]), ({"a": 1}, {"a": True}), ((1,), (True,))],
)
def test_equal_values_of_other_types_never_share_a_plan(one: Any, other: Any) -> None:
    """1 == True and hash alike in Python, but plan apart (JSON 1 vs true)."""
    memo = PlanMemo()
    first, second = _variant(params={"seed": one}), _variant(params={"seed": other})
    assert fresh_plan(first) != fresh_plan(second)
    for _ in range(2):
        assert plan_of(memo, first) == fresh_plan(first)
        assert plan_of(memo, second) == fresh_plan(second)


def test_a_generation_bump_is_never_hidden_by_a_derived_read(
    cores: tuple[CacheCore, CacheCore], redis_client: redis.Redis
) -> None:
    """The L1 keeps an entry while one of its generation counters changes (a bump, its
    deletions not yet done) and another entry of the scope holds the new value: the entry's
    read is derived anew from the values held now, so its old generation is not served."""
    ours, _ = cores
    first, second = ask("first question"), ask("second question")
    ours.store(first, {"answer": 1}, MODEL)
    ours.store(second, {"answer": 2}, MODEL)
    _reused(ours, first)
    plan = ours.internals.plan(first, MODEL, None, None)
    assert plan is not None
    counter = plan_generation_keys(ours.layout, plan)[0]
    l1 = ours.internals.sync_backend.l1
    assert l1 is not None
    redis_client.incr(counter)
    _until(lambda: l1.get((counter,)) is None)
    ours.lookup(second, MODEL)  # holds the new counter value again
    _until(lambda: l1.get((counter,)) is not None)
    for _ in range(20):
        assert ours.lookup(first, MODEL) is None


@pytest.mark.parametrize("policy", [None, "BATCHES"])
@pytest.mark.parametrize("exclude", [True, False])
@pytest.mark.parametrize("min_created", [None, 1700000000.5])
def test_a_memoized_knn_query_is_the_query(
    policy: str | None, exclude: bool, min_created: float | None
) -> None:
    memo = FlowMemo(LAYOUT, None)
    for scope, vector in [("ab" * 16, b"\x01" * 16), ("cd" * 16, b"\x02" * 16)] * 2:
        expected = knn_command(
            LAYOUT,
            vector,
            entry_filter(
                LAYOUT, scope=scope, min_created_at=min_created, exclude_tool_calls=exclude
            ),
            policy,
        )
        given = knn_args(
            memo,
            LAYOUT,
            scope=scope,
            vector=vector,
            min_created=min_created,
            exclude_tool_calls=exclude,
            policy=policy,
        )
        assert given == expected and given[-1] is vector
    assert len(memo) == (2 if min_created is None else 0)  # a moving max_age bound is not kept
