"""Which checkpoint an interrupted run resumes from: the newest *complete* ``checkpoint-N``.

A run killed while saving leaves a ``checkpoint-N`` without ``trainer_state.json`` (the Trainer writes it last) or
with truncated files; resuming from it fails on every rerun. Complete means: a readable ``trainer_state.json`` with
its ``global_step``, at least one set of weights, and every weight / optimizer / DeepSpeed file readable (safetensors
headers that cover the file, torch zip archives with their central directory: cheap checks that catch truncation
without loading the tensors). Incomplete folders are skipped, named in the log, and left in place (a later save of
the same step writes over them).
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from pathlib import Path

from safetensors import SafetensorError, safe_open

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# Any one of these holds weights: full model, sharded model, LoRA adapter (+ modules_to_save), stage-1 projector.
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "adapter_model.safetensors",
    "multi_modal_projector.safetensors",
    "pytorch_model.bin",
)


def _unreadable(path: Path) -> str | None:
    """Why `path` (a safetensors or torch zip file) cannot be read, or None."""
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        else:
            with zipfile.ZipFile(path) as archive:
                archive.namelist()
    except (OSError, SafetensorError, zipfile.BadZipFile) as error:
        return f"{path.name} unreadable ({error})"
    return None


def checkpoint_problem(folder: str | Path) -> str | None:
    """None when `folder` is a complete checkpoint, else what is missing or broken."""
    folder = Path(folder)
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        int(json.loads(state.read_text())["global_step"])
    except (ValueError, KeyError, TypeError) as error:
        return f"trainer_state.json unreadable ({error!r})"
    files = [folder / name for name in _WEIGHT_FILES if (folder / name).is_file()]
    index = folder / "model.safetensors.index.json"
    if index in files:
        files.remove(index)
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as error:
            return f"{index.name} unreadable ({error!r})"
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            return f"missing weight shards {missing}"
        files += [folder / name for name in shards]
    latest = folder / "latest"  # DeepSpeed: names the folder of its model / optimizer partitions
    if latest.is_file():
        tag = folder / latest.read_text().strip()
        if not tag.is_dir():
            return f"DeepSpeed folder {tag.name} missing"
        files += sorted(tag.glob("*.pt"))
    if not files:
        return "no weights"
    files += sorted(path for path in folder.iterdir() if path.suffix in (".pt", ".pth", ".bin") and path not in files)
    for path in files:
        problem = _unreadable(path)
        if problem:
            return problem
    return None


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` in `output_dir` (None if there is none); logs each one skipped."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = [(int(m.group(1)), path) for path in output_dir.iterdir() if (m := _CHECKPOINT.match(path.name))]
    skipped = []
    for _, path in sorted((item for item in found if item[1].is_dir()), reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            for name, reason in skipped:
                logger.warning("skipping incomplete checkpoint %s: %s", name, reason)
            return str(path)
        skipped.append((path.name, problem))
    for name, reason in skipped:
        logger.warning("skipping incomplete checkpoint %s: %s (no complete checkpoint: starting afresh)", name, reason)
    return None


__all__ = ["checkpoint_problem", "last_complete_checkpoint"]
