"""Move semcache_plugins' private modules into subpackages by concern, and tests/ to mirror them.

Deterministic and idempotent: run it on any tree (``python scripts/relayout.py`` from the repo
root); a second run changes nothing. It fails loudly, before touching anything, naming every
module under ``src/semcache_plugins/`` or ``tests/`` it has no mapping for: add a line to
``SOURCES`` or ``TESTS`` below and run it again.

What it does: ``git mv`` per the tables; rewrites imports (relative and absolute, incl.
``from semcache_plugins import _x``), dotted strings (``"semcache_plugins._x.y"``, entry points,
logger names), paths (``semcache_plugins/_x.py``, ``tests/test_x.py``) in src/, tests/, bench/
(not bench/results/), scripts/, notebooks/, examples/, .ci/, README.md, DEVELOPERS.md,
pyproject.toml; fixes ``Path(__file__)`` depths of moved tests; sorts and formats the changed
Python files with ruff; writes the map at the top of DEVELOPERS.md.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "semcache_plugins"
SRC = ROOT / "src" / PKG
TESTS = ROOT / "tests"

# Stay at the package root: the public modules (their import paths are the API), the base
# modules everything shares, and ``_calibrate`` (``calibrate.__module__`` is pinned by
# tests/test_public_api.py).
ROOT_MODULES = {
    "__init__", "__main__", "embedded", "langchain", "litellm", "litellm_proxy", "metrics",
    "_errors", "_types", "_paths", "_ttl", "_records", "_settings", "_options", "_calibrate",
}  # fmt: skip
ROOT_FILES = {"py.typed"}

# old module (or file) at the package root -> new dotted path under the package
SOURCES: dict[str, str] = {
    # the cache core: pure decisions, Redis execution, the drivers and CacheCore
    "_scope": "_cache._scope",
    "_index": "_cache._index",
    "_flows": "_cache._flows",
    "_flow_config": "_cache._flow_config",
    "_flow_memo": "_cache._flow_memo",
    "_plan_memo": "_cache._plan_memo",
    "_generations": "_cache._generations",
    "_invalidation": "_cache._invalidation",
    "_backend": "_cache._backend",
    "_connections": "_cache._connections",
    "_reads": "_cache._reads",
    "_l1": "_cache._l1",
    "_l1_reads": "_cache._l1_reads",
    "_compute": "_cache._compute",
    "_drivers": "_cache._drivers",
    "_core": "_cache._core",
    "_internals": "_cache._internals",
    "_warm": "_cache._warm",
    "_stats": "_cache._stats",
    "_events": "_cache._events",
    "_audit_run": "_cache._audit_run",
    # embedding: model resolution, ONNX export, the embedder, batching, the vector memo
    "_model_resolve": "_embedding._model_resolve",
    "_onnx_export": "_embedding._onnx_export",
    "_onnx_graph": "_embedding._onnx_graph",
    "_embedder": "_embedding._embedder",
    "_batcher": "_embedding._batcher",
    "_vectors": "_embedding._vectors",
    # precision: pure judgements of a candidate
    "_guards": "_precision._guards",
    "_guard_lexicon": "_precision._guard_lexicon",
    "_align": "_precision._align",
    "_notation": "_precision._notation",
    "_answer": "_precision._answer",
    "_consensus": "_precision._consensus",
    "_verifier": "_precision._verifier",
    "verifier_weights.json": "_precision/verifier_weights.json",
    "_calibrate_bound": "_precision._calibrate_bound",
    "_audit": "_precision._audit",
    # framework adapters' private parts (the public modules stay at the root)
    "_litellm_convert": "_adapters._litellm_convert",
    "_litellm_tenant": "_adapters._litellm_tenant",
    "_langchain_convert": "_adapters._langchain_convert",
    "_langchain_stream": "_adapters._langchain_stream",
    "_audit_adapters": "_adapters._audit_adapters",
    "_adapter_core": "_adapters._adapter_core",
    # the CLI, one module per command group
    "_cli": "_cli._main",
    "_cli_io": "_cli._io",
    "_cli_audit": "_cli._audit",
    "_cli_cache": "_cli._cache",
    "_cli_calibrate": "_cli._calibrate",
    "_cli_demo": "_cli._demo",
    "_cli_model": "_cli._model",
    "_cli_proxy": "_cli._proxy",
    "_cli_redis": "_cli._redis",
    "_fake_llm": "_cli._fake_llm",
    # the embedded Redis server's private parts (``embedded`` stays public at the root)
    "_redis_binaries": "_server._redis_binaries",
    "_watchdog": "_server._watchdog",
}

PACKAGE_DOCS = {
    "_cache": "The cache core: scope, index, sans-I/O flows, Redis execution, drivers, CacheCore.",
    "_embedding": "Embedding: model resolution, ONNX export, the Embedder, batching, memo.",
    "_precision": "Precision: guards, answer agreement, consensus, verifier, calibration bound.",
    "_adapters": "The framework adapters' private parts: converters, tenants, audit hooks.",
    "_cli": "The ``semcache`` command line, one module per command group.",
    "_server": "The embedded Redis server's private parts: binaries and the watchdog.",
}

# tests/<name>.py -> sub-directory ("" = stays at the top of tests/)
TESTS_MAP: dict[str, str] = {
    # shared helpers and whole-repo checks stay at the top
    "conftest": "",
    "fake_openai": "",
    "proxy_process": "",
    "shipped_data": "",
    "tcp_proxy": "",
    "test_seams": "",
    "test_public_api": "",
    "test_layout": "",
    "test_readme": "",
    "test_notebooks": "",
    "test_datasets": "",
    "test_bench_smoke": "",
    "test_bench_peers": "",
    # cache core
    "test_core": "cache",
    "test_scope": "cache",
    "test_records_and_index": "cache",
    "test_fastpath_memos": "cache",
    "test_hybrid_policy": "cache",
    "test_isolation": "cache",
    "test_l1_cache": "cache",
    "test_lifecycle": "cache",
    "test_load_shedding": "cache",
    "test_deadlines": "cache",
    "test_outage": "cache",
    "test_signing_and_generations": "cache",
    "test_ttl_and_errors": "cache",
    "test_connection_security": "cache",
    "test_bad_input": "cache",
    "test_events": "cache",
    "test_bulk_warm": "cache",
    # embedding
    "test_embedder": "embedding",
    "test_onnx_export": "embedding",
    # precision
    "test_guards": "precision",
    "test_guards_classes": "precision",
    "test_notation": "precision",
    "test_answer_content": "precision",
    "test_consensus": "precision",
    "test_verifier": "precision",
    "test_calibrate": "precision",
    "test_audit": "precision",
    "test_exact_and_agreement": "precision",
    "test_long_prompts": "precision",
    "test_adapters_precision": "precision",  # imports test_long_prompts: same directory
    # adapters (and the Prometheus export over them)
    "test_litellm_adapter": "adapters",
    "test_litellm_tenants": "adapters",
    "test_litellm_proxy_handler": "adapters",
    "test_litellm_extra_venv": "adapters",
    "test_langchain_adapter": "adapters",
    "test_langchain_standard": "adapters",
    "test_audit_adapters": "adapters",
    "test_warm_adapters": "adapters",
    "test_proxy": "adapters",
    "test_metrics": "adapters",
    "test_front_door": "adapters",
    # CLI
    "test_cli_cache": "cli",
    "test_cli_proxy": "cli",
    "test_demo": "cli",
    # embedded server
    "test_embedded": "server",
    "test_tls_redis": "server",
}

# Lines the rewrite makes longer than 100 characters: (file name, after rewrite, shortened).
PATCHES = [
    (
        "verifier_eval.py",
        f"shipped weights (``{PKG}/_precision/verifier_weights.json``)",
        "shipped weights (``_precision/verifier_weights.json``)",
    ),
    (
        "proxy_process.py",
        "(tests/adapters/test_proxy.py, test_cli_proxy.py)",
        "(test_proxy.py, test_cli_proxy.py)",
    ),
    (
        "_options.py",
        "``tests/adapters/test_front_door.py`` checks that the keys here are exactly ``Cache",
        "``tests/adapters/test_front_door.py`` checks that the keys here are exactly\n``Cache",
    ),
]

# Text scanned for references (relative to the repo root).
SCAN_DIRS = ["src", "tests", "bench", "scripts", "notebooks", "examples", ".ci"]
SCAN_FILES = ["README.md", "DEVELOPERS.md", "pyproject.toml"]
SKIP = {"scripts/relayout.py", "tests/test_layout.py"}
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".sh", ".yaml", ".yml", ".cfg", ".txt", ""}

MAP_BEGIN = "<!-- layout map: written by scripts/relayout.py, checked by tests/test_layout.py -->"
MAP_END = "<!-- end of layout map -->"
MAP_TEXT = """\
## Map
`src/semcache_plugins/`, bottom to top: what each part owns, and what it may import (checked by
`tests/test_layout.py`, which also forbids import cycles and modules over 400 lines).
- `base` (root modules): `_errors` (the error tree), `_types`, `_paths` (cache and state dirs),
  `_ttl` (the TTL rule), `_records` (versioned JSON + HMAC of stored values); may import: base
