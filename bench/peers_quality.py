"""Hit quality of every semantic cache in the peer benchmark on real cache streams.

``python -m bench.peers_quality --redis-url URL [--limit N] [--peers redisvl,ours] [--plot PNG]``

Each system gets the same cache contents (filled with precomputed vectors) and the same lookups:
CLINC150 and Banking77 (warm with train, answer = intent label, look up test), Quora pairs (only
with ``--quora`` or ``../shared``, see ``bench.data``) and fow-cache traps (cache the cached sides,
answer = a unique id, look up the other sides); see ``quality_streams``. It prints hit rate,
precision and false-hit rate at each system's default threshold through its real ``check()``, and
draws precision vs hit rate curves from ``nearest()``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import guards_eval as ge
from bench.data import DATASETS as SHIPPED
from bench.data import add_quora_arguments, quora_from, quora_parent
from bench.peers import PEER_CLASSES, SharedEmbedder, make_peer
from bench.quality_streams import (
    SWEEP,
    Run,
    SeededEmbedder,
    Stream,
    at_hit_rate,
    at_threshold,
    load,
    same_curves,
)

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("fow", "banking77", "clinc150", "qqp")
TITLES = {
    "fow": "fow-cache traps (600 pairs, ambiguous=different)",
    "banking77": "Banking77",
    "clinc150": "CLINC150 (+ out-of-scope)",
    "qqp": "Quora question pairs (qqp_gptcache)",
}
EQUAL_HIT = ("fow", "banking77")  # where ours/RedisVL false-hit ratio at equal hit rate is judged
GOAL_RATIO = 0.5


def systems(keys: Sequence[str]) -> list[tuple[str, str, dict[str, object]]]:
    """(label, peer key, options): ``ours`` runs twice, with guards and without."""
    out: list[tuple[str, str, dict[str, object]]] = []
    for key in keys:
        out.append((key, key, {}))
        if key == "ours":
            out.append(("ours-noguards", "ours", {"guards": False}))
    return out


def available(keys: Sequence[str], notes: list[str]) -> list[str]:
    """The keys whose module imports; a note for each that does not."""
    found = []
    for key in keys:
        module = PEER_CLASSES[key][0]
        try:
            importlib.import_module(f"bench.peers.{module}")
        except Exception as exc:  # a missing module or a missing dependency
            notes.append(f"skipped `{key}`: bench/peers/{module}.py not importable ({exc})")
            continue
        found.append(key)
    return found


def drive(
    label: str,
    key: str,
    options: dict[str, object],
    stream: Stream,
    url: str,
    emb: ge.CachedEmbedder,
    notes: list[str],
) -> Run | None:
    """Fill a fresh instance, check() and nearest() every probe; None (and a note) on failure."""
    shared = SharedEmbedder(emb.embedder, memo=True, stock=False)  # one model's vectors
    shared.remember(*stream.texts_and_vectors())
    started = time.perf_counter()
    try:
        peer = make_peer(key, url, shared, **options)
    except Exception as exc:
        notes.append(f"skipped `{label}` on {stream.name}: construction failed ({exc!r})")
        return None
    try:
        peer.fill(stream.entries)
        served = [peer.check(p.query) for p in stream.probes]
        # ours: nearest() is what it serves at a wide-open threshold, guards included
        near = [peer.nearest(p.query) for p in stream.probes]
        run = Run(label, peer.name, peer.default_similarity, peer.notes, served, near)
        run.score(stream)
        print(
            f"  {stream.name}: {label} done in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
        return run
    except Exception as exc:
        notes.append(f"skipped `{label}` on {stream.name}: it failed ({exc!r})")
        return None
    finally:
        try:
            peer.close()
        except Exception as exc:
            notes.append(f"`{label}` on {stream.name}: close() failed ({exc!r})")


def pct(value: float) -> str:
    """A rate as a percentage, ``n/a`` when undefined."""
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def table(stream: Stream, runs: list[Run]) -> None:
    """One dataset: its protocol, one row per system at its default, and any curve mismatch."""
    must_not = sum(not p.should_hit for p in stream.probes)
    print(f"\n### {TITLES[stream.name]}\n")
    print(f"{stream.protocol}. {len(stream.probes)} lookups, {must_not} must-not.\n")
    print(
        "| system | threshold (cos) | hits | hit rate | precision | false-hit rate "
        "| false hits: must-not / wrong entry |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        m = run.measured
        print(
            f"| {run.name} | {run.default:.2f} | {m.hits} | {pct(m.hit_rate)} | "
            f"{'n/a' if math.isnan(m.precision) else f'{m.precision:.3f}'} | "
            f"{pct(m.false_rate)} | {m.false_must_not} / {m.wrong_should} |"
        )
    for group in same_curves(runs):
        if len(group) > 1:
            print(
                f"\n- identical nearest()-based curves (same model and vectors, no guards; only "
                f"the default threshold differs): {', '.join(r.name for r in group)}"
            )
    for run in runs:
        disagree(stream, run)


def disagree(stream: Stream, run: Run) -> None:
    """Say where check() at the default differs from the nearest()-based curve at the default."""
    curve = at_threshold(run.near, run.default)
    missed = sum(s is None and c is not None for s, c in zip(run.served, curve, strict=True))
    extra = sum(s is not None and c is None for s, c in zip(run.served, curve, strict=True))
    other = sum(
        s is not None and c is not None and s != c for s, c in zip(run.served, curve, strict=True)
    )
    if missed or extra or other:
        print(
            f"\n- {run.name}: check() differs from its nearest()-based curve at "
            f"{run.default:.2f}: {missed} misses where nearest() found an answer within the "
            f"threshold (the thresholded search missed a neighbour), {extra} hits nearest() "
            f"does not serve, {other} other answers"
        )


def equal_hit_rate(results: dict[str, list[Run]]) -> None:
    """At ours-with-guards' default hit rate: each system's false-hit rate along its curve."""
    print("\n### False-hit rate at equal hit rate\n")
    print(
        "Ours with guards at its default threshold (measured through check()); every other system "
        "at the same hit rate, its false-hit rate linearly interpolated along its nearest()-based "
        f"curve (thresholds {SWEEP[0]:.2f}..{SWEEP[-1]:.2f}). Goal: ours / RedisVL <= "
        f"{GOAL_RATIO}.\n"
    )
    for name in EQUAL_HIT:
        runs = {run.key: run for run in results.get(name, [])}
        if name not in results:
            continue
        if "ours" not in runs or "redisvl" not in runs:
            print(f"- {TITLES[name]}: not judged (needs `ours` and `redisvl`)")
            continue
        ours = runs["ours"].measured
        parts = []
        ratio = None
        for group in same_curves([run for key, run in runs.items() if key != "ours"]):
            found = at_hit_rate(group[0].curve, ours.hit_rate)
            who = " = ".join(run.name for run in group)
            if found is None:
                parts.append(f"{who}: hit rate not reached on its curve")
                continue
            other, threshold = found
            share = ours.false_rate / other if other else math.inf if ours.false_rate else math.nan
            if any(run.key == "redisvl" for run in group):
                ratio = share
            parts.append(f"{who} {pct(other)} at cos ~{threshold:.3f} (ours / it = {share:.2f})")
        verdict = (
            "cannot be judged (no false hits on either side, or no curve point)"
            if ratio is None or math.isnan(ratio)
            else ("MET" if ratio <= GOAL_RATIO else "NOT met") + f" (ratio {ratio:.2f})"
        )
        print(
            f"- {TITLES[name]}: ours hit rate {pct(ours.hit_rate)}, false-hit rate "
            f"{pct(ours.false_rate)}; at that hit rate: {'; '.join(parts)}. "
            f"Goal ours / RedisVL <= {GOAL_RATIO}: **{verdict}**"
        )


def plot(streams: dict[str, Stream], results: dict[str, list[Run]], path: Path) -> None:
    """Precision vs hit rate, one subplot per dataset, one line per curve, defaults marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = [n for n in DATASETS if n in results]
    cols = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols + 1, 4.8 * rows + 1), squeeze=False)
    runs_by_key = {run.key: run for n in names for run in results[n]}
    colors = {key: plt.get_cmap("tab10")(i) for i, key in enumerate(runs_by_key)}
    styles = ["-", "--", ":", "-."]
    lines: dict[str, Line2D] = {}
    for ax, name in zip(axes.flat, names, strict=False):
        for i, group in enumerate(same_curves(results[name])):
            run = group[0]
            label = (
                run.name if len(group) == 1 else "same curve: " + ", ".join(r.key for r in group)
            )
            keep = [r for _, r in run.curve if not math.isnan(r.precision)]
            color = colors[run.key] if len(group) == 1 else "0.45"
            (line,) = ax.plot(
                [100 * r.hit_rate for r in keep],
                [r.precision for r in keep],
                styles[i % len(styles)] if len(group) == 1 else "-",
                color=color,
                linewidth=2.4 if len(group) > 1 else 1.6,
            )
            lines.setdefault(label, line)
        for i, run in enumerate(results[name]):  # shrinking sizes: equal points stay visible
            point, m, size = run.at(streams[name], run.default), run.measured, 13 - 1.6 * i
            ax.plot(100 * point.hit_rate, point.precision, "o", color=colors[run.key], ms=size)
            ax.plot(100 * m.hit_rate, m.precision, "x", color="black", ms=7, mew=1.5)
        ax.set_title(TITLES[name], fontsize=10)
        ax.set_xlabel("hit rate (% of lookups)")
        ax.set_ylabel("precision (correct hits / hits)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    marks = [
        Line2D([], [], marker="o", linestyle="", color=colors[key], label=f"{run.name} default")
        for key, run in runs_by_key.items()
    ]
    handles = [*marks, *lines.values()]
    labels = [str(h.get_label()) for h in marks] + list(lines)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8.5)
    fig.suptitle(
        f"Precision vs hit rate over thresholds {SWEEP[0]:.2f}..{SWEEP[-1]:.2f} (nearest())\n"
        "o = curve at the system's default threshold (equal points nest), x = measured check()",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.1 + 0.03 * (rows == 1), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def intro(limit: int | None, qqp_rows: int) -> None:
    """The section header, how the systems are driven, and the definitions."""
    print("## Peer hit quality\n")
    print(
        "Every system is driven through its own public API on one Redis server with the same "
        "MiniLM ONNX model, and gets the same cache contents and lookups. Cache contents are "
        "written with `fill()` and vectors computed once (guards_eval's disk-cached corpus "
        "embeddings); those vectors, and the queries', seed `SharedEmbedder(memo=True)` (and the "
        "Embedder under ours), so this run does not re-embed them: `check()` still runs each "
        "system's real lookup (its search query and threshold; ours' exact tier and guards).\n"
    )
    print(
        "- hit rate = hits / lookups; precision = correct hits / hits; false-hit rate = false "
        "hits on must-not lookups / must-not lookups. A must-not lookup is one whose nearest "
        "cached entry (exact cosine over the whole cache) must not answer it: guards_eval's "
        "false% (its candidate is that nearest entry, or the pair's cached side). A wrong answer "
        "served to another lookup (only a search that skips the nearest can) lowers precision "
        "and is counted apart (wrong entry).\n"
        "- threshold: each system's documented default, as cosine similarity. Ours runs with "
        "guards (its default) and with `guards=False`.\n"
        "- curves: `nearest()` per lookup (what the system serves with its threshold wide open, "
        "and that answer's similarity), swept over thresholds; for ours that includes the guards "
        "and the neighbour-agreement check, which do not depend on the threshold. Where "
        "`check()` disagrees with that curve it is listed below its table."
        "\n- the systems differ in threshold semantics, in search (RedisVL: VECTOR_RANGE query; "
        "ours: KNN + threshold) and ours adds an exact tier and guards; the model is the same.\n"
        f"- size: {'all lookups' if limit is None else f'at most {limit} lookups per dataset'}"
        f"; Quora: first {qqp_rows} rows; fow-cache ambiguous rows as guards_eval's default "
        "(ambiguous=different: scored by their same_answer label)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--limit", type=int, default=None, help="max lookups per dataset")
    parser.add_argument("--peers", default=",".join(PEER_CLASSES), help="comma-separated keys")
    parser.add_argument("--plot", type=Path, default=RESULTS / "precision_vs_hit_rate.png")
    parser.add_argument(
        "--datasets", default=None, help="comma-separated (default: all; qqp only with Quora)"
    )
    parser.add_argument("--qqp-rows", type=int, default=5000)
    parser.add_argument("--data", type=Path, default=SHIPPED, help="the shipped datasets")
    add_quora_arguments(parser)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "guards_cache")
    args = parser.parse_args(argv)
    quora = quora_from(args)
    keys = [k.strip() for k in args.peers.split(",") if k.strip()]
    default = [n for n in DATASETS if n != "qqp" or quora is not None]
    names = [n.strip() for n in args.datasets.split(",") if n.strip()] if args.datasets else default
    for bad in [k for k in keys if k not in PEER_CLASSES] + [n for n in names if n not in TITLES]:
        parser.error(f"unknown peer or dataset {bad!r}")
    if "qqp" in names and quora is None:
        parser.error("dataset qqp needs the Quora pairs: --quora PATH")
    seeded = SeededEmbedder()
    emb = ge.CachedEmbedder(args.cache)
    emb.embedder = seeded  # one model for the corpora, the peers and the guard checks
    notes: list[str] = []
    keys = available(keys, notes)
    intro(args.limit, args.qqp_rows)
    streams: dict[str, Stream] = {}
    results: dict[str, list[Run]] = {}
    described: dict[str, str] = {}
    live = 0
    for name in names:
        started = time.perf_counter()
        data = quora_parent(quora) if name == "qqp" and quora is not None else args.data
        stream = streams[name] = load(data, emb, name, args.limit, args.qqp_rows)
        seeded.seed(*stream.texts_and_vectors())
        before = seeded.embedded
        runs = [
            run
            for label, key, options in systems(keys)
            if (run := drive(label, key, options, stream, args.redis_url, emb, notes))
        ]
        described.update({run.name: f"{run.default:.2f}; {run.notes}" for run in runs})
        results[name] = runs
        table(stream, runs)
        live += seeded.embedded - before
        seeded.memo.clear()
        print(f"  {name}: {time.perf_counter() - started:.0f}s", file=sys.stderr)
    equal_hit_rate(results)
    print("\n### Systems and notes\n")
    for name, text in described.items():
        print(f"- {name}: default {text}")
    for note in notes:
        print(f"- {note}")
    print(f"- texts the model embedded while the systems ran (not seeded; guard phrases): {live}")
    if results:
        plot(streams, results, args.plot)
        shown = Path(args.plot).resolve()
        with contextlib.suppress(ValueError):  # inside the checkout: say where in it
            shown = shown.relative_to(Path(__file__).resolve().parents[1])
        print(f"\nPlot: `{shown}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
