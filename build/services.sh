#!/usr/bin/env bash
# Install (never start) the servers the integration tests run: Redis and PostgreSQL from Debian,
# Chromium for the browser tests, LocalStack's S3 in its own virtualenv (it pins older libraries than PixelFlow uses).
# Idempotent; tests/conftest.py starts and stops the servers on free loopback ports. apt waits up to
# 10 minutes for another package manager (build/apt.sh): a fresh VM often runs unattended upgrades at boot.
set -euo pipefail
cd "$(dirname "$0")/.."
source build/apt.sh

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# the README walk-through test runs its curl/jq/openssl commands as written
command -v curl >/dev/null || need_apt+=(curl)
command -v jq >/dev/null || need_apt+=(jq)
command -v openssl >/dev/null || need_apt+=(openssl)
# bench/delivery.py's load generator (its smoke test runs it against the floor)
command -v wrk >/dev/null || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
# Debian starts the packaged services on install; the tests run their own instances.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop redis-server postgresql >/dev/null 2>&1 || true
fi

[ "${1:-}" = "--no-localstack" ] && exit 0  # `pixelflow up` needs only the two above

# browser features (direct uploads, the docs UI) are tested in Debian's real Chromium
if ! command -v chromium >/dev/null; then
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends chromium
fi

stamp=.venv-localstack/.pixelflow-installed
if [ ! -x .venv-localstack/bin/python ] || [ build/localstack-requirements.txt -nt "$stamp" ]; then
  python3 -m venv .venv-localstack
  .venv-localstack/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv-localstack/bin/python -m pip install -q -r build/localstack-requirements.txt
  touch "$stamp"
fi
