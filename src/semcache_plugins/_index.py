"""Redis layout (pure): index names, keys, the RedisVL schema and the TAG filters of every query.

One cache entry is one Redis hash. Its key is derived from the exact-tier hash, so an exact
repeat is a single ``HMGET`` and the exact and semantic records of an entry are the same key:
they always expire together. The index name and key prefix carry the embedding fingerprint,
so a different model, pooling or quantization never reads another's vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from redisvl.query import FilterQuery, VectorQuery
from redisvl.query.filter import FilterExpression, Num, Tag

__all__ = [
    "RECORD_FIELDS",
    "VECTOR_FIELD",
    "IndexLayout",
    "entry_filter",
    "knn_query",
]

VECTOR_FIELD = "embedding"
# Fields read back on a hit (never the vector).
RECORD_FIELDS = ("scope", "prompt", "payload", "created_at", "tools", "sig")
PAYLOAD_ALIAS = "payload_json"  # what KNN results call the "payload" field
KNN_CANDIDATES = 4
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_RUNTIME = 64


@dataclass(frozen=True)
class IndexLayout:
    """Names and schema of the index for one index prefix and one embedding fingerprint."""

    index_prefix: str
    version: str  # the embedding fingerprint digest
    dims: int
    dtype: Literal["float32", "float16"] = "float32"

    @property
    def _tag(self) -> str:
        # float16 vectors live in their own index; "f16." never starts a hex digest, so no
        # float32 index prefix ("{prefix}:{hex}") matches a float16 key.
        return self.version if self.dtype == "float32" else f"f16.{self.version}"

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

    def schema(self) -> dict[str, Any]:
        """The RedisVL schema dict: TAG scope fields, creation time, and an HNSW cosine vector."""
        tags = ("scope", "namespace", "system", "model", "version", "tools")
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
    """The TAG/numeric pre-filter for a query: always the embedding version, plus what is given."""
    expr: FilterExpression = Tag("version") == layout.version
    for field, value in (
        ("scope", scope),
        ("namespace", namespace),
        ("system", system),
        ("model", model),
    ):
        if value is not None:
            expr = expr & (Tag(field) == value)
    if min_created_at is not None:
        expr = expr & (Num("created_at") >= min_created_at)
    if exclude_tool_calls:
        expr = expr & (Tag("tools") != "1")
    return expr


def knn_query(vector: bytes, filter_expression: FilterExpression) -> VectorQuery:
    """KNN (not a range query: filtered HNSW range queries can miss neighbours) with the filter."""
    query = VectorQuery(
        vector=vector,
        vector_field_name=VECTOR_FIELD,
        return_fields=[field for field in RECORD_FIELDS if field != "payload"],
        filter_expression=filter_expression,
        num_results=KNN_CANDIDATES,
        ef_runtime=HNSW_EF_RUNTIME,
        return_score=True,
    )
    # redis-py's Document and RedisVL's results both reserve "payload": return it under an alias.
    query.return_field("payload", as_field=PAYLOAD_ALIAS)
    return query


def ids_query(filter_expression: FilterExpression, *, batch: int = 100) -> FilterQuery:
    """Ids of matching entries, for invalidation (deleting a batch must beat the socket timeout)."""
    query = FilterQuery(filter_expression=filter_expression, return_fields=[], num_results=batch)
    query.no_content()
    return query
