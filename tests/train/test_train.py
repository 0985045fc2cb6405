"""Training: shipped configs parse, parts train or stay frozen as flagged, LoRA / stage 1 / resume, and the
two-process runs (ZeRO-3 and LoRA over gloo) that CI must pass."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llava.model import LlavaOVForConditionalGeneration
from llava.train.arguments import CONFIG_DIR
from llava.train.param_groups import LANGUAGE, PROJECTOR, VISION, parameter_part
from llava.train.train import main as train_main
from llava.train.train import parse_arguments

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(Path(CONFIG_DIR).glob("*.yaml"))


def _base_args(checkpoint: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(Path(CONFIG_DIR) / "sft_tiny.yaml"), "--model_name_or_path", str(checkpoint),
        "--data_path", str(data / "sft.yaml"), "--output_dir", str(out), "--per_device_train_batch_size", "2",
        "--logging_steps", "1", "--max_steps", "2", "--save_strategy", "no", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_parses(config, tmp_path):
    overrides = ["--output_dir", str(tmp_path)]
    if "qwen3" in config.name:
        # Real-size configs name GPU settings; parse them as a GPU user would, minus what needs one.
        overrides += ["--bf16", "false", "--deepspeed", ""]
    model_args, data_args, training_args = parse_arguments([str(config), *overrides])
    assert training_args.output_dir == str(tmp_path)
    assert data_args.data_path and (model_args.model_name_or_path or model_args.vision_tower)
    raw = json.loads(json.dumps(__import__("yaml").safe_load(config.read_text())))
    deepspeed = raw.get("deepspeed")
    if deepspeed:
        json.loads((REPO_ROOT / deepspeed).read_text())


def test_unknown_config_field_is_an_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("learning_rat: 1.0e-3\n")
    with pytest.raises(ValueError, match="unknown fields \\['learning_rat'\\]"):
        parse_arguments([str(config)])


def test_config_path_is_used_as_given_or_named_as_shipped(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("WARNING", logger="llava.train"):
        _, _, training_args = parse_arguments(["sft_tiny.yaml", "--output_dir", str(tmp_path)])
    assert training_args.per_device_train_batch_size == 8
    assert "using the shipped" in caplog.text and "sft_tiny.yaml" in caplog.text
    with pytest.raises(FileNotFoundError, match="config file not found: configs/sft_tiny.yaml"):
        parse_arguments(["configs/sft_tiny.yaml"])
    local = tmp_path / "sft_tiny.yaml"  # a file in the working directory wins over the shipped one
    local.write_text("per_device_train_batch_size: 3\n")
    assert parse_arguments(["sft_tiny.yaml", "--output_dir", str(tmp_path)])[2].per_device_train_batch_size == 3


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_step_changes_every_trainable_parameter_and_no_frozen_one(tiny_llava, playground_small, tmp_path):
    before = _snapshot(LlavaOVForConditionalGeneration.from_pretrained(tiny_llava))
    out = train_main(_base_args(tiny_llava, playground_small, tmp_path / "out", "--train_vision_tower", "false",
                                "--warmup_steps", "0"))  # fmt: skip
    after = _snapshot(LlavaOVForConditionalGeneration.from_pretrained(out))
    for name, tensor in before.items():
        changed = not torch.equal(tensor, after[name])
        if parameter_part(name) == VISION:
            assert not changed, f"frozen {name} changed"
        else:
            assert changed, f"trainable {name} did not change"


def test_lora_trains_adapters_and_saves_the_projector_in_full(tiny_llava, playground_small, tmp_path):
    out = train_main(_base_args(tiny_llava, playground_small, tmp_path / "lora", "--lora_enable", "true",
                                "--lora_r", "4", "--warmup_steps", "0", "--train_vision_tower", "false"))  # fmt: skip
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")  # the merged model is the folder's own
    assert any("lora_A" in key for key in adapter)
    assert all("vision_tower" not in key for key in adapter)
    assert any("multi_modal_projector" in key and "lora" not in key for key in adapter)
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["modules_to_save"] == [
        "multi_modal_projector"
    ]


def test_stage1_saves_the_projector_and_a_full_checkpoint(tiny_llava, playground_small, tmp_path):
    args = _base_args(tiny_llava, playground_small, tmp_path / "stage1")
    args[0] = str(Path(CONFIG_DIR) / "pretrain_tiny.yaml")
    args[args.index("--data_path") + 1] = str(playground_small / "captions_stage1.json")
    out = train_main(args)
    weights = load_file(out / "multi_modal_projector.safetensors")
    assert {parameter_part(k) for k in weights} == {PROJECTOR}
    # The folder is also a complete checkpoint (tests/serve/test_checkpoints.py opens it in the demo).
    full = load_file(out / "model.safetensors")
    for key, tensor in weights.items():
        torch.testing.assert_close(full[key], tensor, rtol=0, atol=0)


def test_resume_continues_from_the_last_checkpoint(tiny_llava, playground_small, tmp_path):
    out = tmp_path / "resume"
    train_main(_base_args(tiny_llava, playground_small, out, "--save_strategy", "steps", "--save_steps", "1"))
    assert (out / "checkpoint-2").is_dir()
    args = _base_args(tiny_llava, playground_small, out, "--save_strategy", "steps", "--save_steps", "1")
    args[args.index("--max_steps") + 1] = "3"
    train_main(args)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]


def _torchrun(args: list[str], log: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "llava.train", *args, "--use_cpu", "true", "--ddp_backend", "gloo"]  # fmt: skip
    with log.open("w") as handle:
        result = subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=600)
    assert result.returncode == 0, log.read_text()[-4000:]


def test_two_processes_zero3_equals_a_plain_run(tiny_llava, playground_small, tmp_path):
    """ZeRO-3 over 2 processes x 2 samples trains what one process does on the same 4-sample batches: the gathered
    16-bit weights it saves equal a plain run's after the same steps (within float tolerance, far below a step)."""
    out, plain_out = tmp_path / "zero3", tmp_path / "plain"
    deepspeed = str(Path(CONFIG_DIR) / "zero3.json")
    common = ("--warmup_steps", "0", "--train_vision_tower", "false")
    _torchrun(_base_args(tiny_llava, playground_small, out, "--deepspeed", deepspeed, *common), tmp_path / "z.log")
    plain_args = _base_args(tiny_llava, playground_small, plain_out, *common)
    plain_args[plain_args.index("--per_device_train_batch_size") + 1] = "4"
    train_main(plain_args)
    model = LlavaOVForConditionalGeneration.from_pretrained(out)  # ZeRO-3 gathered the full 16-bit weights
    plain = LlavaOVForConditionalGeneration.from_pretrained(plain_out)
    start = LlavaOVForConditionalGeneration.from_pretrained(tiny_llava)
    moved = 0.0
    for name, param in plain.named_parameters():
        torch.testing.assert_close(model.get_parameter(name), param, rtol=0, atol=2e-5, msg=name)
        moved = max(moved, (param - start.get_parameter(name)).abs().max().item())
    assert moved > 1e-3  # the steps moved the weights far more than the tolerance
    log = (tmp_path / "z.log").read_text()
    assert log.count("'loss'") >= 2


