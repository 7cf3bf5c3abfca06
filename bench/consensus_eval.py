"""Neighbour consensus (``_consensus``) vs today's rules on warm-then-ask streams.

Run ``python -m bench.consensus_eval`` (``--core`` also replays Banking77 through ``CacheCore``
on a real Redis; ``--sweep`` prints the design-half sweep). Streams, from ``datasets/``:
- Banking77: warm the whole train split (answer = intent), ask every test question; a hit is
  correct iff the served answer is the query's intent.
- Banking77, 1/8 of the intents unwarmed: the same, without the train rows of the intents whose
  CRC32 is 0 mod 8; their test questions must miss (any hit is wrong).
- CLINC150: warm train, ask test + oos_test (oos must miss).
- fow-cache pairs: each pair is its own scope holding one entry (the cached side); a hit is
  correct iff ``same_answer`` (ambiguous rows count as different).
- fow-cache, one scope: every distinct cached side in one scope (answer = its id), each distinct
  query asked (``quality_streams.pair_stream``'s labels).
Each lookup replays ``lookup_flow``'s decisions without Redis: the KNN rows (numpy brute force
over the same vectors: exact, where HNSW is near-exact at these sizes), ``_consensus.close_rows``
and ``serving_order`` (the functions the flow calls), then the notation check and the guards
(``check_guards`` with the real model) on each candidate in order. Rows are split by
``guards_eval._half`` (CRC32 of the query text; fow pairs: of the id): even = design (the
consensus constants were tuned on it), odd = held-out (never tuned on).

Hit rate = correct hits / should-hit lookups (should-hit: the nearest warm question holds the
right answer, as in ``guards_eval``/``verifier_eval``); served share = hits / lookups.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench import guards_eval as ge
from bench import quality_streams as qs
from semcache_plugins._cache._scope import normalize_text
from semcache_plugins._precision._consensus import ConsensusPolicy, close_rows, serving_order
from semcache_plugins._precision._guards import DEFAULT_SIMILARITY_THRESHOLD, check_guards
from semcache_plugins._precision._notation import notation_differs
from semcache_plugins._records import StoredRecord

MARGIN = 0.08  # CacheSettings.agreement_margin's default
K = 16


@dataclass
class Stream:
    """Lookups against one warmed scope (or, for fow pairs, one scope per lookup)."""

    name: str
    queries: list[str]
    labels: list[Hashable | None]  # None: nothing stored may serve it
    design: np.ndarray
    sims: np.ndarray  # (lookups, K) nearest first
    idx: np.ndarray  # (lookups, K) warm row of each neighbour (-1: none)
    warm_texts: list[str]
    warm_answers: list[Hashable]
    should: np.ndarray  # the nearest warm row holds the right answer


def _topk(queries: np.ndarray, warm: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, warm.shape[0])
    sims = np.zeros((len(queries), k), np.float32)
    idx = np.zeros((len(queries), k), int)
    for s in range(0, len(queries), 1024):
        m = queries[s : s + 1024] @ warm.T
        part = np.argpartition(-m, k - 1, axis=1)[:, :k]
        part_sims = np.take_along_axis(m, part, 1)
        order = np.argsort(-part_sims, 1, kind="stable")
        idx[s : s + 1024] = np.take_along_axis(part, order, 1)
        sims[s : s + 1024] = np.take_along_axis(part_sims, order, 1)
    return sims, idx


def intent_stream(
    emb: ge.CachedEmbedder, name: str, data: Path, unwarmed: int | None = None
) -> Stream:
    split = {"banking77": ge.banking_split, "clinc150": ge.clinc_split}[name]
    warm, asked = split(data)
    wv = emb.corpus(f"{name}-warm", [t for t, _ in warm])
    sv = emb.corpus(f"{name}-stream", [t for t, _ in asked])
    keep = [
        i
        for i, (_, label) in enumerate(warm)
        if unwarmed is None or zlib.crc32(label.encode()) % unwarmed != 0
    ]
    warmed = {warm[i][1] for i in keep}
    sims, idx = _topk(sv, wv[keep], K)
    answers = [warm[i][1] for i in keep]
    labels = [label if label in warmed else None for _, label in asked]
    should = np.array([answers[row[0]] == lab for row, lab in zip(idx, labels, strict=True)])
    suffix = f", 1/{unwarmed} intents unwarmed" if unwarmed else ""
    return Stream(
        {"banking77": "Banking77", "clinc150": "CLINC150"}[name] + suffix,
        [t for t, _ in asked],
        labels,
        np.array([ge._half(t) for t, _ in asked]),
        sims,
        idx,
        [warm[i][0] for i in keep],
        answers,
        should,
    )


def fow_pair_stream(emb: ge.CachedEmbedder, data: Path) -> Stream:
    """One scope per pair holding its cached side: candidate 0 is the only neighbour."""
    lookups = ge.fow_pairs(data, emb, "different")
    n = len(lookups)
    sims = np.full((n, 1), 0.0, np.float32)
    sims[:, 0] = [lk.similarity for lk in lookups]
    return Stream(
        "fow-cache pairs (one entry per scope)",
        [lk.query for lk in lookups],
        ["same" if lk.should_hit else None for lk in lookups],
        np.array([lk.design for lk in lookups]),
        sims,
        np.arange(n)[:, None],
        [lk.cached for lk in lookups],
        ["same"] * n,
        np.array([lk.should_hit for lk in lookups]),
    )


def fow_scope_stream(emb: ge.CachedEmbedder, data: Path) -> Stream:
    """Every cached side in one scope, unique answers (``quality_streams.pair_stream``)."""
    stream = qs.pair_stream("fow", ge.fow_pairs(data, emb, "different"), emb, ("fow-a", "fow-b"))
    warm = np.stack([e.vector for e in stream.entries])
    queries = np.stack([p.vector for p in stream.probes])
    sims, idx = _topk(queries, warm, K)
    answers: list[Hashable] = [e.response for e in stream.entries]
    return Stream(
        "fow-cache, one scope (600 distinct answers)",
        [p.query for p in stream.probes],
        [p.correct for p in stream.probes],  # a set of ids: see _correct
        np.array([ge._half(p.query) for p in stream.probes]),
        sims,
        idx,
        [e.prompt for e in stream.entries],
        answers,
        np.array([p.should_hit for p in stream.probes]),
    )


def _correct(label: Hashable | None, answer: Hashable) -> bool:
    if isinstance(label, frozenset):
        return answer in label
    return label is not None and answer == label


class Replay:
    """``lookup_flow``'s candidate decisions for one stream (guard verdicts memoized)."""

    def __init__(self, stream: Stream, embed: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.stream = stream
        self.embed = embed
        self.records = [
            StoredRecord(str(i), "scope", text, answer, 0.0, False)
            for i, (text, answer) in enumerate(
                zip(stream.warm_texts, stream.warm_answers, strict=True)
            )
        ]
        self.guarded: dict[tuple[int, int], bool] = {}

    def _guard(self, row: int, j: int, similarity: float) -> bool:
        key = (row, j)
        if key not in self.guarded:
            query = self.stream.queries[row]
            cached = self.records[j].prompt
            self.guarded[key] = (
                not notation_differs(query, cached)
                and check_guards(
                    normalize_text(query),
                    normalize_text(cached),
                    similarity,
                    embed=self.embed,
                    threshold=DEFAULT_SIMILARITY_THRESHOLD,
                ).allowed
            )
        return self.guarded[key]

    def served(self, policy: ConsensusPolicy | None, guards: bool = True) -> list[Hashable | None]:
        """The answer served per lookup (None: a miss)."""
        k = policy.neighbours if policy else 4
        out: list[Hashable | None] = []
        for row in range(len(self.stream.queries)):
            sims, idx = self.stream.sims[row, :k], self.stream.idx[row, :k]
            rows = [
                {"id": int(j), "vector_distance": 1.0 - float(s)}
                for s, j in zip(sims, idx, strict=True)
            ]
            close = close_rows(
                rows,
                threshold=DEFAULT_SIMILARITY_THRESHOLD,
                agreement_margin=MARGIN,
                guards=True,
                policy=policy,
            )
            candidates = [(s, self.records[int(j)]) for s, j in close]
            order = serving_order(
                candidates,
                threshold=DEFAULT_SIMILARITY_THRESHOLD,
                agreement_margin=MARGIN,
                guards=True,
                policy=policy,
            )
            answer = None
            for i in order:
                similarity, record = candidates[i]
                if not guards or self._guard(row, int(record.entry_id), similarity):
                    answer = record.response
                    break
            out.append(answer)
        return out


@dataclass(frozen=True)
class Figures:
    lookups: int
    should: int
    served: int
    correct: int

    @property
    def hit_rate(self) -> float:
        return self.correct / max(self.should, 1)

    @property
    def precision(self) -> float:
        return self.correct / self.served if self.served else 1.0

    def row(self) -> str:
        return (
            f"{self.lookups} | {self.hit_rate:.3f} | {self.precision:.4f} | "
            f"{self.served / max(self.lookups, 1):.3f} | {self.served} | "
            f"{self.served - self.correct} |"
        )


def figures(stream: Stream, served: Sequence[Hashable | None], keep: np.ndarray) -> Figures:
    rows = np.flatnonzero(keep)
    hits = [i for i in rows if served[i] is not None]
    correct = sum(_correct(stream.labels[i], served[i]) for i in hits)
    return Figures(len(rows), int(stream.should[rows].sum()), len(hits), correct)


HALVES = (("design", True), ("held-out", False))


def report(streams: list[Stream], replays: list[Replay], policy: ConsensusPolicy) -> None:
    print("| stream | half | system | lookups | hit rate | precision | served share | served "
          "| wrong |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for stream, replay in zip(streams, replays, strict=True):
        systems = {"rules today": replay.served(None), "consensus": replay.served(policy)}
        for half, design in HALVES:
            keep = stream.design == design
            for system, served in systems.items():
                print(f"| {stream.name} | {half} | {system} | "
                      f"{figures(stream, served, keep).row()}")  # fmt: skip


def sweep(streams: list[Stream], replays: list[Replay], base: ConsensusPolicy) -> None:
    """Design halves, no guards (they only take hits away): one constant varied at a time."""
    grid = {
        "reach": (0.10, 0.07, 0.05, 0.03, 0.0),
        "gap": (0.03, 0.05, 0.08, 0.10),
        "share": (0.0, 0.8, 0.9, 0.95),
        "quorum": (2, 3, 4, 6),
        "quorum_reach": (0.25, 0.20, 0.15, 0.10),
        "thin_gap": (0.08, 0.15, 0.25),
        "floor": (0.5, 0.6, 0.7),
        "wide_gap": (0.08, 0.10, 0.12, 0.15),
        "wide_share": (0.75, 0.80, 0.85, 0.90),
    }
    natural = [(s, r) for s, r in zip(streams, replays, strict=True) if "fow" not in s.name]
    print("| varied | value | " + " | ".join(f"{s.name}: hit rate / precision" for s, _ in natural)
          + " |")  # fmt: skip
    print("|---|---|" + "---|" * len(natural))
    for name, values in grid.items():
        for value in values:
            policy = replace(base, **{name: value})
            cells = []
            for stream, replay in natural:
                f = figures(stream, replay.served(policy, guards=False), stream.design)
                cells.append(f"{f.hit_rate:.3f} / {f.precision:.4f}")
            mark = " (default)" if getattr(base, name) == value else ""
            print(f"| {name} | {value}{mark} | " + " | ".join(cells) + " |")
    today = [figures(s, r.served(None, guards=False), s.design) for s, r in natural]
    print("| rules today (k=4, no guards) | | "
          + " | ".join(f"{f.hit_rate:.3f} / {f.precision:.4f}" for f in today) + " |")  # fmt: skip


def core_replay(stream_name: str, data: Path, emb: ge.CachedEmbedder, limit: int | None) -> None:
    """A stream through ``CacheCore`` (real Redis, real KNN, real guards): its held-out half.
    CLINC150's oos questions have no warmed answer: any hit on them is wrong."""
    from bench.core_latency import MODEL, PARAMS, ask, drop_cache, store_seeded
    from semcache_plugins import CacheCore
    from semcache_plugins._precision._answer import shown_answers
    from semcache_plugins.embedded import EmbeddedRedis

    name = {"Banking77": "banking77", "CLINC150": "clinc150"}[stream_name]
    split = {"banking77": ge.banking_split, "clinc150": ge.clinc_split}[name]
    warm, asked = split(data)
    wv = emb.corpus(f"{name}-warm", [t for t, _ in warm])
    sv = emb.corpus(f"{name}-stream", [t for t, _ in asked])
    held = [i for i, (t, _) in enumerate(asked) if not ge._half(t)][:limit]
    embedder = qs.SeededEmbedder()
    embedder.seed([t for t, _ in warm], wv)
    embedder.seed([asked[i][0] for i in held], sv[held])
    with EmbeddedRedis() as server:
        cores = {
            label: CacheCore(
                redis_url=server.url,
                index_prefix="bench-consensus",
                embedder=embedder,
                socket_timeout=5.0,  # a loaded shared machine: warming 512 rows may outlast 0.5 s
                lookup_timeout=5.0,  # ... and a lookup cut short would count as a miss
                **opts,
            )
            for label, opts in (
                ("rules today", {"consensus": False}),
                ("consensus", {"consensus": True}),
            )
        }
        today = cores["rules today"]
        started = time.perf_counter()
        store_seeded(
            today, [(t, f"answer for {label}", v) for (t, label), v in zip(warm, wv, strict=True)]
        )
        print(f"warmed {len(warm)} entries in {time.perf_counter() - started:.0f}s")
        served = dict.fromkeys(cores, 0)
        correct = dict.fromkeys(cores, 0)
        took: dict[str, list[float]] = {label: [] for label in cores}
        for n, i in enumerate(held):  # interleaved, the first core alternating
            text, intent = asked[i]
            for label in list(cores)[:: 1 if n % 2 else -1]:
                started = time.perf_counter()
                hit = cores[label].lookup(ask(text), MODEL, PARAMS)
                took[label].append(1000 * (time.perf_counter() - started))
                if hit is not None and hit.tier == "semantic":
                    shown = [a.content for a in shown_answers(hit.response) or []]
                    served[label] += 1
                    correct[label] += shown == [f"answer for {intent}"]
        print("| system (CacheCore, real Redis) | lookups | served | correct | wrong | precision "
              "| lookup p50 ms | p90 ms |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label in cores:
            p50, p90 = np.percentile(took[label], [50, 90])
            hits, right = served[label], correct[label]
            print(f"| {label} | {len(held)} | {hits} | {right} | {hits - right} | "
                  f"{right / max(hits, 1):.4f} | {p50:.2f} | {p90:.2f} |")  # fmt: skip
        drop_cache(today)
        for core in cores.values():
            core.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ge.DATASETS)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "guards_cache")
    parser.add_argument("--sweep", action="store_true", help="print the design-half sweep")
    parser.add_argument("--core", action="store_true", help="replay through CacheCore too")
    parser.add_argument("--core-limit", type=int, default=None)
    parser.add_argument("--core-stream", choices=("Banking77", "CLINC150"), default="Banking77")
    parser.add_argument("--no-report", action="store_true", help="only the CacheCore replay")
    args = parser.parse_args(argv)
    emb = ge.CachedEmbedder(args.cache)
    policy = ConsensusPolicy()
    print(f"consensus policy: {policy}; threshold {DEFAULT_SIMILARITY_THRESHOLD}, margin {MARGIN}")
    streams = [
        intent_stream(emb, "banking77", args.data),
        intent_stream(emb, "banking77", args.data, unwarmed=8),
        intent_stream(emb, "clinc150", args.data),
        fow_pair_stream(emb, args.data),
        fow_scope_stream(emb, args.data),
    ]
    replays = [Replay(stream, emb) for stream in streams]
    if args.sweep:
        sweep(streams, replays, policy)
    if not args.no_report:
        report(streams, replays, policy)
    if args.core:
        core_replay(args.core_stream, args.data, emb, args.core_limit)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
