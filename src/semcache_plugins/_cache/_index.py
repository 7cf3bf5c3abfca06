"""Redis layout (pure): index names, keys, the RedisVL schema and the TAG filters of every query.

One cache entry is one Redis hash. Its key is derived from the exact-tier hash, so an exact
repeat is a single ``HMGET`` and the exact and semantic records of an entry are the same key:
they always expire together. The index name and key prefix carry the embedding fingerprint,
so a different model, pooling or quantization never reads another's vectors, and the schema
version (``SCHEMA_TAG``), so a changed schema starts a new index instead of reusing an old one.

The HNSW parameters are not part of the name: they change neither what is stored nor how it
is read, only build cost and recall. An index keeps the M and EF_CONSTRUCTION it was created
with (``FT.INFO`` shows them; drop it to rebuild with new ones); EF_RUNTIME is sent with every
query. They were chosen from ``python -m bench.hnsw_curve`` (see the results file).

Every filter compares hex hashes (scope, namespace, system prompt, model): TAG matching is
case-insensitive, splits on commas and treats an empty value as "anything", so no raw user
text is ever matched. The raw ``namespace`` TAG is kept only for ``semcache stats``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from redisvl.query.filter import FilterExpression, Num, Tag

from .._errors import ConfigurationError

__all__ = [
    "RECORD_FIELDS",
    "VECTOR_FIELD",
    "IndexLayout",
    "count_pattern",
    "entry_filter",
    "hybrid_policy",
    "ids_command",
    "index_version",
    "knn_command",
    "namespace_hash",
    "search_rows",
]

VECTOR_FIELD = "embedding"
# Fields read back on a hit (the vector only for semantic candidates of a signed cache).
RECORD_FIELDS = (
    "scope",
    "prompt",
    "payload",
    "created_at",
    "tools",
    "sig",
    "ns",
    "system",
    "model",
    "version",
    "namespace",
    "gen",
    "expires_at",
    "vec",
    "demoted",  # set by an audit (``_audit.demoted_ids``): never serves a semantic hit
)
_SCHEMA_TAG = "s2."  # schema 2: namespace hash TAG ("ns"), generations; 1 had no tag
KNN_CANDIDATES = 4
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
# From bench.hnsw_curve (100k entries, one scope): 100k Quora questions reach recall@10 0.995
# at EF_RUNTIME 64 (0.998 at 100, for +0.2 ms per KNN); a harder mix with synthetic
# near-duplicates needs 100 (0.993; 64 ~0.99). EF_CONSTRUCTION 64/100 stayed under 0.99 there.
HNSW_EF_RUNTIME = 64
_FLOAT16_TAG = "f16."  # never starts a hex digest
# A scope at least this big, and this share of the index, is searched by HNSW (see hybrid_policy).
BATCHES_MIN_ENTRIES = 2000
BATCHES_MIN_SHARE = 0.25


@dataclass(frozen=True)
class IndexLayout:
    """Names and schema of the index for one index prefix and one embedding fingerprint."""

    index_prefix: str
    version: str  # the embedding fingerprint digest
    dims: int
    dtype: Literal["float32", "float16"] = "float32"

    @property
    def _tag(self) -> str:
        # float16 vectors live in their own index; no float32 index prefix ("{prefix}:s2.{hex}")
        # matches a float16 key ("{prefix}:s2.f16.{hex}"), nor a schema-1 prefix
        # ("{prefix}:{hex}", "{prefix}:f16.{hex}") a schema-2 key.
        dtype = "" if self.dtype == "float32" else _FLOAT16_TAG
        return f"{_SCHEMA_TAG}{dtype}{self.version}"

    @property
    def name(self) -> str:
        return f"{self.index_prefix}-{self._tag}"

    @property
    def key_prefix(self) -> str:
        return f"{self.index_prefix}:{self._tag}"

    def vector_bytes(self, vector: np.ndarray) -> bytes:
        """The vector as stored and queried in this index (float32 or float16)."""
        return vector.astype(np.float16 if self.dtype == "float16" else np.float32).tobytes()

    def key(self, entry_id: str) -> str:
        return f"{self.key_prefix}:{entry_id}"

    def count_key(self, scope: str | None = None) -> str:
        """The HyperLogLog of the entries with a vector, in one scope or (None) in the index.

        Outside the index's key prefix, so never indexed; named after the index, so dropping
        the index can find them (:func:`count_pattern`)."""
        return f"{self.name}:n" if scope is None else f"{self.name}:n:{scope}"

    def schema(self) -> dict[str, Any]:
        """The RedisVL schema dict: TAG scope fields, creation time, and an HNSW cosine vector."""
        tags = ("scope", "ns", "namespace", "system", "model", "version", "tools")
        return {
            "index": {
                "name": self.name,
                "prefix": self.key_prefix,
                "key_separator": ":",
                "storage_type": "hash",
            },
            "fields": [
                *({"name": tag, "type": "tag"} for tag in tags),
                {"name": "created_at", "type": "numeric"},
                {
                    "name": VECTOR_FIELD,
                    "type": "vector",
                    "attrs": {
                        "dims": self.dims,
                        "algorithm": "hnsw",
                        "distance_metric": "cosine",
                        "datatype": self.dtype,
                        "m": HNSW_M,
                        "ef_construction": HNSW_EF_CONSTRUCTION,
                    },
                },
            ],
        }


def namespace_hash(namespace: str) -> str:
    """The TAG value of a namespace: exact and case-preserving (TAG matching is neither)."""
    return hashlib.sha256(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def count_pattern(index_name: str) -> str:
    """The glob matching every entry count of an index (see ``IndexLayout.count_key``)."""
    return f"{index_name}:n*"


def index_version(index_prefix: str, name: str) -> str | None:
    """The embedding version of the cache index ``name`` (float32 or float16, this schema or
    the first) under ``index_prefix``, or None when ``name`` is not one of its indexes."""
    schema, f16 = re.escape(_SCHEMA_TAG), re.escape(_FLOAT16_TAG)
    match = re.fullmatch(f"{re.escape(index_prefix)}-(?:{schema})?(?:{f16})?([^-.]+)", name)
    return match.group(1) if match else None


def entry_filter(
    layout: IndexLayout,
    *,
    scope: str | None = None,
    namespace: str | None = None,
    system: str | None = None,
    model: str | None = None,
    min_created_at: float | None = None,
    exclude_tool_calls: bool = False,
) -> FilterExpression:
    """The TAG/numeric pre-filter for a query: always the embedding version, plus what is given.

    ``namespace`` is the raw name (matched by its hash); the others are hashes already. An
    empty value is refused: RedisVL would turn it into "match everything"."""
    expr: FilterExpression = Tag("version") == layout.version
    for field, value in (
        ("scope", scope),
        ("ns", None if namespace is None else namespace_hash(namespace)),
        ("system", system),
        ("model", model),
    ):
        if value is not None:
            if not re.fullmatch("[0-9a-f]{1,64}", value):
                raise ConfigurationError(f"{field} filter must be a hex hash, not {value!r}")
            expr = expr & (Tag(field) == value)
    if min_created_at is not None:
        expr = expr & (Num("created_at") >= min_created_at)
    if exclude_tool_calls:
        expr = expr & (Tag("tools") != "1")
    return expr


def hybrid_policy(scope_entries: int, index_entries: int) -> str | None:
    """``"BATCHES"`` (HNSW, filtering as it goes) for a scope that is big and a large share of
    the index, else None: RediSearch chooses, and for a filter matching fewer than ~10k
    documents it scans them all. Measured here: a 10k scope took 1.6 ms scanned, 0.33 ms by
    batches; a 200-entry scope in a 25k index 0.15 ms scanned, 2.5 ms by batches."""
    big = scope_entries >= BATCHES_MIN_ENTRIES
    return "BATCHES" if big and scope_entries >= BATCHES_MIN_SHARE * index_entries else None


def knn_command(
    layout: IndexLayout,
    vector: bytes,
    filter_expression: FilterExpression,
    policy: str | None = None,
    *,
    k: int = KNN_CANDIDATES,
    ef_runtime: int = HNSW_EF_RUNTIME,
) -> tuple[Any, ...]:
    """``FT.SEARCH`` arguments of the KNN query (not a range query: filtered HNSW range queries
    can miss neighbours), pre-filtered, nearest first, returning ids and distances only (the few
    records that can matter are read next). Sent as is: no query object per lookup.
    ``policy``: an explicit ``HYBRID_POLICY`` (see :func:`hybrid_policy`); ``k``: how many
    neighbours (the consensus rule, ``_consensus``, asks for more); ``ef_runtime`` other than the
    default is for ``bench.hnsw_curve``."""
    hybrid = f"HYBRID_POLICY {policy} " if policy else ""
    knn = (
        f"({filter_expression})=>[KNN {k} @{VECTOR_FIELD} $vector "
        f"{hybrid}EF_RUNTIME {ef_runtime} AS vector_distance]"
    )
    return (
        "FT.SEARCH",
        layout.name,
        knn,
        "RETURN",
        1,
        "vector_distance",
        "SORTBY",
        "vector_distance",
        "ASC",
        "DIALECT",
        2,
        "LIMIT",
        0,
        k,
        "PARAMS",
        2,
        "vector",
        vector,
    )


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _get(mapping: dict[Any, Any], name: str) -> Any:
    return mapping.get(name.encode(), mapping.get(name))


def search_rows(reply: Any) -> list[dict[str, Any]]:
    """The documents of an ``FT.SEARCH`` reply (RESP2 list or RESP3 map) as dicts with ``id``."""
    rows: list[dict[str, Any]] = []
    if isinstance(reply, dict):  # RESP3
        for result in _get(reply, "results") or []:
            fields = _get(result, "extra_attributes") or {}
            rows.append({"id": _str(_get(result, "id")), **{_str(k): v for k, v in fields.items()}})
        return rows
    body = reply[1:]  # RESP2: total, then id [fields] pairs, or ids alone (NOCONTENT)
    if not (len(body) >= 2 and isinstance(body[1], list)):
        return [{"id": _str(doc_id)} for doc_id in body]
    for doc_id, fields in zip(body[::2], body[1::2], strict=True):
        row = {"id": _str(doc_id)}
        row.update((_str(k), v) for k, v in zip(fields[::2], fields[1::2], strict=True))
        rows.append(row)
    return rows


def ids_command(
    layout: IndexLayout, filter_expression: FilterExpression, *, batch: int = 100
) -> tuple[Any, ...]:
    """``FT.SEARCH`` arguments for the ids of matching entries (invalidation deletes them in
    batches: one batch must beat the socket timeout)."""
    return (
        "FT.SEARCH",
        layout.name,
        str(filter_expression),
        "NOCONTENT",
        "DIALECT",
        2,
        "LIMIT",
        0,
        batch,
    )