- `_precision/`: pure judgements of a candidate: guards (+ lexicon, align, notation), answer
  agreement, consensus, the verifier (+ `verifier_weights.json`), the calibration bound, the
  audit maths; may import: base
- `settings` (root): `_settings.CacheSettings` (its default threshold is the guards'), `_options`;
  may import: base, _precision
- `_server/`: the embedded Redis server's parts (binaries, watchdog) behind the public
  `embedded`; may import: base
- `_embedding/`: model resolution, ONNX export and graph, `Embedder`, batching, the vector memo;
  may import: base, settings
- `_cache/`: the core: scope, index, sans-I/O flows + config and memos, generations,
  invalidation, Redis execution (backend, connections, reads, L1), model work (`_compute`),
  drivers, `CacheCore`, bulk warming, stats and events, the auditor; may import: base, settings,
  _precision, _server, _embedding
- `_adapters/`: the adapters' private parts (LiteLLM convert and tenant, LangChain convert and
  stream, audit hooks, adapter core); may import: base, settings, _precision, _server,
  _embedding, _cache
- `api` (root): `__init__`, `litellm`, `langchain`, `litellm_proxy`, `metrics`, `_calibrate`;
  may import: base, settings, _precision, _server, _embedding, _cache, _adapters
- `_cli/`: `semcache` (`_main`, one module per command group, `_fake_llm`) and `__main__`;
  may import: base, settings, _precision, _server, _embedding, _cache, _adapters, api
