"""``python -m bench``: every benchmark section in one run, printed and written to bench/results.

The ``peers-*`` sections run RedisVL's SemanticCache, langchain-redis, LiteLLM's redis-semantic
cache and GPTCache beside ours on the same Redis and the same embedding model (``bench/peers``).

Uses ``--redis-url`` / ``$SEMCACHE_REDIS_URL`` / ``$REDIS_URL`` if given, else starts the embedded
Redis. ``--quick`` runs tiny sizes (the CI smoke test); the figures in results/latest.md come from
a full run on this machine.

Data: the repository's ``datasets/`` (shipped, with their licences). The Quora question pairs
(non-commercial, never shipped) are used only from ``--quora PATH`` or, by default, from
``../shared/datasets/qqp_gptcache`` beside the repository when it exists (CI); ``--no-quora``
runs on the shipped datasets alone (see ``bench.data``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench import core_latency, guards_eval, peers_e2e, peers_quality, peers_speed, soak
from bench.data import DATASETS, add_quora_arguments, quora_from, quora_parent
from semcache_plugins.embedded import EmbeddedRedis, resolve_redis_url

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = ("calibration", "latency", "soak", "peers-speed", "peers-quality", "peers-e2e")


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time one section (on stderr: not part of the results file)."""
    started = time.perf_counter()
    yield
    print(f"bench: {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr)


@contextlib.contextmanager
def redis_for(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


class Tee(io.TextIOBase):
    """Write to the terminal and keep a copy for the results file."""

    def __init__(self, stream: io.TextIOBase | object) -> None:
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)  # type: ignore[attr-defined]
        self.copy.write(text)
        return len(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--redis-url", default=resolve_redis_url())
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--out", type=Path, default=None, help="results file (markdown)")
    add_quora_arguments(parser)
    args = parser.parse_args(argv)
    quora = quora_from(args)
    data = ["--quora", str(quora)] if quora is not None else ["--no-quora"]
    out_path = args.out or RESULTS / ("quick.md" if args.quick else "latest.md")
    tee = Tee(sys.stdout)
    started = time.perf_counter()
    with contextlib.redirect_stdout(tee):  # type: ignore[type-var]
        print(f"# semcache-plugins benchmark ({'quick' if args.quick else 'full'} run)\n")
        print(
            f"machine: {platform.machine()}, Python {platform.python_version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        )
        if "calibration" in args.only:
            with stage("calibration"):
                print("## Calibration: hit rate, false-hit rate and precision per dataset\n")
                print("```")
                shipped = ["fow"] if args.quick else ["fow", "banking77", "clinc150"]
                guards_eval.main(["--data", str(DATASETS), "--only", *shipped])
                if quora is not None and not args.quick:
                    # a folder holding qqp_gptcache/: --qqp where guards_eval has it, else --data
                    where = "--qqp" if hasattr(guards_eval, "qqp_dir") else "--data"
                    guards_eval.main([where, str(quora_parent(quora)), "--only", "qqp"])
                print("```\n")
        if "latency" in args.only:
            with stage("latency"):
                sizes = "100,400" if args.quick else "1000,100000" if quora else "1000,30000"
                samples = "10" if args.quick else "300" if quora else "250"
                with redis_for(args.redis_url) as url:
                    print("```")
                    core_latency.main(
                        ["--redis-url", url, "--sizes", sizes, "--samples", samples, *data]
                    )
                    print("```\n")
        if "soak" in args.only:
            with stage("soak"):
                seconds, callers, window = ("6", "20", "3") if args.quick else ("300", "200", "30")
                with redis_for(args.redis_url) as url:
                    print("```")
                    soak.main(
                        [
                            "--redis-url",
                            url,
                            "--seconds",
                            seconds,
                            "--callers",
                            callers,
                            "--window",
                            window,
                            *data,
                        ]
                    )
                    print("```\n")
        if "peers-speed" in args.only:
            with stage("peers-speed"):
                speed = ["--sizes", "200", "--lookups", "15", "--samples", "6"]
                speed += ["--throughput-fill", "200"]
                if not args.quick:  # the full sizes; 36k shipped questions without Quora
                    speed = [] if quora else ["--sizes", "1000,10000,30000", "--samples", "250"]
                with redis_for(args.redis_url) as url:
                    peers_speed.main(["--redis-url", url, *speed, *data])
        if "peers-quality" in args.only:
            with stage("peers-quality"):
                plot = out_path.with_name(out_path.stem + "-precision_vs_hit_rate.png")
                # quick: fow-cache only (Banking77/CLINC150 embed 13k/20k texts on a cold cache)
                quality = ["--limit", "40", "--datasets", "fow"] if args.quick else []
                with redis_for(args.redis_url) as url:
                    peers_quality.main(["--redis-url", url, "--plot", str(plot), *quality, *data])
        if "peers-e2e" in args.only:
            with stage("peers-e2e"):
                e2e = ["--samples", "5"] if args.quick else []
                with redis_for(args.redis_url) as url:
                    peers_e2e.main(["--redis-url", url, *e2e, *data])
        print(f"_total run time {time.perf_counter() - started:.0f} s_")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(tee.copy.getvalue())
    print(f"wrote {out_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
