"""Pure record encoding/signing, index layout and filters, stats and the circuit breaker."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

from semcache_plugins._cache._index import (
    IndexLayout,
    entry_filter,
    index_version,
    knn_command,
    namespace_hash,
    search_rows,
)
from semcache_plugins._cache._stats import CacheStats, CircuitBreaker
from semcache_plugins._errors import ConfigurationError, SerializationError
from semcache_plugins._records import (
    SIGNED_FIELDS,
    decode_record,
    encode_response,
    record_mapping,
    vector_digest,
)

KEY = b"k" * 32
VECTOR = np.arange(4, dtype=np.float32).tobytes()


def fields(response: Any = "hello", *, sign: bytes | None = None, **over: Any) -> dict[str, Any]:
    """A stored hash as Redis gives it back (bytes values), signed with ``sign`` if given."""
    text: dict[str, str] = {
        "scope": "s1",
        "ns": "a1",
        "namespace": "acme",
        "system": "b2",
        "model": "c3",
        "version": "v1",
        "tools": "0",
        "created_at": "1700000000.5",
        "expires_at": "",
        "gen": "g1",
        "vec": vector_digest(VECTOR),
        "prompt": "p",
        "payload": encode_response(response, max_bytes=10_000),
    }
    mapping: dict[str, Any] = record_mapping(text, "e1", sign, None)
    mapping.update(over)
    return {k: (v.encode() if isinstance(v, str) else v) for k, v in mapping.items()}


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


# A tampered value per signed field: each decides what is served, to whom, until when, or
# what invalidation finds (tags), or whether it may be served at all (generation, tools).
TAMPERED = {
    "scope": "s2",
    "ns": "a2",
    "namespace": "ACME",
    "system": "b3",
    "model": "c4",
    "version": "v2",
    "tools": "1",
    "created_at": "1800000000.5",
    "expires_at": "1900000000.0",
    "gen": "g0",
    "vec": vector_digest(b"other vector"),
    "prompt": "q",
    "payload": encode_response("evil", max_bytes=1000),
}


def test_every_signed_field_is_tampered_in_some_case() -> None:
    assert set(TAMPERED) == set(SIGNED_FIELDS)


@pytest.mark.parametrize("name", SIGNED_FIELDS)
def test_tampering_any_signed_field_fails_verification(name: str) -> None:
    tampered = fields(sign=KEY, **{name: TAMPERED[name]})
    with pytest.raises(SerializationError, match="signature"):
        decode_record(tampered, entry_id="e1", signing_key=KEY)
    # without a key nothing is verified: the same record decodes (a control)
    decode_record(tampered, entry_id="e1", signing_key=None)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("scope", "ns"),
        ("namespace", "system"),
        ("model", "version"),
        ("gen", "vec"),
        ("prompt", "payload"),
    ],
)
def test_a_field_cannot_borrow_bytes_from_its_neighbour(first: str, second: str) -> None:
    """Fields are signed as a JSON array, not joined by a separator: the signature of
    (x + sep + y, "") never verifies (x, y)."""
    honest = fields(sign=KEY)
    joined = honest[first] + b"\x1f" + honest[second]
    shifted_text = {k: v.decode() for k, v in honest.items() if k in SIGNED_FIELDS}
    shifted_text.update({first: joined.decode(), second: ""})
    shifted = record_mapping(shifted_text, "e1", KEY, None)
    moved = {**honest, "sig": shifted["sig"]}
    assert decode_record(honest, entry_id="e1", signing_key=KEY)  # the control verifies
    with pytest.raises(SerializationError, match="signature"):
        decode_record(moved, entry_id="e1", signing_key=KEY)


def test_the_vector_read_back_must_be_the_signed_one() -> None:
    signed = fields(sign=KEY)
    assert decode_record({**signed, "embedding": VECTOR}, entry_id="e1", signing_key=KEY)
    other = np.ones(4, dtype=np.float32).tobytes()
    for vector in (other, None):  # rewritten, or removed
        with pytest.raises(SerializationError, match="vector"):
            decode_record({**signed, "embedding": vector}, entry_id="e1", signing_key=KEY)
    exact_only = fields(sign=KEY, vec="")
    with pytest.raises(SerializationError, match="signature"):
        decode_record(exact_only, entry_id="e1", signing_key=KEY)  # vec is signed too


def test_decoded_record_carries_tags_generation_and_expiry() -> None:
    record = decode_record(fields(expires_at="1700000060.5"), entry_id="e1", signing_key=None)
    assert (record.namespace_hash, record.system_hash, record.model_hash) == ("a1", "b2", "c3")
    assert record.generation == "g1" and record.expires_at == 1700000060.5
    assert not record.has_tool_calls
    with pytest.raises(SerializationError):
        decode_record(fields(tools="yes"), entry_id="e1", signing_key=None)


def test_layout_names_carry_the_fingerprint() -> None:
    a, b = IndexLayout("sc", "aaaa", 384), IndexLayout("sc", "bbbb", 384)
    assert a.name != b.name and a.key_prefix != b.key_prefix
    assert a.key("e1") == "sc:s2.aaaa:e1"
    assert a.name == "sc-s2.aaaa"  # schema 2: never the name of a schema-1 index ("sc-aaaa")
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
    assert args[:2] == ("FT.SEARCH", "sc-s2.v1")
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
    for old in ("sc-ab12", "sc-f16.ab12"):  # schema-1 indexes stay listed (and droppable)
        assert index_version("sc", old) == "ab12"
    assert index_version("sc", "sc-x-ab12") is None and index_version("sc", "other-ab12") is None


def test_entry_filter_is_a_tag_prefilter() -> None:
    layout = IndexLayout("sc", "v1", 4)
    text = str(entry_filter(layout, scope="abc", min_created_at=10.0, exclude_tool_calls=True))
    assert "@version:{v1}" in text
    assert "@scope:{abc}" in text
    assert "@created_at:[10.0 +inf]" in text
    assert "-@tools:{1}" in text
    assert str(entry_filter(layout, system="5", model="6")).count("@") == 3


@pytest.mark.parametrize("bad", ["", "*", "a,b", "ABC", "x y", "{a}", "a|b"])
def test_entry_filter_refuses_anything_but_a_hash(bad: str) -> None:
    layout = IndexLayout("sc", "v1", 4)
    for name in ("scope", "system", "model"):
        with pytest.raises(ConfigurationError, match="hex hash"):
            entry_filter(layout, **{name: bad})


def test_namespaces_are_filtered_by_an_exact_case_preserving_hash() -> None:
    layout = IndexLayout("sc", "v1", 4)
    tenants = ["acme", "ACME", "Acme", "a,b", "b", "*", "", "ümlaut", "a|b"]
    tags = {tenant: str(entry_filter(layout, namespace=tenant)) for tenant in tenants}
    assert len(set(tags.values())) == len(tenants)
    for tenant, text in tags.items():
        assert f"@ns:{{{namespace_hash(tenant)}}}" in text
        assert re.fullmatch(r"[@a-z0-9:{}() ]+", text)  # no user text, no wildcard


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
