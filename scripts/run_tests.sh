#!/usr/bin/env bash
# The test suite: sets up .venv if needed, then runs ruff and pytest (CPU; gpu/slow tests deselected).
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -k encoder`.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=setup_env.sh
source "$REPO_ROOT/scripts/setup_env.sh"
cd "$REPO_ROOT"
ruff check .
# pytest exits 5 when it collects nothing: that is a failure here too (set -e keeps the status).
python -m pytest "$@"
