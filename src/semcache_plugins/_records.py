"""Stored records: versioned JSON values, optional HMAC signatures, and the reverse (pure)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import SerializationError

__all__ = [
    "RECORD_VERSION",
    "SIGNED_FIELDS",
    "StoredRecord",
    "checked_fields",
    "decode_record",
    "encode_response",
    "record_mapping",
    "record_of",
    "record_signature",
    "vector_digest",
]

RECORD_VERSION = 1


def encode_response(response: Any, *, max_bytes: int) -> str:
    """Serialize a response as versioned JSON (ASCII, so lone surrogates survive as escapes)."""
    try:
        body = json.dumps(
            {"v": RECORD_VERSION, "response": response},
            ensure_ascii=True,
            allow_nan=False,
            separators=(",", ":"),
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"response is not JSON-serializable: {type(exc).__name__}"
        ) from exc
    if len(body) > max_bytes:
        raise SerializationError(f"response is {len(body)} bytes, above max_response_bytes")
    return body


# Every stored field that decides what is served, for which request, until when, and what
# invalidation finds: scope and tags, tool-call flag, times, generation, vector digest, text.
SIGNED_FIELDS = (
    "scope",
    "ns",
    "namespace",
    "system",
    "model",
    "version",
    "tools",
    "created_at",
    "expires_at",
    "gen",
    "vec",
    "prompt",
    "payload",
)
_SIGNATURE_LABEL = "semcache-record-2"


def vector_digest(vector: bytes | None) -> str:
    """The signed digest of a stored vector ("" for an entry without one)."""
    return hashlib.sha256(vector).hexdigest()[:32] if vector else ""


def record_signature(key: bytes, *, entry_id: str, fields: Mapping[str, str]) -> str:
    """HMAC-SHA256 over the entry id and every field of ``SIGNED_FIELDS`` (a JSON array, so
    no field can borrow another's bytes)."""
    message = json.dumps(
        [_SIGNATURE_LABEL, entry_id, *(fields[name] for name in SIGNED_FIELDS)],
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


def record_mapping(
    fields: Mapping[str, str], entry_id: str, signing_key: bytes | None, vector: bytes | None
) -> dict[str, bytes | str]:
    """The hash to store: ``fields`` (every one of ``SIGNED_FIELDS``), their signature and
    the vector (prompt as bytes: lone surrogates kept)."""
    mapping: dict[str, bytes | str] = {**fields}
    mapping["prompt"] = fields["prompt"].encode("utf-8", "surrogatepass")
    if signing_key is not None:
        mapping["sig"] = record_signature(signing_key, entry_id=entry_id, fields=fields)
    if vector:
        mapping["embedding"] = vector
    return mapping


@dataclass(frozen=True)
class StoredRecord:
    """A record read back from Redis and checked."""

    entry_id: str
    scope: str
    prompt: str
    response: Any
    created_at: float
    has_tool_calls: bool
    namespace_hash: str = ""
    system_hash: str = ""
    model_hash: str = ""
    generation: str = ""
    expires_at: float | None = None


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogatepass")
    if isinstance(value, str):
        return value
    raise SerializationError(f"record field {name!r} is missing")


def _time(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("time is not finite")
    return value


def checked_fields(
    fields: Mapping[str, Any], *, entry_id: str, signing_key: bytes | None
) -> tuple[dict[str, str], float, float | None]:
    """The text of every signed field, creation and expiry time of a stored hash, once its
    signature (and vector digest) check out; the part of :func:`decode_record` that depends
    on nothing but ``fields``, ``entry_id`` and ``signing_key`` (``_flow_memo`` keeps it)."""
    try:
        text = {name: _text(fields, name) for name in SIGNED_FIELDS}
        created_at = _time(text["created_at"])
        expires_at = _time(text["expires_at"]) if text["expires_at"] else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SerializationError(f"record {entry_id} is unreadable") from exc
    if signing_key is not None:
        expected = record_signature(signing_key, entry_id=entry_id, fields=text)
        given = fields.get("sig")
        given_text = given.decode("ascii", "replace") if isinstance(given, bytes) else given
        if not isinstance(given_text, str) or not hmac.compare_digest(expected, given_text):
            raise SerializationError(f"record {entry_id} failed signature verification")
    if "embedding" in fields:
        vector = fields["embedding"]
        if vector_digest(vector if isinstance(vector, bytes) else None) != text["vec"]:
            raise SerializationError(f"record {entry_id} holds a vector it was not stored with")
    return text, created_at, expires_at


def record_of(
    text: Mapping[str, str], created_at: float, expires_at: float | None, *, entry_id: str
) -> StoredRecord:
    """The record of checked fields (:func:`checked_fields`), its response parsed afresh (a
    caller may change the response it is given: nothing else sees that)."""
    try:
        doc = json.loads(text["payload"])
    except (ValueError, RecursionError) as exc:
        raise SerializationError(f"record {entry_id} holds invalid JSON") from exc
    if not isinstance(doc, dict) or doc.get("v") != RECORD_VERSION or "response" not in doc:
        raise SerializationError(f"record {entry_id} has an unknown shape or version")
    if text["tools"] not in ("0", "1"):
        raise SerializationError(f"record {entry_id} has an unknown tool-call flag")
    return StoredRecord(
        entry_id,
        text["scope"],
        text["prompt"],
        doc["response"],
        created_at,
        text["tools"] == "1",
        text["ns"],
        text["system"],
        text["model"],
        text["gen"],
        expires_at,
    )


def decode_record(
    fields: Mapping[str, Any], *, entry_id: str, signing_key: bytes | None
) -> StoredRecord:
    """Check and decode a stored hash; a corrupt, foreign or forged one is a SerializationError.

    When ``fields`` holds the vector (``embedding``, read for semantic candidates), it must
    match the stored digest, which the signature covers."""
    text, created_at, expires_at = checked_fields(
        fields, entry_id=entry_id, signing_key=signing_key
    )
    return record_of(text, created_at, expires_at, entry_id=entry_id)
