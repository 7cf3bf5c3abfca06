"""Pure record encoding/signing, index layout and filters, stats and the circuit breaker."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from semcache_plugins._errors import SerializationError
from semcache_plugins._index import (
    IndexLayout,
    entry_filter,
    index_version,
    knn_command,
    search_rows,
)
from semcache_plugins._records import decode_record, encode_response, record_signature
from semcache_plugins._stats import CacheStats, CircuitBreaker

KEY = b"k" * 32


def fields(response: Any = "hello", *, sign: bytes | None = None, **over: Any) -> dict[str, Any]:
    payload = encode_response(response, max_bytes=10_000)
    base: dict[str, Any] = {
        "scope": "s1",
        "prompt": "p",
        "payload": payload,
        "created_at": "1700000000.5",
        "tools": b"0",
    }
    if sign:
        base["sig"] = record_signature(
            sign, entry_id="e1", scope="s1", prompt="p", payload=payload, created_at="1700000000.5"
        )
    base.update(over)
    return {k: (v.encode() if isinstance(v, str) else v) for k, v in base.items()}


def test_round_trip_versioned_json() -> None:
    value = {"choices": [{"message": {"content": "hi \U0001f600 \u00e9"}}], "n": 1.5}
    record = decode_record(fields(value), entry_id="e1", signing_key=None)
    assert record.response == value
    assert record.created_at == 1700000000.5
    assert json.loads(encode_response(value, max_bytes=1000))["v"] == 1


@pytest.mark.parametrize("bad", [object(), {"x": {1, 2}}, float("nan")])
def test_non_json_response_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        encode_response(bad, max_bytes=1000)


def test_too_large_response_is_refused() -> None:
    with pytest.raises(SerializationError, match="max_response_bytes"):
        encode_response("x" * 5000, max_bytes=1000)


@pytest.mark.parametrize(
    "over",
    [
        {"payload": "{not json"},
        {"payload": json.dumps({"v": 99, "response": 1})},
        {"payload": json.dumps(["foreign"])},
        {"created_at": "soon"},
        {"created_at": "nan"},
        {"scope": None},
    ],
)
def test_corrupt_or_foreign_records_raise_serialization_error(over: dict[str, Any]) -> None:
    data = fields()
    data.update({k: (v.encode() if isinstance(v, str) else v) for k, v in over.items()})
    if over.get("scope", "") is None:
        del data["scope"]
    with pytest.raises(SerializationError):
        decode_record(data, entry_id="e1", signing_key=None)


def test_signature_required_and_checked() -> None:
    assert decode_record(fields(sign=KEY), entry_id="e1", signing_key=KEY).response == "hello"
    with pytest.raises(SerializationError, match="signature"):
        decode_record(fields(), entry_id="e1", signing_key=KEY)  # unsigned
    with pytest.raises(SerializationError, match="signature"):
        decode_record(fields(sign=b"other"), entry_id="e1", signing_key=KEY)  # forged
    forged = fields(sign=KEY)
    forged["payload"] = encode_response("evil", max_bytes=1000).encode()
    with pytest.raises(SerializationError, match="signature"):
        decode_record(forged, entry_id="e1", signing_key=KEY)
    with pytest.raises(SerializationError, match="signature"):
        decode_record(fields(sign=KEY), entry_id="e2", signing_key=KEY)  # moved to another key


def test_layout_names_carry_the_fingerprint() -> None:
    a, b = IndexLayout("sc", "aaaa", 384), IndexLayout("sc", "bbbb", 384)
    assert a.name != b.name and a.key_prefix != b.key_prefix
    assert a.key("e1") == "sc:aaaa:e1"
    vector = next(f for f in a.schema()["fields"] if f["type"] == "vector")
    assert vector["attrs"]["algorithm"] == "hnsw"
    assert vector["attrs"]["distance_metric"] == "cosine"


def test_float16_layout_is_its_own_index_that_no_float32_prefix_matches() -> None:
    f32, f16 = IndexLayout("sc", "ab12", 4), IndexLayout("sc", "ab12", 4, "float16")
    assert f16.name != f32.name
    assert not f16.key("e1").startswith(f32.key_prefix)  # RediSearch prefixes are plain strings
    vector = next(f for f in f16.schema()["fields"] if f["type"] == "vector")
    assert vector["attrs"]["datatype"] == "float16"
    unit = np.array([0.6, 0.8, 0.0, 0.0], dtype=np.float32)
    assert len(f16.vector_bytes(unit)) == 8 and len(f32.vector_bytes(unit)) == 16
    assert np.frombuffer(f16.vector_bytes(unit), dtype=np.float16).tolist() == pytest.approx(
        [0.6, 0.8, 0.0, 0.0], abs=1e-3
    )


def test_knn_command_is_a_prefiltered_knn_sorted_nearest_first() -> None:
    layout = IndexLayout("sc", "v1", 4)
    args = knn_command(layout, b"VEC", entry_filter(layout, scope="abc"))
    assert args[:2] == ("FT.SEARCH", "sc-v1")
    assert (
        args[2].startswith("(") and "@scope:{abc}" in args[2] and "=>[KNN 4 @embedding" in args[2]
    )
    assert args[args.index("RETURN") : args.index("SORTBY")] == ("RETURN", 1, "vector_distance")
    assert args[-2:] == ("vector", b"VEC") and "VECTOR_RANGE" not in args[2]


def test_search_rows_reads_resp2_and_resp3_replies() -> None:
    resp2 = [2, b"k:1", [b"vector_distance", b"0.1", b"payload_json", b"x"], b"k:2", []]
    resp3 = {
        b"total_results": 2,
        b"results": [
            {
                b"id": b"k:1",
                b"extra_attributes": {b"vector_distance": b"0.1", b"payload_json": b"x"},
            },
            {b"id": b"k:2", b"extra_attributes": {}, b"values": []},
        ],
    }
    expected = [{"id": "k:1", "vector_distance": b"0.1", "payload_json": b"x"}, {"id": "k:2"}]
    assert search_rows(resp2) == expected == search_rows(resp3)
    decoded = {"results": [{"id": "k:1", "extra_attributes": {"payload_json": "x"}}]}
    assert search_rows(decoded) == [{"id": "k:1", "payload_json": "x"}]  # decode_responses=True
    assert search_rows([0]) == [] == search_rows({b"results": []})
    assert search_rows([2, b"k:1", b"k:2"]) == [{"id": "k:1"}, {"id": "k:2"}]  # NOCONTENT
    assert search_rows([1, b"k:1"]) == [{"id": "k:1"}]


def test_index_names_give_back_their_embedding_version() -> None:
    for dtype in ("float32", "float16"):
        assert index_version("sc", IndexLayout("sc", "ab12", 4, dtype).name) == "ab12"
    assert index_version("sc", "sc-x-ab12") is None and index_version("sc", "other-ab12") is None


def test_entry_filter_is_a_tag_prefilter() -> None:
    layout = IndexLayout("sc", "v1", 4)
    text = str(entry_filter(layout, scope="abc", min_created_at=10.0, exclude_tool_calls=True))
    assert "@version:{v1}" in text
    assert "@scope:{abc}" in text
    assert "@created_at:[10.0 +inf]" in text
    assert "-@tools:{1}" in text
    assert str(entry_filter(layout, system="s", model="m")).count("@") == 3


def test_stats_counts_and_percentiles() -> None:
    stats = CacheStats()
    for outcome, seconds in [("hits_exact", 0.001), ("hits_semantic", 0.01), ("misses", 0.02)]:
        stats.lookup_done(outcome, seconds)
    stats.skip("too_long")
    snap = stats.snapshot()
    assert snap["lookups"] == 3 and snap["hits_exact"] == 1 and snap["misses"] == 1
    assert snap["skipped"] == 1 and snap["skipped_too_long"] == 1
    assert snap["hit_rate"] == pytest.approx(2 / 3)
    assert snap["latency_p50_ms"] == pytest.approx(10.0)


def test_circuit_breaker_opens_and_recovers() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=2, cooldown=5.0, clock=lambda: now[0])
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert not breaker.allow()
    now[0] = 5.1
    assert breaker.allow()  # half-open: one probe may go through
    breaker.success()
    assert breaker.allow() and not breaker.is_open
