"""Where a warmed stream's should-hit lookups are refused by the consensus rule (design half).

Run ``python -m bench.consensus_misses`` (``--half held-out`` only to check, never to tune).
For Banking77 (``consensus_eval``'s stream: warm train, ask test), each should-hit lookup of
the half (its nearest warm question holds the right answer) is put in one class: served right,
served wrong, refused by the guards or the notation check on every candidate tried, or refused
by ``consensus_order`` and by which of its conditions (below the serve floor, the quorum's gap,
share or quorum reach, a thin neighbourhood's gap, a lone holder's margin). ``--quora`` also
checks that the default rule orders every Quora lookup (one scope, one answer per entry) as the
rule ``--against`` (an old ``_consensus.py``) does.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from bench import consensus_eval as ce
from bench import guards_eval as ge
from bench import quality_streams as qs
from semcache_plugins._precision._consensus import ConsensusPolicy, consensus_order
from semcache_plugins._precision._guards import DEFAULT_SIMILARITY_THRESHOLD as T


def refusal(nb: Sequence[tuple[float, Hashable]], p: ConsensusPolicy) -> str:
    """The condition of ``consensus_order`` that refused this neighbourhood."""
    close = [(s, a) for s, a in nb if s >= p.floor]
    if not close:
        return "nearest below the vote floor"
    best, answer = close[0]
    holders = [i for i, (_, a) in enumerate(close) if a == answer]
    others = [s for s, a in close if a != answer]
    gap = best - (max(others) if others else p.floor)
    if best < T - p.reach:
        return f"nearest below threshold - reach ({T - p.reach:.2f})"
    if len(holders) < p.quorum:
        if best < T:
            return "fewer than quorum holders, nearest below the threshold"
        return "lone holder: gap < margin" if len(holders) == 1 else "2-3 holders: gap < thin_gap"
    weights = [math.exp((s - 1.0) / p.temperature) for s, _ in close]
    share = sum(weights[i] for i in holders) / sum(weights)
    fails = [
        name
        for name, failed in (
            ("gap", gap < p.gap),
            ("share", share < p.share and not (gap >= p.wide_gap and share >= p.wide_share)),
            ("quorum reach", close[holders[p.quorum - 1]][0] < T - p.quorum_reach),
        )
        if failed
    ]
    return "quorum: " + " + ".join(fails)


def breakdown(stream: ce.Stream, replay: ce.Replay, design: bool) -> Counter[str]:
    policy = ConsensusPolicy()
    served = replay.served(policy)
    classes: Counter[str] = Counter()
    for row in np.flatnonzero((stream.design == design) & stream.should):
        nb = [(float(s), stream.warm_answers[int(j)]) for s, j in zip(stream.sims[row],
              stream.idx[row], strict=True)]  # fmt: skip
        if served[row] is not None:
            right = ce._correct(stream.labels[row], served[row])
            classes["served right" if right else "served wrong"] += 1
        elif consensus_order(nb, policy, T, ce.MARGIN):
            classes["guards / notation refused every candidate"] += 1
        else:
            classes[refusal(nb, policy)] += 1
    return classes


def quora_check(emb: ge.CachedEmbedder, against: Path) -> None:
    spec = importlib.util.spec_from_file_location("old_consensus", against)
    assert spec and spec.loader
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old  # dataclasses look their module up
    spec.loader.exec_module(old)
    stream = qs.pair_stream("qqp", ge.qqp(None, emb), emb, ("qqp-a", "qqp-b"))
    warm = np.stack([e.vector for e in stream.entries])
    sims, idx = ce._topk(np.stack([p.vector for p in stream.probes]), warm, ce.K)
    answers = [e.response for e in stream.entries]
    differ = 0
    for row in range(len(sims)):
        nb = [(float(s), answers[int(j)]) for s, j in zip(sims[row], idx[row], strict=True)]
        new = consensus_order(nb, ConsensusPolicy(), T, ce.MARGIN)
        differ += new != old.consensus_order(nb, old.ConsensusPolicy(), T, ce.MARGIN)
    print(f"Quora, one scope: {len(sims)} lookups over {len(set(answers))} answers; "
          f"orders differing from {against}: {differ}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ge.DATASETS)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "guards_cache")
    parser.add_argument("--half", choices=("design", "held-out"), default="design")
    parser.add_argument("--quora", action="store_true")
    parser.add_argument("--against", type=Path, help="an older _consensus.py (with --quora)")
    args = parser.parse_args(argv)
    emb = ge.CachedEmbedder(args.cache)
    stream = ce.intent_stream(emb, "banking77", args.data)
    classes = breakdown(stream, ce.Replay(stream, emb), args.half == "design")
    print(f"| Banking77 should-hit lookups, {args.half} half | count |\n|---|---:|")
    for name, count in classes.most_common():
        print(f"| {name} | {count} |")
    print(f"| total | {sum(classes.values())} |")
    if args.quora and args.against:
        quora_check(emb, args.against)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
