"""Offline stand-ins of the 16 benchmarks' Hub datasets, for running lmms-eval 0.7.3's REAL task code (the installed
task YAML and utils.py, unchanged) through `python -m lmms_eval --model llava_ov_encoder`.

Everything is built by the test into a temporary `HF_HOME`:
* the dataset, in the task's Hub schema, as the prepared `datasets` cache of its Hub repo and config
  (`$HF_HOME/datasets/<org>___<name>/<config>/0.0.0/<hash>/`), which `load_dataset(dataset_path, dataset_name)`
  reads with `HF_HUB_OFFLINE=1` exactly as it reads a dataset downloaded earlier;
* the media where the task's `doc_to_visual` looks for them: short H.264 clips (`llava.data.synthetic.write_video`)
  under `$HF_HOME/<cache_dir>/...`, drawn images inside the rows.

The model is a known-answer checkpoint (`build_known_answer_checkpoint`): the tiny LLaVA-OV architecture with weights
set so that greedy decoding answers exactly "A" whatever the input, through the real processor, video path and
generation code. A stand-in's documents have known gold answers, so each task's metric has a known value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

ANSWER = "A"  # what the known-answer checkpoint says to every question


# ------------------------------------------------------------------------------------------------ the model
def build_known_answer_checkpoint(folder: Path, *, answer: str = ANSWER) -> Path:
    """A tiny LLaVA-OV checkpoint whose greedy answer is `answer` (one token) followed by end-of-sequence.

    Residual channel 0 holds the same constant at every text position (set in the token embeddings; no attention
    or MLP output writes it), channel 1 is non-zero only at the `answer` token. The final norm keeps only these two
    channels and `lm_head` reads channel 0 into the `answer` logit and channel 1 into the end-of-sequence logit:
    after the prompt the answer wins, after the answer the end of the sequence wins.
    """
    import torch

    from llava.model import LlavaOVForConditionalGeneration
    from llava.playground.tiny_checkpoint import build_tiny_checkpoint

    build_tiny_checkpoint(folder, text_overrides={"tie_word_embeddings": False})
    model = LlavaOVForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    [answer_id] = tokenizer(answer, add_special_tokens=False)["input_ids"]
    eos = model.generation_config.eos_token_id
    eos_id = eos[0] if isinstance(eos, list) else eos
    text = model.model.language_model
    with torch.no_grad():
        for layer in text.layers:
            layer.self_attn.o_proj.weight[:2].zero_()
            layer.mlp.down_proj.weight[:2].zero_()
        text.embed_tokens.weight[:, 0] = 1.0
        text.embed_tokens.weight[:, 1] = 0.0
        text.embed_tokens.weight[answer_id, 1] = 4.0
        text.norm.weight.zero_()
        text.norm.weight[:2] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[answer_id, 0] = 1.0
        model.lm_head.weight[eos_id, 1] = 10.0
    model.save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------------ the data
def write_clip(path: Path, *, seed: int, frames: int = 16, size: int = 64) -> Path:
    """A short H.264 clip: a square moving over a coloured background."""
    from llava.data.synthetic import write_video

    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, size=3, dtype=np.uint8)
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    video[:] = background
    for t in range(frames):
        x = (4 + 3 * t) % (size - 16)
        video[t, 20:36, x : x + 16] = 255 - background
    return write_video(path, video)


def draw_image(text: str, *, size: tuple[int, int] = (96, 64)) -> Image.Image:
    """A drawn document page / chart: `text` on a white background with a bar."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 40, 4 + 8 * len(text) % 80, 56), fill="steelblue")
    draw.text((4, 4), text, fill="black")
    return image


def write_hub_dataset(hf_home: Path, repo: str, config: str | None, splits: dict[str, Any]) -> Path:
    """Writes `{split: datasets.Dataset}` as the prepared `datasets` cache of Hub repo `repo`, config `config`
    (None: the repo's default config), as `load_dataset(repo, config)` leaves it after a download."""
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules.parquet.parquet import Parquet

    namespace, name = repo.split("/")
    source = hf_home / "standin_sources" / repo / (config or "default")
    source.mkdir(parents=True, exist_ok=True)
    data_files = {}
    for split, dataset in splits.items():
        dataset.to_parquet(str(source / f"{split}.parquet"))
        data_files[split] = str(source / f"{split}.parquet")
    config_id = config or "default"
    dataset_name = camelcase_to_snakecase(name)
    builder = Parquet(cache_dir=str(hf_home / "standin_build"), dataset_name=dataset_name, config_name=config_id,
                      config_id=config_id, data_files=data_files, hash="0" * 16)  # fmt: skip
    builder.download_and_prepare()
    # Where `load_dataset(repo, config)` finds a dataset downloaded earlier (the namespace is not snake-cased).
    target = hf_home / "datasets" / f"{namespace}___{dataset_name}" / config_id / "0.0.0" / ("0" * 16)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(builder.cache_dir, target)
    return target


@dataclass
class StandIn:
    """One benchmark's stand-in: how to build it and what the known-answer model must score.

    build(hf_home) writes the dataset(s) and media; `expected` maps each (leaf) task to {metric: value} for the
    known-answer model; `model_args` are added to the model's (e.g. `video_mode=uniform` to keep it quick).
    """

    task: str
    build: Callable[[Path], None]
    expected: dict[str, dict[str, float]]
    model_args: str = ""
    env: dict[str, str] = field(default_factory=dict)


def run_lmms_eval(*, checkpoint: Path, hf_home: Path, out: Path, tasks: str, model_args: str = "",
                  launcher: list[str] | None = None, batch_size: int = 2, extra_env: dict[str, str] | None = None,
                  timeout: int = 600) -> tuple[subprocess.CompletedProcess, dict | None]:  # fmt: skip
    """`python -m lmms_eval --model llava_ov_encoder` (or `launcher -m lmms_eval`) offline on `hf_home`, DEBUG
    verbosity (only then does a crash give a non-zero exit); returns the process and the results (None: no file)."""
    env = dict(os.environ)
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", **(extra_env or {}))  # fmt: skip
    args = f"pretrained={checkpoint},device=cpu,dtype=float32" + (f",{model_args}" if model_args else "")
    command = [*(launcher or [sys.executable]), "-m", "lmms_eval", "--model", "llava_ov_encoder",
               "--model_args", args, "--tasks", tasks, "--batch_size", str(batch_size), "--output_path", str(out),
               "--log_samples", "--verbosity", "DEBUG"]  # fmt: skip
    process = subprocess.run(command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=timeout)
    found = sorted(out.rglob("*_results.json"))
    return process, (json.loads(found[-1].read_text()) if found else None)


def samples(out: Path, task: str) -> list[dict]:
    """The logged samples of `task` (one per document)."""
    [path] = sorted(out.rglob(f"*_samples_{task}.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
