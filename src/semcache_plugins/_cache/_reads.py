"""The read operations' pipelines (pure: queue commands, decode replies), for both backends."""

from __future__ import annotations

from typing import Any

from ._flows import ReadEntries, ReadEntry, ReadGenerations
from ._generations import generation_token
from ._index import RECORD_FIELDS, VECTOR_FIELD

__all__ = ["entry_replies", "queue_reads", "read_result"]

_VECTOR_FIELDS = (*RECORD_FIELDS, VECTOR_FIELD)


def _fields(values: list[Any]) -> dict[str, Any] | None:
    if all(value is None for value in values):
        return None
    names = RECORD_FIELDS if len(values) == len(RECORD_FIELDS) else _VECTOR_FIELDS
    return dict(zip(names, values, strict=True))


def queue_reads(pipe: Any, op: ReadEntry | ReadEntries | ReadGenerations) -> None:
    """Queue the HMGETs (then the PFCOUNTs, then the generation MGET) of a read on a (sync or
    async) pipeline."""
    if isinstance(op, ReadGenerations):
        for group in op.groups:
            pipe.mget(list(group))
        return
    with_vector = isinstance(op, ReadEntries) and op.with_vector
    names = _VECTOR_FIELDS if with_vector else RECORD_FIELDS
    for key in op.keys if isinstance(op, ReadEntries) else (op.key,):
        # bytes even on a decode_responses client: the vector is binary, the prompt may
        # hold surrogates
        pipe.execute_command("HMGET", key, *names, NEVER_DECODE=True)
    if isinstance(op, ReadEntry):
        for count_key in op.count_keys:
            pipe.pfcount(count_key)
        if op.generation_keys:
            pipe.mget(list(op.generation_keys))


def entry_replies(replies: list[Any], entry_commands: int) -> list[Any]:
    """The entries' replies (raising their first error); a failed entry count reads as 0.

    A count key holding something else only costs the choice of KNN strategy, never an entry.
    """
    for reply in replies[:entry_commands]:
        if isinstance(reply, Exception):
            raise reply
    return replies[:entry_commands] + [
        0 if isinstance(reply, Exception) else reply for reply in replies[entry_commands:]
    ]


def read_result(op: ReadEntry | ReadEntries | ReadGenerations, replies: list[Any]) -> Any:
    if isinstance(op, ReadGenerations):
        return [generation_token(values) for values in entry_replies(replies, len(replies))]
    if isinstance(op, ReadEntries):
        return [_fields(values) for values in entry_replies(replies, len(replies))]
    # the generation is no mere count: a failed MGET fails the read (never "no generation")
    gens = 1 if op.generation_keys else 0
    for reply in replies[len(replies) - gens :]:
        if isinstance(reply, Exception):
            raise reply
    generation = generation_token(replies[-1]) if gens else None
    replies = entry_replies(replies[: len(replies) - gens], 1)
    return _fields(replies[0]), [int(count) for count in replies[1:]], generation
