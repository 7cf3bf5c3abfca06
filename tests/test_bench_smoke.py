"""The benchmark runs end to end at tiny size and writes every section (figures are not checked).

``--quick`` bounds the work (small caches, few queries, fow-cache only for hit quality) so the run
ends well inside the timeout on a loaded 2-core machine; ``--no-quora`` keeps it on the datasets
shipped in ``datasets/`` even where ``../shared`` has the Quora pairs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_quick_run_writes_every_section(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "quick.md"
    env = {**os.environ, "SEMCACHE_REDIS_URL": redis_url}
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-quora", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=290,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert "## Calibration" in text and "## Lookup latency by tier" in text
    for tier in ("exact hit", "semantic hit", "miss", "exact repeat (L1)", "exact repeat (no L1)"):
        assert tier in text
    assert "(L1 invalidation)" in text and "lookups that still hit after the DEL" in text
    assert "threshold" in text and "embedding alone" in text
    assert "questions: fow-cache, CLINC150 and Banking77" in text  # the shipped datasets
    assert "## Soak" in text and "errors 0\n" in text
    for section in (
        "## Peer lookup latency",
        "## Peer throughput",
        "## Peer memory and index build",
        "## Peer hit quality",
        "## End-to-end hit latency",
    ):
        assert section in text, section
    for peer in ("RedisVL SemanticCache", "langchain-redis", "litellm", "gptcache"):
        assert peer in text, peer
    assert "| exact repeat | RedisVL SemanticCache |" in text  # every peer's second ask
    for index in ("RedisVL's index (FLAT)", "ours' index (HNSW)"):  # the floor rows
        assert f"*floor (reference, not a peer): stock embedding + raw KNN 1 on {index}*" in text
    assert "New prompts against their floor" in text
    assert "_skipped " not in text and "skipped `" not in text  # every peer ran
    assert (tmp_path / "quick-precision_vs_hit_rate.png").stat().st_size > 10_000
