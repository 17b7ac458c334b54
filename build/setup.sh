#!/usr/bin/env bash
# Create .venv with PixelFlow and its dev tools. Idempotent: re-running only installs what changed.
# libvips comes from the pyvips-binary wheel, so no system image libraries are needed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: PixelFlow needs Python >= 3.11 (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian's python3 ships venv separately
    source build/apt.sh
    apt_get update -qq && apt_get install -y -qq python3-venv
    "$PY" -m venv .venv
  fi
fi
stamp=.venv/.pixelflow-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ clients/python/pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # the server with its dev tools, and the Python SDK (its own small distribution) the tests drive
  .venv/bin/python -m pip install -q -e '.[dev]' -e clients/python
  touch "$stamp"
fi
