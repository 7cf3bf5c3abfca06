"""One query's and 16 queries' embedding under three ONNX Runtime sessions, interleaved.

fastembed's stock session (thread spinning on, 2 threads), ours (spinning off, 2 threads) and
spinning off with 1 thread; five rounds of 60 calls each, medians. Run it on an idle machine and
again with a core busy (``python3 -c "while True: pass" &``): the best choice depends on it.
``python -m bench.embed_sessions``
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.embed_speed import fastembed_session, p50, reopen
from semcache_plugins import Embedder


def _one_thread(options: Any) -> None:
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1


def main() -> None:
    stock = Embedder()
    stock.load()
    fastembed_session(stock)
    ours = Embedder()
    ours.load()
    single = Embedder()
    single.load()
    reopen(single)(_one_thread)
    sessions = {
        "stock (spinning, 2)": stock,
        "ours (no spinning, 2)": ours,
        "no spinning, 1": single,
    }
    for batch in (1, 16):
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(5):
            for name, embedder in sessions.items():
                times[name].append(p50(embedder, 60, batch))
        base = statistics.median(times["stock (spinning, 2)"])
        cells = [f"{n} {statistics.median(t):.2f} ms ({statistics.median(t) / base:.2f}x)"
                 for n, t in times.items()]  # fmt: skip
        print(f"batch {batch:2d}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
