"""Every notebook in ``notebooks/`` runs top to bottom in a fresh kernel and passes its checks.

Each notebook ends with an assertion cell, so a notebook that shows the wrong thing fails here.
The kernel gets the session Redis (``SEMCACHE_REDIS_URL``) and this test's unique
``SEMCACHE_INDEX_PREFIX``; no API key is needed (the LLM is ``semcache_plugins._cli._fake_llm``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
#: Seconds a whole notebook may take (per cell, nbclient's timeout is the same figure).
BUDGET = {"03_threshold_tuning.ipynb": 240}


def test_every_notebook_is_saved_without_outputs_and_ends_with_checks() -> None:
    assert [p.name[:3] for p in PATHS] == ["01_", "02_", "03_", "04_", "05_"]
    for path in PATHS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path
        assert "assert " in code[-1].source, f"{path.name}: the last cell must check results"
        markdown = " ".join(c.source for c in notebook.cells if c.cell_type == "markdown")
        assert "real provider" in markdown or "no LLM" in markdown, path.name


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs_top_to_bottom(path: Path, redis_url: str, index_prefix: str) -> None:
    notebook = nbformat.read(path, as_version=4)
    budget = BUDGET.get(path.name, 120)
    client = nbclient.NotebookClient(
        notebook,
        timeout=budget,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    env = {
        **os.environ,
        "SEMCACHE_REDIS_URL": redis_url,
        "SEMCACHE_INDEX_PREFIX": index_prefix,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    started = time.monotonic()
    client.execute(env=env)  # raises CellExecutionError on any failing cell
    elapsed = time.monotonic() - started
    last = [cell for cell in notebook.cells if cell.cell_type == "code"][-1]
    printed = "".join(out.get("text", "") for out in last.outputs)
    assert "all checks passed" in printed, printed
    assert elapsed < budget, f"{path.name} took {elapsed:.0f}s"
