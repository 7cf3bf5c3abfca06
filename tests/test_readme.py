"""The README's commands are the ones CI runs, and its Python examples run as written."""

from __future__ import annotations

import ast
import builtins
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
        code, _, comment = (part.strip() for part in line.partition("  #"))
        if comment.startswith("README only"):  # a placeholder the test gets from its fixtures
            continue
        if code and not code.startswith("#"):
            assert code in source, f"README line not in {marker}: {line!r}"


def undefined_names(code: str) -> set[str]:
    """Names a snippet reads but never binds (assignment, import, loop, with, def) nor builtins."""
    tree = ast.parse(code)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - bound


def test_undefined_names_finds_a_name_never_bound() -> None:
    assert undefined_names("import json\nprint(json.dumps(pairs))") == {"pairs"}
    assert undefined_names("pairs = []\nfor p in pairs:\n    print(p)") == set()


@pytest.mark.parametrize("block", python_blocks(), ids=lambda b: b.splitlines()[0][:40])
def test_every_python_snippet_defines_the_names_it_uses(block: str) -> None:
    assert undefined_names(block) == set(), block