def test_two_processes_lora_with_token_budget_rows(tiny_llava, playground_small, tmp_path):
    """LoRA over 2 processes, with token-budget rows: each rank trains its own rows (the sampler deals them; the
    accelerate shard wrapper must not deal them again), so an epoch is as many steps as a rank has rows."""
    out = tmp_path / "lora2"
    args = _base_args(tiny_llava, playground_small, out, "--lora_enable", "true", "--lora_r", "4", "--packing", "true",
                      "--max_tokens_per_batch", "300", "--num_train_epochs", "1")  # fmt: skip
    args[args.index("--max_steps") + 1] = "-1"
    _torchrun(args, tmp_path / "lora2.log")
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "model.safetensors").is_file()
    rows = int(re.search(r"token-budget batches: (\d+) rows", (tmp_path / "lora2.log").read_text()).group(1))
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == rows > 1


def test_parts_are_named_consistently(tiny_llava):
    model = LlavaOVForConditionalGeneration.from_pretrained(tiny_llava)
    parts = {parameter_part(name) for name, _ in model.named_parameters()}
    assert parts == {LANGUAGE, PROJECTOR, VISION}


def test_playground_built_at_a_relative_path_loads(tmp_path, monkeypatch, tiny_llava):
    """The SFT script builds `playground/data` relative to the repository: its manifests must still resolve."""
    from llava.data import LlavaOVDataset, load_manifest
    from llava.model import LlavaOVProcessor

    from .conftest import playground_module

    module = playground_module()
    monkeypatch.chdir(tmp_path)
    sizes = ["--train-videos", "2", "--eval-videos", "1", "--train-images", "2", "--eval-images", "1"]
    module.main(["--out", "pg", *sizes])
    dataset = LlavaOVDataset(load_manifest("pg/sft.yaml"), LlavaOVProcessor.from_pretrained(tiny_llava))
    assert all(len(dataset[i]["pixel_values"]) == 1 for i in range(len(dataset)))
