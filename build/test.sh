#!/usr/bin/env bash
# Install everything the test suite needs, then run all of it. The suite starts its own
# Redis, PostgreSQL, S3 (LocalStack) and webhook receivers on 127.0.0.1 and stops them after.
set -euo pipefail
cd "$(dirname "$0")/.."

bash build/setup.sh
bash build/services.sh

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