- `tests/` mirrors it (`tests/{cache,embedding,precision,adapters,cli,server}/`); shared helpers,
  `conftest.py` and whole-repo checks stay at the top (test file names stay unique).
"""

DOTTED = re.compile(r"(?<![\w.])" + PKG + r"((?:\.[A-Za-z_]\w*)+)")
SLASHED = re.compile(PKG + r"/([A-Za-z_][\w.]*\.(?:py|json))\b")
TEST_PATH = re.compile(r"(?<![\w/])tests/(\w+)\.py\b")
BARE = re.compile(r"`(_[A-Za-z]\w*)((?:\.\w+)*)(?=[`(\s])")


class RelayoutError(SystemExit):
    pass


def die(lines: list[str]) -> None:
    raise RelayoutError("relayout: " + "\n  ".join(lines))


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def new_module_names() -> dict[str, set[str]]:
    """Sub-package -> the names of its modules (after the move)."""
    packages: dict[str, set[str]] = {}
    for new in SOURCES.values():
        if "/" in new:
            continue
        package, name = new.split(".")
        packages.setdefault(package, set()).add(name)
    return packages


SUBMODULES = new_module_names()


def translate(dotted: str) -> str:
    """``semcache_plugins._x.rest`` -> its new dotted name (unchanged if not an old name)."""
    parts = dotted.split(".")
    if parts[0] != PKG or len(parts) < 2 or parts[1] not in SOURCES:
        return dotted
    head = parts[1]
    if head in SUBMODULES and len(parts) > 2 and parts[2] in SUBMODULES[head]:
        return dotted  # already the new package (``_cli._main``)
    return ".".join([PKG, SOURCES[head], *parts[2:]])


# ---------------------------------------------------------------- checks


def check_mapping() -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """The pending source and test moves; dies listing anything unmapped or conflicting."""
    problems: list[str] = []
    src_moves: list[tuple[Path, Path]] = []
    for path in sorted(SRC.iterdir()):
        if path.is_dir():
            if path.name != "__pycache__" and path.name not in SUBMODULES:
                problems.append(f"unmapped package src/{PKG}/{path.name}/")
            continue
        key = path.stem if path.suffix == ".py" else path.name
        if key in ROOT_MODULES or path.name in ROOT_FILES:
            continue
        if key not in SOURCES:
            problems.append(f"unmapped module src/{PKG}/{path.name} (add it to SOURCES)")
            continue
        new = SOURCES[key]
        target = SRC / (new if "/" in new else new.replace(".", "/") + ".py")
        if target.exists():
            problems.append(f"both src/{PKG}/{path.name} and {target.relative_to(ROOT)} exist")
        src_moves.append((path, target))
    for package, names in SUBMODULES.items():
        folder = SRC / package
        if folder.is_dir():
            for path in sorted(folder.glob("*.py")):
                if path.stem != "__init__" and path.stem not in names:
                    problems.append(f"unmapped module {path.relative_to(ROOT)}")
    test_moves: list[tuple[Path, Path]] = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS)
        if "__pycache__" in rel.parts:
            continue
        where = TESTS_MAP.get(path.stem)
        if where is None:
            problems.append(f"unmapped test module tests/{rel} (add it to TESTS_MAP)")
            continue
        target = TESTS / where / path.name
        if target == path:
            continue
        if len(rel.parts) > 1:
            problems.append(f"tests/{rel} is not where TESTS_MAP puts it (tests/{where})")
            continue
        if target.exists():
            problems.append(f"both tests/{rel} and {target.relative_to(ROOT)} exist")
        test_moves.append((path, target))
    if problems:
        die(["cannot move; fix the mapping in scripts/relayout.py first:", *problems])
    return src_moves, test_moves


def check_test_imports() -> None:
    """Test files import test helpers only from the top of tests/ or their own directory."""
    problems: list[str] = []
    where = {name: folder for name, folder in TESTS_MAP.items()}
    for path in sorted(TESTS.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        folder = TESTS_MAP[path.stem]
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            for name in names:
                if name in where and where[name] not in ("", folder):
                    problems.append(f"{path.relative_to(ROOT)} imports {name} from another dir")
    if problems:
        die(["test imports across directories (put them in one directory):", *problems])


# ---------------------------------------------------------------- rewriting Python imports


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_of(module: str, path: Path) -> list[str]:
    parts = module.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def relative(target: str, package: list[str]) -> str:
    parts = target.split(".")
    common = 0
    while common < min(len(parts), len(package)) and parts[common] == package[common]:
        common += 1
    level = len(package) - common + 1
    return "." * level + ".".join(parts[common:])


def alias_text(alias: ast.alias) -> str:
    return alias.name + (f" as {alias.asname}" if alias.asname else "")


def rewrite_imports(text: str, old_pkg: list[str] | None, new_pkg: list[str] | None) -> str:
    """Rewrite ImportFrom statements naming old modules; relative ones resolve from old_pkg."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            if old_pkg is None or new_pkg is None:
                continue
            base = old_pkg[: len(old_pkg) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        elif node.module and (node.module == PKG or node.module.startswith(PKG + ".")):
            source = node.module
        else:
            continue
        groups: dict[str, list[str]] = {}
        for alias in node.names:
            full = f"{source}.{alias.name}"
            head = source.removeprefix(PKG + ".")
            if alias.name in SUBMODULES.get(head, ()):  # ``from ._cli import _main``: the new
                groups.setdefault(source, []).append(alias_text(alias))  # package, unchanged
            elif source == PKG and translate(full) != full:
                parent, _, name = translate(full).rpartition(".")
                bound = alias.asname or alias.name  # the name the code uses stays bound
                groups.setdefault(parent, []).append(
                    name + ("" if bound == name else f" as {bound}")
                )
            else:
                groups.setdefault(translate(source), []).append(alias_text(alias))
        changed = list(groups) != [source] or (node.level and old_pkg != new_pkg)
        if not changed:
            continue
        statements = []
        for target, names in groups.items():
            spelled = relative(target, new_pkg) if node.level and new_pkg else target
            statements.append(f"from {spelled} import {', '.join(names)}")
        indent = " " * node.col_offset
        start = offsets[node.lineno - 1] + node.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset
        edits.append((start, end, ("\n" + indent).join(statements)))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


# ---------------------------------------------------------------- rewriting any text


def rewrite_text(text: str, *, bare_names: bool) -> str:
    text = DOTTED.sub(lambda m: translate(PKG + m.group(1)), text)

    def slashed(match: re.Match[str]) -> str:
        name = match.group(1)
        key = name if name.endswith(".json") else name.removesuffix(".py")
        if key not in SOURCES:
            return match.group(0)
        new = SOURCES[key]
        return PKG + "/" + (new if "/" in new else new.replace(".", "/") + ".py")

    text = SLASHED.sub(slashed, text)

    def test_path(match: re.Match[str]) -> str:
        folder = TESTS_MAP.get(match.group(1))
        if not folder:
            return match.group(0)
        return f"tests/{folder}/{match.group(1)}.py"

    text = TEST_PATH.sub(test_path, text)
    if bare_names:

        def bare(match: re.Match[str]) -> str:
            moved = translate(f"{PKG}.{match.group(1)}{match.group(2)}")
            return "`" + moved[len(PKG) + 1 :]

        text = BARE.sub(bare, text)
    return text


def notebook_check(path: Path, text: str) -> None:
    for cell in json.loads(text).get("cells", []):
        source = "".join(cell.get("source", []))
        if re.search(rf"from {PKG} import [^\n]*\b_\w", source):
            die([f"{path}: 'from {PKG} import _x' in a notebook: rewrite it by hand"])


# ---------------------------------------------------------------- the move


def scanned_files() -> list[Path]:
    files = [ROOT / name for name in SCAN_FILES if (ROOT / name).exists()]
    for folder in SCAN_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if (
                path.is_file()
                and path.suffix in TEXT_SUFFIXES
                and "__pycache__" not in path.parts
                and not rel.startswith("bench/results/")
                and rel not in SKIP
            ):
                files.append(path)
    return files


def write_map(text: str) -> str:
    block = f"{MAP_BEGIN}\n{MAP_TEXT}{MAP_END}\n"
    if MAP_BEGIN in text:
        start = text.index(MAP_BEGIN)
        end = text.index(MAP_END) + len(MAP_END) + 1
        return text[:start] + block + text[end:]
    title, _, rest = text.partition("\n\n")
    return f"{title}\n\n{block}\n{rest}"


def ensure_packages() -> list[Path]:
    made = []
    for package in sorted(SUBMODULES):
        init = SRC / package / "__init__.py"
        if not init.exists():
            init.parent.mkdir(exist_ok=True)
            init.write_text(f'"""{PACKAGE_DOCS[package]}"""\n\n__all__: list[str] = []\n')
            made.append(init)
    return made


def main() -> int:
    src_moves, test_moves = check_mapping()
    moved_from: dict[Path, Path] = {}  # new path -> old path, for relative imports
    for old, new in src_moves + test_moves:
        new.parent.mkdir(parents=True, exist_ok=True)
        git("mv", str(old.relative_to(ROOT)), str(new.relative_to(ROOT)))
        moved_from[new] = old
    made = ensure_packages()
    if made:
        git("add", *(str(path.relative_to(ROOT)) for path in made))
    check_test_imports()

    changed: list[Path] = []
    for path in scanned_files():
        before = path.read_text()
        text = before
        if path.suffix == ".py" and SRC in path.parents:
            old_path = moved_from.get(path, path)
            old_pkg = package_of(module_name(old_path), old_path)
            new_pkg = package_of(module_name(path), path)
            text = rewrite_imports(text, old_pkg, new_pkg)
        elif path.suffix == ".py":
            text = rewrite_imports(text, None, None)
        if path.suffix == ".ipynb":
            notebook_check(path, text)
        text = rewrite_text(text, bare_names=path.name == "DEVELOPERS.md")
        if path in moved_from and TESTS in path.parents:  # one level deeper now
            for old in (".resolve().parent.parent", ".resolve().parents[1]"):
                text = text.replace(f"Path(__file__){old}", "Path(__file__).resolve().parents[2]")
        if path.name in {"_verifier.py", "test_verifier.py"}:
            text = text.replace(f'resources.files("{PKG}")', f'resources.files("{PKG}._precision")')
        if path.name == "train_verifier.py":
            weights = '"verifier_weights.json"'
            text = text.replace(f'"{PKG}" / {weights}', f'"{PKG}" / "_precision" / {weights}')
        if path.name == "test_datasets.py":  # it reads every test file, now in sub-directories
            text = text.replace('ROOT.glob("tests/*.py")', 'ROOT.glob("tests/**/*.py")')
        for name, long, short in PATCHES:
            if path.name == name:
                text = text.replace(long, short)
        if path.name == "DEVELOPERS.md":
            text = write_map(text)
        if text != before:
            path.write_text(text)
            changed.append(path)

    python = sorted(
        {
            str(path.relative_to(ROOT))
            for path in [*changed, *moved_from]
            if path.suffix == ".py" and path.relative_to(ROOT).parts[0] in {"src", "tests", "bench"}
        }
    )
    if python:  # a moved test's helper imports may sort differently: sort and format them
        ruff = ["ruff"] if shutil.which("ruff") else [sys.executable, "-m", "ruff"]
        subprocess.run([*ruff, "check", "--select", "I", "--fix", "-q", *python], cwd=ROOT)
        subprocess.run([*ruff, "format", "-q", *python], cwd=ROOT, check=True)
        long_lines = subprocess.run(
            [*ruff, "check", "--select", "E501", "--output-format", "concise", "-q", *python],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if long_lines:  # prose the rewrite lengthened: add a line to PATCHES
            print("relayout: lines over 100 characters to shorten by hand:\n" + long_lines)
    moves = len(src_moves) + len(test_moves)
    print(f"relayout: {moves} files moved, {len(changed)} files rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
