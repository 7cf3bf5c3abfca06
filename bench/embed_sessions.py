"""One query's and 16 queries' embedding under three ONNX Runtime sessions, interleaved.

fastembed's stock session (thread spinning on for ONNX Runtime's default time, 2 threads), ours
(spinning bounded to ``_embedder.SPIN_DURATION_US``, 2 threads) and spinning off (ours until
2026-12-02); nine rounds of 60 calls each, medians. Run it on an idle machine and
again with a core busy (``python3 -c "while True: pass" &``): the best choice depends on it.
``python -m bench.embed_sessions``
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.embed_speed import fastembed_session, p50, reopen
from semcache_plugins import Embedder
from semcache_plugins._embedding._embedder import SPIN_DURATION_US


def _as_is(options: Any) -> None:
    """``reopen``'s options unchanged: spinning off."""


def main() -> None:
    stock = Embedder()
    stock.load()
    fastembed_session(stock)
    ours = Embedder()
    ours.load()
    off = Embedder()
    off.load()
    reopen(off)(_as_is)
    sessions = {
        "stock (spinning, 2)": stock,
        f"ours (spin {SPIN_DURATION_US} us, 2)": ours,
        "no spinning, 2": off,
    }
    for batch in (1, 16):
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(9):
            for name, embedder in sessions.items():
                times[name].append(p50(embedder, 60, batch))
        base = statistics.median(times["stock (spinning, 2)"])
        cells = [f"{n} {statistics.median(t):.2f} ms ({statistics.median(t) / base:.2f}x)"
                 for n, t in times.items()]  # fmt: skip
        print(f"batch {batch:2d}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
