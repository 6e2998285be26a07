#!/usr/bin/env bash
# Run the whole test suite: lint, types, tests. Installs what it needs first.
#
# Most tests wait on real processes (cameras, brokers, a browser) more than they compute, so they
# run in parallel workers, one test file per worker (a file's module fixtures start once). Tests
# marked `exclusive` measure loss or latency in real time (an 8 Mbit/s camera over UDP, a live
# feed's delay) and run afterwards with the machine to themselves. Arguments go to both runs
# (e.g. `./scripts/test.sh tests/test_gate.py -x`); TEST_WORKERS overrides the worker count.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_debian_packages "${TEST_DEBIAN_PACKAGES[@]}"
ensure_venv
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
workers=${TEST_WORKERS:-$(($(nproc) + 1))}
# pytest exits 5 when a run selects no test (e.g. a file with no exclusive test): not a failure.
status=0
.venv/bin/pytest -m "not exclusive" -n "$workers" --dist loadfile "$@" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 5 ] || exit "$status"
status=0
.venv/bin/pytest -m exclusive -p no:xdist "$@" || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 5 ] || exit "$status"
