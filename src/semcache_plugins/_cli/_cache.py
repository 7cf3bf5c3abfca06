"""``semcache stats|invalidate|warm|delete|indexes``: operate a cache from the shell."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from redis.commands.search import reducers
from redis.commands.search.aggregation import AggregateRequest

from .._cache._audit_run import audit_summary, read_audit
from .._cache._backend import delete_matching
from .._cache._core import CacheCore
from .._cache._generations import generation_pattern
from .._cache._index import IndexLayout, count_pattern, index_version
from .._cache._warm import WarmItem, warm_item
from .._embedding._embedder import Embedder
from .._errors import ConfigurationError, SemcacheError
from .._precision._audit import format_rate
from .._settings import CacheSettings
from ..embedded import resolve_redis_url, running_server
from ._io import check_redis_url, command, jsonl_records, progress_bar, with_redis

__all__ = ["drop_index", "index_versions", "register"]

_NO_REDIS = (
    "no Redis: pass --redis-url, set SEMCACHE_REDIS_URL or REDIS_URL, "
    "or start one with 'semcache redis start'"
)


# -- shared helpers -------------------------------------------------------------------------


def _redis_url(args: argparse.Namespace) -> str:
    url = resolve_redis_url(args.redis_url)
    if url:
        return check_redis_url(url)
    server = running_server()
    if server is None:
        raise ConfigurationError(_NO_REDIS)
    return server.url


def _prefix(args: argparse.Namespace) -> str:
    return str(args.index_prefix or CacheSettings().index_prefix)


@contextmanager
def _client(args: argparse.Namespace) -> Iterator[redis.Redis]:
    url = _redis_url(args)
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
    try:
        client.ping()
        yield client
    except redis.RedisError as exc:
        raise SemcacheError(f"Redis at {url}: {exc}") from exc
    finally:
        client.close()


def _core(args: argparse.Namespace, **overrides: Any) -> CacheCore:
    return CacheCore(redis_url=_redis_url(args), index_prefix=_prefix(args), **overrides)


def _call(client: redis.Redis, *args: Any) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _ft_info(client: redis.Redis, name: str) -> dict[str, Any]:
    return dict(client.ft(name).info())  # type: ignore[no-untyped-call]


def index_versions(client: redis.Redis, prefix: str) -> dict[str, str]:
    """``{index name: embedding version}`` for the cache indexes under ``prefix`` (a float16
    index counts for the embedding version it holds)."""
    found = {}
    for name in sorted(str(n) for n in _call(client, "FT._LIST")):
        if version := index_version(prefix, name):
            found[name] = version
    return found


def _num_docs(client: redis.Redis, name: str) -> int:
    return int(_ft_info(client, name)["num_docs"])


def drop_index(client: redis.Redis, name: str) -> int:
    """Drop an index, its documents and its entry counts; returns how many documents it held."""
    count = _num_docs(client, name)
    client.ft(name).dropindex(delete_documents=True)
    delete_matching(client, count_pattern(name))
    delete_matching(client, generation_pattern(name))
    return count


# -- commands -------------------------------------------------------------------------------


def _aggregate(client: redis.Redis, name: str, field: str, limit: int) -> list[tuple[str, int]]:
    request = AggregateRequest("*").group_by(f"@{field}", reducers.count().alias("n"))
    rows = client.ft(name).aggregate(request.sort_by("@n", max=limit)).rows
    pairs = [dict(zip(row[::2], row[1::2], strict=True)) for row in rows]
    return [(str(pair.get(field, "")), int(pair["n"])) for pair in pairs]


def _index_stats(client: redis.Redis, name: str, version: str) -> dict[str, Any]:
    info = _ft_info(client, name)
    return {
        "index": name,
        "version": version,
        "entries": int(info["num_docs"]),
        "namespaces": dict(_aggregate(client, name, "namespace", 100)),
        "top_scopes": [{"scope": s, "entries": n} for s, n in _aggregate(client, name, "scope", 5)],
        "index_memory_mb": round(float(info.get("total_index_memory_sz_mb", 0.0)), 4),
        "vector_memory_mb": round(float(info.get("vector_index_sz_mb", 0.0)), 4),
        "audit": audit_summary(read_audit(client, name)[0]),
    }


def _stats(args: argparse.Namespace) -> int:
    prefix = _prefix(args)
    with _client(args) as client:
        indexes = [_index_stats(client, n, v) for n, v in index_versions(client, prefix).items()]
        memory = _call(client, "INFO", "memory")
    report = {
        "prefix": prefix,
        "redis_used_memory": int(memory["used_memory"]),
        "redis_used_memory_human": str(memory["used_memory_human"]),
        "indexes": indexes,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"prefix: {prefix}   redis used_memory: {report['redis_used_memory_human']}")
    if not indexes:
        print("no indexes")
    for item in indexes:
        print(
            f"\nindex {item['index']}  version {item['version']}  entries {item['entries']}  "
            f"index memory {item['index_memory_mb']:.3f} MB + vectors "
            f"{item['vector_memory_mb']:.3f} MB"
        )
        audit = item["audit"]
        print(
            f"  semantic hits served {audit['semantic_hits_served']}, audited {audit['audited']}, "
            f"disagreements {audit['disagreements']}, est. false-hit rate {format_rate(audit)}"
        )
        print(f"  {'namespace':<32} {'entries':>8}")
        for namespace, count in item["namespaces"].items():
            print(f"  {namespace:<32} {count:>8}")
        print(f"  {'top scope':<32} {'entries':>8}")
        for scope in item["top_scopes"]:
            print(f"  {scope['scope']:<32} {scope['entries']:>8}")
    return 0


def _invalidate(args: argparse.Namespace) -> int:
    scoped = (args.system_prompt, args.model, args.namespace)
    if args.embedding_version is not None:
        if any(part is not None for part in scoped):
            raise ConfigurationError("--embedding-version cannot be combined with other filters")
        with _client(args) as client:
            versions = index_versions(client, _prefix(args))
            names = [
                name for name, version in versions.items() if version == args.embedding_version
            ]
            if not names:
                raise ConfigurationError(
                    f"no index of embedding version {args.embedding_version} under {_prefix(args)}"
                )
            removed = sum(drop_index(client, name) for name in names)
        print(f"removed {removed} entries (dropped index {', '.join(names)})")
        return 0
    if all(part is None for part in scoped):
        raise ConfigurationError(
            "give --system-prompt, --model, --namespace or --embedding-version"
        )
    system = None
    if args.system_prompt is not None:
        try:
            system = Path(args.system_prompt).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read {args.system_prompt}: {exc}") from exc
    with _core(args) as core:
        removed = core.invalidate(system_prompt=system, model=args.model, namespace=args.namespace)
    print(f"removed {removed} entries")
    return 0


def _warm(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigurationError("--batch-size must be at least 1")
    path = Path(args.file)
    items: list[WarmItem] = jsonl_records(path, lambda r: warm_item(r, default_model=args.model))
    with _core(args, namespace=args.namespace) as core, progress_bar(len(items), "warm") as step:
        stored = core.store_many(items, batch_size=args.batch_size, progress=step)
    print(f"stored {stored}, skipped {len(items) - stored} (of {len(items)} in {path})")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _core(args) as core:
        found = core.delete(args.entry_id)
    print(f"deleted entry {args.entry_id}" if found else f"no entry {args.entry_id}")
    return 0 if found else 1


def _indexes(args: argparse.Namespace) -> int:
    prefix = _prefix(args)
    with _client(args) as client:
        current = Embedder.from_settings(CacheSettings()).fingerprint.digest
        # an index of the current version but an older schema is old too: no longer read
        live = {IndexLayout(prefix, current, 0, dtype).name for dtype in ("float32", "float16")}
        versions = index_versions(client, prefix)
        print(f"{'index':<40} {'version':<14} {'entries':>8}  current")
        for name, version in versions.items():
            mark = "yes" if name in live else ""
            print(f"{name:<40} {version:<14} {_num_docs(client, name):>8}  {mark}")
        if not versions:
            print(f"no indexes under {prefix} (current version {current})")
        if args.drop_old:
            old = [name for name in versions if name not in live]
            for name in old:
                print(f"dropping {name} ({drop_index(client, name)} entries)")
            print(f"dropped {len(old)} old index(es)")
    return 0


# -- parser ---------------------------------------------------------------------------------


def register(groups: Any) -> None:
    """Add ``stats``, ``invalidate``, ``warm``, ``delete`` and ``indexes``."""
    stats = with_redis(
        command(
            groups,
            "stats",
            "entries, namespaces, scopes and memory of the cache indexes",
            "For each index under the prefix: embedding version, entries, entries per namespace, "
            "top scopes, index memory; and Redis used_memory.",
        )
    )
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(handler=_stats)

    inv = with_redis(
        command(
            groups,
            "invalidate",
            "remove entries by system prompt, model, namespace or version",
            "Remove the entries matching every given filter (current embedding version), or drop "
            "the whole index of another embedding version. Prints how many entries were removed.",
        )
    )
    inv.add_argument("--system-prompt", metavar="FILE", help="file holding the system prompt")
    inv.add_argument("--model", help="the LLM model name the entries were stored for")
    inv.add_argument("--namespace", help="the namespace (tenant)")
    inv.add_argument("--embedding-version", metavar="V", help="drop index PREFIX-V and its entries")
    inv.set_defaults(handler=_invalidate)

    warm = with_redis(
        command(
            groups,
            "warm",
            "pre-load prompt/response pairs from a JSONL file",
            'Each line: {"prompt" or "messages", "system"?, "response" (text or a chat message '
            '{"content", "tool_calls"?}), "model"?, "params"?, "ttl"?}. Embeddings are computed '
            "in batches. LiteLLM and LangChain calls with the same model, system prompt and "
            "params are served these answers.",
        )
    )
    warm.add_argument("file", metavar="FILE.jsonl")
    warm.add_argument("--model", help="model for records without one")
    warm.add_argument("--namespace", help="namespace to store under (default: settings)")
    warm.add_argument("--batch-size", type=int, default=64, help="texts per embedding batch")
    warm.set_defaults(handler=_warm)

    delete = with_redis(
        command(
            groups,
            "delete",
            "remove one cached answer by its entry id",
            "Remove the entry a hit reported (its 'entry_id', 32 hex digits) from the current "
            "index. Exits 1 when there is no such entry.",
        )
    )
    delete.add_argument("entry_id", metavar="ID", help="the entry id a hit reports")
    delete.set_defaults(handler=_delete)

    indexes = with_redis(
        command(
            groups,
            "indexes",
            "list the cache indexes and which embedding version is current",
            "List the indexes under the prefix with their embedding version and entry count; the "
            "current one matches the configured embedding model's fingerprint.",
        )
    )
    indexes.add_argument(
        "--drop-old", action="store_true", help="drop the non-current indexes and their entries"
    )
    indexes.set_defaults(handler=_indexes)
