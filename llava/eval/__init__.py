"""lmms-eval plugin of the LLaVA-OV model (`--model llava_ov_encoder`) and local offline tasks.

Importing this package stays light (no torch, no lmms-eval): lmms-eval imports the entry point
`llava.eval.registration:manifests` on every run, and the model class is imported only when it is asked for.
Local tasks live in `llava/eval/tasks/` (pass it with `--include_path`, see `local_tasks_dir`).
"""

from __future__ import annotations

from pathlib import Path


def local_tasks_dir() -> Path:
    """The folder of the shipped local tasks, for lmms-eval's `--include_path`."""
    return Path(__file__).resolve().parent / "tasks"


__all__ = ["local_tasks_dir"]
