"""The package's layout is its architecture: no import cycle, imports only downwards, small modules.

Imports are read with ``ast`` from the source files (nothing is imported). The allowed directions
are the table below; DEVELOPERS.md's map says the same (checked here too).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "semcache_plugins"
MAX_LINES = 400

# Modules at the package root, by part; a sub-package is its own part.
ROOT_PARTS = {
    "_errors": "base",
    "_types": "base",
    "_paths": "base",
    "_ttl": "base",
    "_records": "base",
    "_settings": "settings",
    "_options": "settings",
    "embedded": "_server",
    "__init__": "api",
    "litellm": "api",
    "langchain": "api",
    "litellm_proxy": "api",
    "metrics": "api",
    "_calibrate": "api",
    "__main__": "_cli",
}

# Bottom to top: each part may import itself and the parts listed.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "_precision": {"base"},
    "settings": {"base", "_precision"},
    "_server": {"base"},
    "_embedding": {"base", "settings"},
    "_cache": {"base", "settings", "_precision", "_server", "_embedding"},
    "_adapters": {"base", "settings", "_precision", "_server", "_embedding", "_cache"},
    "api": {"base", "settings", "_precision", "_server", "_embedding", "_cache", "_adapters"},
    "_cli": {
        "base",
        "settings",
        "_precision",
        "_server",
        "_embedding",
        "_cache",
        "_adapters",
        "api",
    },
}


def module_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def dotted(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {dotted(path): path for path in module_files()}


def part_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"  # the package itself: its __init__
    if len(parts) > 2 or (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return ROOT_PARTS.get(parts[1], f"unassigned root module {parts[1]}")


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(module: str, *, runtime_only: bool) -> Iterator[str]:
    """The semcache_plugins modules ``module`` imports (at import time only, if runtime_only)."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def visit(nodes: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node
            elif isinstance(node, ast.If) and _type_checking(node):
                if not runtime_only:
                    yield from visit(node.body)
                yield from visit(node.orelse)
            elif runtime_only and isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                continue  # runs later (a class body runs now, but imports there are rare)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        yield from visit(children)

    tree = ast.parse(path.read_text())
    for node in visit(tree.body):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [source]
            names += [f"{source}.{alias.name}" for alias in node.names]
        for name in names:
            if name in MODULES and name != module:
                yield name


def test_every_root_module_and_package_has_a_part() -> None:
    unassigned = [module for module in MODULES if part_of(module) not in ALLOWED]
    assert not unassigned, f"add these to ROOT_PARTS/ALLOWED (and DEVELOPERS.md): {unassigned}"


def test_imports_only_go_down() -> None:
    wrong = []
    for module in MODULES:
        mine = part_of(module)
        for target in imports(module, runtime_only=False):
            theirs = part_of(target)
            if theirs != mine and theirs not in ALLOWED.get(mine, set()):
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = {module: set(imports(module, runtime_only=True)) for module in MODULES}
    # a module imports its package's __init__ first; empty inits keep that acyclic
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(module: str, stack: list[str]) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                walk(target, stack)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small_and_declares_all(module: str) -> None:
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{module}: split it (max {MAX_LINES} lines)"
    if not module.endswith("__main__"):
        tree = ast.parse(text)
        declared = [
            node
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            and "__all__"
            in ast.unparse(node.targets[0] if isinstance(node, ast.Assign) else node.target)
        ]
        assert declared, f"{module} has no __all__"


def test_sub_package_inits_only_declare() -> None:
    """Importing ``semcache_plugins._x._y`` runs ``_x/__init__`` first: keep it empty."""
    for init in PACKAGE.glob("*/__init__.py"):
        assert not list(imports(dotted(init), runtime_only=False)), init


def test_developers_map_matches_the_table() -> None:
    text = (ROOT / "DEVELOPERS.md").read_text()
    section = text.split("## Map", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for entry in re.split(r"\n- ", section)[1:]:
        name = re.match(r"`(\w+)", entry)
        rule = re.search(r"may import: ([\w, ]*)", " ".join(entry.split()))
        if name and rule:
            parts = {part.strip() for part in rule.group(1).split(",")}
            found[name.group(1)] = parts - {name.group(1)}
    assert found == ALLOWED
