"""The README's commands are the ones CI runs, and its Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_setup_and_test_commands() -> None:
    assert "scripts/setup.sh" in README and "bash scripts/setup.sh" in CI
    test_command = ".venv/bin/python -m pytest -q"
    assert f"```bash\n{test_command}\n```" in README
    assert CI.rstrip().splitlines()[-1] == test_command


def test_direct_usage_example_runs(
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    index_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    block = next(b for b in python_blocks() if "from semcache_plugins import CacheCore" in b)
    monkeypatch.setenv("SEMCACHE_REDIS_URL", redis_url)
    monkeypatch.setenv("SEMCACHE_INDEX_PREFIX", index_prefix)
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own README
    assert "'stores': 1" in capsys.readouterr().out


@pytest.mark.parametrize("marker", re.findall(r"<!-- copied from (tests/\S+) -->", README))
def test_adapter_snippets_are_copied_from_tests_that_run_them(marker: str) -> None:
    source = (ROOT / marker).read_text()
    snippet_start = README.index(f"<!-- copied from {marker} -->")
    block = re.search(r"```python\n(.*?)```", README[snippet_start:], flags=re.S)
    assert block is not None
    for line in block.group(1).strip().splitlines():
        code = line.split("  #", 1)[0].strip()
        if code and not code.startswith("#"):
            assert code in source, f"README line not in {marker}: {line!r}"
