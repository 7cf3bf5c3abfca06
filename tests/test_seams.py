"""No reaching into another object's privates: the package's helpers, the tests and the bench go
through ``CacheCore``'s public methods, ``events``, ``stats()``, ``clock`` or the one documented
internal seam ``core.internals`` (``_internals.CoreInternals``), never ``core._work`` and the like.

Same-class access (``self._x``) and third-party privates (LangChain, redis-py) are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from semcache_plugins import CacheCore

ROOT = Path(__file__).resolve().parents[1]
# The private attributes of the core and of the objects it holds (backends, model work, auditor).
CORE_PRIVATES = (
    r"(?:_work|_plan|_plans|_run|_arun|_stats|_counters|_sync|_async|_auditor|_closed|_config"
    r"|_breaker|_l1|_load|_planned)"
)
REACH = re.compile(rf"\b(?!self\b)\w+\.{CORE_PRIVATES}\b")  # x._work, core._sync._l1
OWN_MODULES = {"_core.py", "_drivers.py"}  # CacheCore's own code (self._x)


def _reaches(text: str, name: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        for match in REACH.finditer(code):
            if "import" not in code and not code.lstrip().startswith(("from ", '"', "'")):
                found.append(f"{name}:{number}: {match.group(0)}")
    return found


def _files() -> list[Path]:
    files = [*sorted((ROOT / "src" / "semcache_plugins").rglob("*.py"))]
    files += sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    return [f for f in files if f.name not in OWN_MODULES and f.name != "test_seams.py"]


def test_no_module_reaches_into_the_core_privates() -> None:
    files = _files()
    assert len(files) > 100  # the check reads the tree it means to
    found = [r for f in files for r in _reaches(f.read_text(encoding="utf-8"), str(f))]
    assert found == []


@pytest.mark.parametrize(
    ("line", "reaches"),
    [
        ("    core._work.vectors.clear()", True),
        ("    l1 = ours._sync._l1", True),
        ("    client = self._core._sync.client()", True),
        ("    plan = core._plan(messages, 'm', None, None)", True),
        ("    core._stats.skip('ttl_zero')", True),
        # controls: the seams, and a class's own privates
        ("    core.internals.work.vectors.clear()", False),
        ("    self._work = ModelWork(self.embedder, self.events)", False),
        ("    plan = core.internals.plan(messages, 'm', None, None)", False),
        ("    l1 = core.internals.sync_backend.l1", False),
    ],
)
def test_the_check_sees_a_reach(line: str, reaches: bool) -> None:
    assert bool(_reaches(line, "probe.py")) is reaches


def test_the_seam_is_the_cores_own_state(core: CacheCore) -> None:
    """``core.internals`` is a view of the core, not a copy: what it shows is what runs."""
    seams = core.internals
    assert seams.events is core.events
    plan = seams.plan([{"role": "user", "content": "What is HNSW?"}], "m", None, None)
    assert plan.namespace == core.settings.namespace and plan.semantic
    assert seams.is_closed() is False
    core.close()
    assert seams.is_closed() is True
