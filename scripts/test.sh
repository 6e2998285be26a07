#!/usr/bin/env bash
# Run the whole test suite: lint, types, tests. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_debian_packages "${TEST_DEBIAN_PACKAGES[@]}"
ensure_venv
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
