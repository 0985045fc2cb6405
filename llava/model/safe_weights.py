"""Checkpoint files the project reads and writes: safetensors only, unless the user opts in to pickle files.

A pickle checkpoint (`pytorch_model.bin`, `*.pt`, `*.pth`, `*.ckpt`) can run code when it is unpickled;
`torch.load(weights_only=True)` narrows that but is still a pickle parser over untrusted bytes. The project writes
safetensors only, so reading a pickle is an explicit decision: `allow_pickle=True` in Python, `--allow-pickle` on
the command line (README, "Checkpoints").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
SAFE_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class PickleWeightsError(ValueError):
    """A checkpoint holds pickle weights and the caller did not opt in to reading them."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path}: pickle weights are not loaded by default (unpickling can run code). Convert them to "
            "safetensors, or, if you trust the file, opt in with allow_pickle=True (--allow-pickle on the command "
            "line)"
        )


def is_pickle_file(path: str | os.PathLike) -> bool:
    """Whether `path` names a pickle weights file (by its suffix, as transformers and torch name them)."""
    name = Path(path).name
    return name.endswith(PICKLE_SUFFIXES) or name == "pytorch_model.bin.index.json"


def read_weights_file(path: str | os.PathLike, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of one weights file: safetensors, or (with `allow_pickle`) a torch pickle read with
    `weights_only=True`. Raises `PickleWeightsError` for a pickle file without the opt-in."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(path)
    if not allow_pickle:
        raise PickleWeightsError(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def check_weights_folder(folder: str | os.PathLike, *, allow_pickle: bool = False) -> None:
    """Refuses a local checkpoint folder whose model weights are pickle files only (`pytorch_model.bin` and its
    shards), unless `allow_pickle`. A folder with safetensors weights, or with no weights at all (the loader then
    says what is missing), passes."""
    folder = Path(folder)
    if allow_pickle or not folder.is_dir():
        return
    if any((folder / name).is_file() for name in SAFE_WEIGHT_FILES):
        return
    for name in PICKLE_WEIGHT_FILES:
        if (folder / name).is_file():
            raise PickleWeightsError(folder / name)


class SafetensorsOnlyMixin:
    """For `PreTrainedModel` subclasses: `from_pretrained` reads safetensors weights only unless the caller passes
    `allow_pickle=True` (then transformers' own loader reads `pytorch_model.bin` with `weights_only=True`)."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *model_args: Any, allow_pickle: bool = False,
                        **kwargs: Any):  # fmt: skip
        if not allow_pickle and pretrained_model_name_or_path is not None:
            local = Path(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
            check_weights_folder(local)  # a clear error for a local pickle-only folder, naming the opt-in
            kwargs.setdefault("use_safetensors", True)  # hub repositories: never fall back to the .bin file
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)


__all__ = [
    "PickleWeightsError",
    "SafetensorsOnlyMixin",
    "check_weights_folder",
    "is_pickle_file",
    "read_weights_file",
]
