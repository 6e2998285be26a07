#!/usr/bin/env bash
# Run the demo: hub with its web UI and embedded broker, one agent with a camera, three users (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_venv
exec .venv/bin/python -m demo --dir demo-data "$@"
