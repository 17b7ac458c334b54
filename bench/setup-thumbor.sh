#!/usr/bin/env bash
# thumbor in its own virtualenv (it pins its own Pillow); bench/engine.py uses it when present.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-thumbor/bin/python ] || python3 -m venv .venv-thumbor
.venv-thumbor/bin/python -m pip install -q "thumbor==7.8.0"
