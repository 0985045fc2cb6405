#!/usr/bin/env bash
# Creates (or reuses) the project virtual environment `.venv` and installs the project into it.
# Sourced by the quick-start scripts so that each command does its own set-up on a fresh machine.
# torch is pinned through a constraints file: any unpinned dependency on torch would otherwise pull
# the newest CUDA build (several GB). torchvision is never installed (no CPU build exists).
#   EXTRAS      pip extras to install, comma-separated (default: dev; empty: none)
#   VENV        where the environment lives (default: <repo>/.venv)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"
EXTRAS="${EXTRAS-dev}"
export PIP_CONSTRAINT="$REPO_ROOT/.ci/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment in $VENV" >&2
    python3 -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat "$REPO_ROOT/pyproject.toml" "$PIP_CONSTRAINT" | sha1sum | cut -c1-12)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
    echo "[setup] installing the project with extras [$EXTRAS] (torch pinned by $PIP_CONSTRAINT)" >&2
    "$VENV/bin/python" -m pip install -q torch==2.13.0
    if [ -n "$EXTRAS" ]; then target="$REPO_ROOT[$EXTRAS]"; else target="$REPO_ROOT"; fi
    "$VENV/bin/python" -m pip install -q -e "$target"
    if "$VENV/bin/python" -m pip show -q torchvision >/dev/null 2>&1; then
        # Every registry build of torchvision is CUDA-linked and breaks `import transformers` here.
        "$VENV/bin/python" -m pip uninstall -y -q torchvision
    fi
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
