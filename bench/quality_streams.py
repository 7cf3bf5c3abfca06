"""Cache streams for ``peers_quality``: what is stored, what is asked, and which answers are right.

Built on ``guards_eval``'s loaders and its disk-cached corpus embeddings, so the labels (which
lookups must not hit) are exactly the calibration's. Also scores served answers: a system's
``Run`` holds its answers through ``check()`` and its ``nearest()`` neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import guards_eval as ge
from bench.peers import Entry
from semcache_plugins import Embedder
from semcache_plugins._cache._scope import normalize_text

#: Curve thresholds (cosine similarity), 0.70 .. 0.99.
SWEEP = [round(0.70 + 0.01 * i, 2) for i in range(30)]


@dataclass(frozen=True)
class Probe:
    """One lookup: the query, its vector, the answers that may serve it, and its label."""

    query: str
    vector: np.ndarray
    correct: frozenset[str]
    should_hit: bool  # False: a must-not lookup (guards_eval's negatives)


@dataclass
class Stream:
    """A cache's contents and the lookups streamed against it."""

    name: str
    protocol: str
    entries: list[Entry]
    probes: list[Probe]

    def texts_and_vectors(self) -> tuple[list[str], np.ndarray]:
        """Every cached text and query with its vector (to seed the embedders' memos)."""
        texts = [e.prompt for e in self.entries] + [p.query for p in self.probes]
        vectors = [e.vector for e in self.entries] + [p.vector for p in self.probes]
        return texts, np.stack(vectors)


@dataclass(frozen=True)
class Rates:
    """Hit rate, precision and false-hit rate of one list of served answers."""

    hits: int
    correct: int
    false_must_not: int  # false hits on must-not lookups (the false-hit rate's numerator)
    wrong_should: int  # wrong answers served to should-hit lookups
    hit_rate: float
    precision: float  # nan when nothing was served
    false_rate: float


class SeededEmbedder(Embedder):
    """The real Embedder behind a memo of precomputed vectors; counts the texts it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.memo: dict[str, np.ndarray] = {}
        self.embedded = 0

    def seed(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Remember vectors under each text and its normalized form (what our core embeds)."""
        for text, vector in zip(texts, np.asarray(vectors, dtype=np.float32), strict=True):
            self.memo[text] = self.memo[normalize_text(text)] = vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Memoized rows; texts not seeded go through the model (and are remembered)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single str")
        batch = list(texts)
        missing = [t for t in dict.fromkeys(batch) if t not in self.memo]
        if missing:
            self.embedded += len(missing)
            self.memo.update(zip(missing, super().embed(missing), strict=True))
        if not batch:
            return super().embed(batch)
        return np.stack([self.memo[t] for t in batch])


def _spread(probes: list[Probe], limit: int | None) -> list[Probe]:
    """At most ``limit`` probes, evenly spaced over the stream (keeps its mix of labels)."""
    if limit is None or limit >= len(probes):
        return probes
    picks = np.unique(np.linspace(0, len(probes) - 1, limit).round().astype(int))
    return [probes[int(i)] for i in picks]


def intent_stream(
    data: Path, emb: ge.CachedEmbedder, name: str, limit: int | None = None
) -> Stream:
    """Banking77 or CLINC150: warm with train (answer = label), look up test (+ oos_test)."""
    split, loader, never = {
        "banking77": (ge.banking_split, ge.banking, None),
        "clinc150": (ge.clinc_split, ge.clinc, "oos"),
    }[name]
    warm, stream = split(data)
    lookups = loader(data, emb)  # same corpora, so the vectors below come from its disk cache
    warm_vectors = emb.corpus(f"{name}-warm", [t for t, _ in warm])
    stream_vectors = emb.corpus(f"{name}-stream", [t for t, _ in stream])
    entries = [Entry(t, label, v) for (t, label), v in zip(warm, warm_vectors, strict=True)]
    probes = [
        Probe(t, v, frozenset() if label == never else frozenset([label]), lk.should_hit)
        for (t, label), v, lk in zip(stream, stream_vectors, lookups, strict=True)
    ]
    protocol = (
        f"cache = {len(entries)} train rows (answer = intent label); lookups = test"
        + (" + oos_test (every hit on oos is false)" if never else "")
        + "; correct hit = same label; must-not = nearest train row has another label"
        + (" or oos" if never else "")
    )
    return Stream(name, protocol, entries, _spread(probes, limit))


