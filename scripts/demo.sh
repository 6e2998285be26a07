#!/usr/bin/env bash
# Run the demo: a simulated camera recording into a 7-day ring buffer (Ctrl-C stops it and cuts a clip).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_venv
exec .venv/bin/diaolou-agent demo --dir demo-data "$@"
