"""The repository carries the data its tests, notebooks and bench need, with their licences; no
test or notebook reaches for ``../shared`` (a clone has nothing beside it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from shipped_data import DATASETS, banking77, calibration_pairs, fow_pairs

ROOT = DATASETS.parent
SHIPPED = {
    "banking77": ("CC BY 4.0", ["train.csv", "test.csv", "categories.json"]),
    "clinc150": ("CC BY 3.0", ["data_full.json", "domains.json"]),
    "fow_cache": ("CC BY 4.0", ["pairs.jsonl"]),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_dataset_has_its_files_readme_and_licence(name: str) -> None:
    licence, files = SHIPPED[name]
    folder = DATASETS / name
    assert all((folder / file).is_file() for file in files)
    licences = sorted(folder.glob("LICENSE*"))
    assert licences, f"{name}: no LICENSE file"
    assert licence in (folder / "README.md").read_text()
    assert "Attribution" in licences[0].read_text()
    assert f"`{name}/`" in (DATASETS / "README.md").read_text()


def test_no_quora_pairs_are_shipped() -> None:
    assert sorted(p.name for p in DATASETS.iterdir() if p.is_dir()) == sorted(SHIPPED)
    assert not list(ROOT.glob("**/similiar_qqp_full.json"))


def test_the_wheel_carries_the_package_only() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "src/semcache_plugins"
    ]


def test_nothing_reads_the_shared_folder_beside_the_repository() -> None:
    readers = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("notebooks/*.ipynb")]
    pattern = re.compile(r"shared[\"']?\s*/\s*[\"']?datasets|SEMCACHE_DATASETS")
    assert pattern.search('DATA = ROOT.parent / "shared" / "datasets"')  # the pattern works
    me = Path(__file__).name
    assert [p.name for p in readers if p.name != me and pattern.search(p.read_text())] == []


def test_the_loaders_read_the_shipped_rows() -> None:
    assert len(fow_pairs()) == 600
    assert len(banking77("train")) == 10_003 and len(banking77("test")) == 3_080
    pairs = calibration_pairs(50, 60)
    assert sum(p["should_hit"] for p in pairs) == 50 and len(pairs) == 110