def pair_stream(
    name: str,
    lookups: list[ge.Lookup],
    emb: ge.CachedEmbedder,
    corpora: tuple[str, str],
    limit: int | None = None,
) -> Stream:
    """Pairs: cache every distinct cached side (answer = its id), look up each distinct query.

    A hit is correct iff its id is that of a cached side labelled same-answer with the query, or
    of a cached text identical to the query. As for the intent sets, a lookup is must-not when
    its nearest cached entry (exact cosine over the whole cache) is not such an entry.
    """
    vq = emb.corpus(corpora[0], [lk.query for lk in lookups])
    vc = emb.corpus(corpora[1], [lk.cached for lk in lookups])
    ids: dict[str, str] = {}
    entries: list[Entry] = []
    for lk, vector in zip(lookups, vc, strict=True):
        if lk.cached not in ids:
            ids[lk.cached] = f"{name}#{len(ids)}"
            entries.append(Entry(lk.cached, ids[lk.cached], vector))
    groups: dict[str, tuple[set[str], np.ndarray]] = {}
    for lk, vector in zip(lookups, vq, strict=True):
        correct, _ = groups.setdefault(lk.query, (set(), vector))
        if lk.should_hit:
            correct.add(ids[lk.cached])
    queries = np.stack([vector for _, vector in groups.values()])
    cached = np.stack([e.vector for e in entries])
    nearest = np.concatenate(
        [(queries[i : i + 1024] @ cached.T).argmax(axis=1) for i in range(0, len(queries), 1024)]
    )
    probes = []
    for (query, (correct, vector)), j in zip(groups.items(), nearest, strict=True):
        answers = frozenset(correct | ({ids[query]} if query in ids else set()))
        probes.append(Probe(query, vector, answers, entries[int(j)].response in answers))
    identical = sum(q in ids for q in groups)
    labelled = sum(bool(p.correct) for p in probes)
    protocol = (
        f"cache = {len(entries)} distinct cached sides (answer = unique id); lookups = "
        f"{len(probes)} distinct query sides of {len(lookups)} pairs; correct hit = an entry "
        f"labelled same-answer with the query, or identical to it ({identical} queries are "
        f"cached verbatim); must-not = the nearest cached entry is not such an entry "
        f"({labelled} queries have a correct entry, {labelled - sum(p.should_hit for p in probes)}"
        " of them not as their nearest)"
    )
    return Stream(name, protocol, entries, _spread(probes, limit))


def load(data: Path, emb: ge.CachedEmbedder, name: str, limit: int | None, qqp_rows: int) -> Stream:
    """One of ``fow``, ``banking77``, ``clinc150``, ``qqp`` (fow: ambiguous=different).

    Data sets missing under ``data`` are read from the repository's ``datasets/`` folder."""
    folder = {"fow": "fow_cache", "qqp": "qqp_gptcache"}.get(name, name)
    data = data if (data / folder).exists() or name == "qqp" else ge.DATASETS
    if name == "fow":
        pairs = ge.fow_pairs(data, emb, "different")
        return pair_stream("fow", pairs, emb, ("fow-a", "fow-b"), limit)
    if name == "qqp":
        pairs = ge.qqp(data, emb, qqp_rows)
        return pair_stream("qqp", pairs, emb, ("qqp-a", "qqp-b"), limit)
    return intent_stream(data, emb, name, limit)


def rates(probes: Sequence[Probe], answers: Sequence[str | None]) -> Rates:
    """Score served answers (None = miss) against the probes' correct answers and labels."""
    hits = correct = false_must_not = wrong_should = must_not = 0
    for probe, answer in zip(probes, answers, strict=True):
        must_not += not probe.should_hit
        if answer is None:
            continue
        hits += 1
        right = answer in probe.correct
        correct += right
        false_must_not += not right and not probe.should_hit
        wrong_should += not right and probe.should_hit
    return Rates(
        hits,
        correct,
        false_must_not,
        wrong_should,
        hits / max(len(probes), 1),
        correct / hits if hits else math.nan,
        false_must_not / must_not if must_not else math.nan,
    )


def at_threshold(near: Sequence[tuple[str | None, float]], threshold: float) -> list[str | None]:
    """What a cache serves at ``threshold``, given what it serves with the threshold wide open."""
    return [answer if sim >= threshold else None for answer, sim in near]


def at_hit_rate(
    curve: Sequence[tuple[float, Rates]], hit_rate: float
) -> tuple[float, float] | None:
    """(false-hit rate, threshold) interpolated along a curve at ``hit_rate``; None if never."""
    points = sorted((r.hit_rate, r.false_rate, t) for t, r in curve)
    xs = [x for x, _, _ in points]
    if not points or not xs[0] - 1e-9 <= hit_rate <= xs[-1] + 1e-9:
        return None
    false_rate = float(np.interp(hit_rate, xs, [f for _, f, _ in points]))
    return false_rate, float(np.interp(hit_rate, xs, [t for _, _, t in points]))


@dataclass
class Run:
    """One system on one stream: its answers through check() and its nearest neighbours."""

    key: str
    name: str
    default: float
    notes: str
    served: list[str | None]
    near: list[tuple[str | None, float]]
    measured: Rates = field(init=False)
    curve: list[tuple[float, Rates]] = field(init=False)

    def score(self, stream: Stream) -> None:
        """Measured rates (check()) and the curve over SWEEP (nearest())."""
        self.measured = rates(stream.probes, self.served)
        self.curve = [(t, rates(stream.probes, at_threshold(self.near, t))) for t in SWEEP]

    def at(self, stream: Stream, threshold: float) -> Rates:
        """The nearest()-based rates at one threshold."""
        return rates(stream.probes, at_threshold(self.near, threshold))


def same_curves(runs: list[Run]) -> list[list[Run]]:
    """Runs grouped by identical curves (same nearest neighbours, no guards: one line)."""
    groups: dict[tuple[tuple[float, float], ...], list[Run]] = {}
    for run in runs:
        points = tuple((round(r.hit_rate, 9), round(r.precision, 9)) for _, r in run.curve)
        groups.setdefault(points, []).append(run)
    return list(groups.values())
