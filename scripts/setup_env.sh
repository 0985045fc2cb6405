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
# The dev extra includes the web demo's browser test: it needs gradio (the demo extra) as well.
case ",$EXTRAS," in *,dev,*) case ",$EXTRAS," in *,demo,*) ;; *) EXTRAS="$EXTRAS,demo" ;; esac ;; esac
# setup.py and the C source are in the stamp: a changed kernel is rebuilt (the editable install compiles it in place;
# tests/eval/test_launcher.py hashes the same inputs).
stamp_inputs=("$REPO_ROOT/pyproject.toml" "$PIP_CONSTRAINT" "$REPO_ROOT/setup.py" "$REPO_ROOT/Compressed_Video_Reader/cv_reader/_kernels.c")
stamp="$VENV/.installed-$(cat "${stamp_inputs[@]}" | sha1sum | cut -c1-12)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
    echo "[setup] installing the project with extras [$EXTRAS] (torch pinned by $PIP_CONSTRAINT)" >&2
    "$VENV/bin/python" -m pip install -q torch==2.13.0
    # lmms-eval (extras eval and dev) is installed lean below: its full dependency set downgrades av (<16) and
    # pulls torchvision, so the `eval` extra itself is not handed to pip.
    case ",$EXTRAS," in *,eval,*|*,dev,*) lean_lmms_eval=1 ;; *) lean_lmms_eval="" ;; esac
    extras_requested="$EXTRAS"  # restored below: callers source this file
    EXTRAS="$(echo ",$EXTRAS," | sed -e 's/,eval,/,/g' -e 's/^,//' -e 's/,$//')"
    if [ -n "$EXTRAS" ]; then target="$REPO_ROOT[$EXTRAS]"; else target="$REPO_ROOT"; fi
    "$VENV/bin/python" -m pip install -q -e "$target"
    if [ -n "$lean_lmms_eval" ]; then
        "$VENV/bin/python" -m pip install -q --no-deps lmms-eval==0.7.3
        # lmms-eval's own imports, then what the 16 benchmarks' task code imports (llava/eval/README.md, the
        # `eval` extra): opencv (videomme, tomato), decord (longvideobench; x86_64 wheels only), pandas + nltk
        # (nextqa), openai (mmvu's judge). Neither pulls torchvision nor touches av. filelock < 4: lmms-eval 0.7.3
        # imports `filelock._api` at every evaluation (gone in filelock 4).
        "$VENV/bin/python" -m pip install -q datasets evaluate aiohttp numexpr sacrebleu scikit-learn nltk \
            sentencepiece zstandard pyyaml sympy loguru tenacity protobuf python-dotenv jsonlines pytablewriter \
            openpyxl accelerate "filelock<4" opencv-python-headless pandas openai \
            "decord; platform_machine == 'x86_64'"
    fi
    EXTRAS="$extras_requested"
    if "$VENV/bin/python" -m pip show -q torchvision >/dev/null 2>&1; then
        # Every registry build of torchvision is CUDA-linked and breaks `import transformers` here.
        "$VENV/bin/python" -m pip uninstall -y -q torchvision
    fi
    touch "$stamp"
fi
# The browser test drives Debian's chromium through Playwright (never `playwright install`: it downloads browsers).
if [[ ",$EXTRAS," == *,dev,* ]] && [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    apt=""
    if [ "$(id -u)" = 0 ]; then apt="apt-get"; elif sudo -n true 2>/dev/null; then apt="sudo -n apt-get"; fi
    if [ -n "$apt" ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing Debian chromium for the web demo's browser test" >&2
        { $apt update -qq && DEBIAN_FRONTEND=noninteractive $apt install -y -qq chromium; } >&2 \
            || echo "[setup] could not install chromium: the browser test will be skipped" >&2
    else
        echo "[setup] no chromium and no apt-get as root: the browser test will be skipped" >&2
    fi
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
