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
    "StoredRecord",
    "decode_record",
    "encode_response",
    "record_signature",
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


def record_signature(
    key: bytes, *, entry_id: str, scope: str, prompt: str, payload: str, created_at: str
) -> str:
    """HMAC-SHA256 over every field that decides what is served, and for which request."""
    message = "\x1f".join((entry_id, scope, prompt, payload, created_at))
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class StoredRecord:
    """A record read back from Redis and checked."""

    entry_id: str
    scope: str
    prompt: str
    response: Any
    created_at: float
    has_tool_calls: bool


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogatepass")
    if isinstance(value, str):
        return value
    raise SerializationError(f"record field {name!r} is missing")


def decode_record(
    fields: Mapping[str, Any], *, entry_id: str, signing_key: bytes | None
) -> StoredRecord:
    """Check and decode a stored hash; a corrupt, foreign or forged one is a SerializationError."""
    try:
        scope = _text(fields, "scope")
        prompt = _text(fields, "prompt")
        payload = _text(fields, "payload")
        created_raw = _text(fields, "created_at")
        created_at = float(created_raw)
        if not math.isfinite(created_at):
            raise ValueError("created_at is not finite")
    except (ValueError, UnicodeDecodeError) as exc:
        raise SerializationError(f"record {entry_id} is unreadable") from exc
    if signing_key is not None:
        expected = record_signature(
            signing_key,
            entry_id=entry_id,
            scope=scope,
            prompt=prompt,
            payload=payload,
            created_at=created_raw,
        )
        given = fields.get("sig")
        given_text = given.decode("ascii", "replace") if isinstance(given, bytes) else given
        if not isinstance(given_text, str) or not hmac.compare_digest(expected, given_text):
            raise SerializationError(f"record {entry_id} failed signature verification")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise SerializationError(f"record {entry_id} holds invalid JSON") from exc
    if not isinstance(doc, dict) or doc.get("v") != RECORD_VERSION or "response" not in doc:
        raise SerializationError(f"record {entry_id} has an unknown shape or version")
    tools_raw = fields.get("tools", b"0")
    return StoredRecord(
        entry_id=entry_id,
        scope=scope,
        prompt=prompt,
        response=doc["response"],
        created_at=created_at,
        has_tool_calls=tools_raw in (b"1", "1"),
    )
