"""Training flags do what they say: the parts flagged trainable (LoRA included) change after a step and nothing
else does; the logged counts are those after PEFT; resume picks the newest complete checkpoint."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file

from llava.data import LlavaOVCollator, LlavaOVDataset, load_manifest
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.train.checkpoints import checkpoint_problem, last_complete_checkpoint
from llava.train.param_groups import LANGUAGE, PROJECTOR, VISION, parameter_part
from llava.train.train import main as train_main
from llava.train.train import parse_arguments, prepare_trainable
from llava.train.trainer import LlavaTrainer

from .test_train import _base_args

FLAG_CASES = {
    "lora+tower": ["--lora_enable", "true", "--train_vision_tower", "true"],
    "lora-tower": ["--lora_enable", "true", "--train_vision_tower", "false"],
    "lora-projector+tower": ["--lora_enable", "true", "--train_projector", "false", "--train_vision_tower", "true"],
    "full+tower": ["--train_vision_tower", "true"],
}


@pytest.mark.parametrize("flags", FLAG_CASES.values(), ids=FLAG_CASES.keys())
def test_every_trainable_parameter_changes_and_no_frozen_one(tiny_llava, playground_small, tmp_path, flags):
    args = _base_args(tiny_llava, playground_small, tmp_path / "out", "--lora_r", "4", "--warmup_steps", "0", *flags)
    _, _, training_args = parse_arguments(args)
    processor = LlavaOVProcessor.from_pretrained(tiny_llava)
    dataset = LlavaOVDataset(load_manifest(str(playground_small / "sft.yaml"), seed=0), processor)
    model, counts = prepare_trainable(LlavaOVForConditionalGeneration.from_pretrained(tiny_llava), training_args)
    params = dict(model.named_parameters())
    trainable = {name for name, param in params.items() if param.requires_grad}
    assert counts == {
        part: sum(params[name].numel() for name in trainable if parameter_part(name) == part)
        for part in (LANGUAGE, PROJECTOR, VISION)
    }
    assert (counts[VISION] > 0) == training_args.train_vision_tower
    assert (counts[PROJECTOR] > 0) == training_args.train_projector
    assert counts[LANGUAGE] > 0
    before = {name: param.detach().clone() for name, param in params.items()}
    collator = LlavaOVCollator(pad_token_id=processor.tokenizer.pad_token_id)
    LlavaTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator).train()
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], param.detach())
        assert changed == (name in trainable), f"{'trainable' if name in trainable else 'frozen'} {name}"


def test_lora_with_the_tower_saves_tower_and_projector_in_full(tiny_llava, playground_small, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="llava.train"):
        out = train_main(_base_args(tiny_llava, playground_small, tmp_path / "lora", "--lora_enable", "true",
                                    "--lora_r", "4", "--train_vision_tower", "true"))  # fmt: skip
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["modules_to_save"]) == ["multi_modal_projector", "vision_tower"]
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    base = load_file(tiny_llava / "model.safetensors")
    tower = {key: value for key, value in adapter.items() if "vision_tower" in key}
    assert tower and all("lora" not in key for key in tower)
    base_tower = {key: value for key, value in base.items() if "vision_tower" in key}
    assert sum(v.numel() for v in tower.values()) == sum(v.numel() for v in base_tower.values())
    line = next(r.getMessage() for r in caplog.records if "trainable parameters by part" in r.getMessage())
    assert "after LoRA" in line and f"'{VISION}': 0" not in line


def test_lora_without_the_language_model_is_refused(tiny_llava, playground_small, tmp_path):
    args = _base_args(tiny_llava, playground_small, tmp_path / "x", "--lora_enable", "true",
                      "--train_language_model", "false")  # fmt: skip
    with pytest.raises(ValueError, match="lora_enable trains the language model"):
        train_main(args)


def test_resume_skips_incomplete_checkpoints(tiny_llava, playground_small, tmp_path, caplog):
    out = tmp_path / "resume"
    args = _base_args(tiny_llava, playground_small, out, "--save_strategy", "steps", "--save_steps", "1",
                      "--train_vision_tower", "false")  # fmt: skip
    train_main(args)
    assert checkpoint_problem(out / "checkpoint-2") is None
    # A save killed half-way: no trainer_state.json in one, truncated weights in another.
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-3")
    (out / "checkpoint-3" / "trainer_state.json").unlink()
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-4")
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    (out / "checkpoint-5").mkdir()
    with caplog.at_level(logging.WARNING, logger="llava.train"):
        assert last_complete_checkpoint(out) == str(out / "checkpoint-2")
    skipped = " ".join(r.getMessage() for r in caplog.records if "skipping incomplete checkpoint" in r.getMessage())
    assert "checkpoint-5: no trainer_state.json" in skipped and "checkpoint-3: no trainer_state.json" in skipped
    assert "checkpoint-4: model.safetensors unreadable" in skipped
    args[args.index("--max_steps") + 1] = "3"
    train_main(args)  # resumes from checkpoint-2 and runs step 3
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]


def test_no_complete_checkpoint_starts_afresh(tmp_path, caplog):
    (tmp_path / "checkpoint-7").mkdir()
    (tmp_path / "checkpoint-7" / "trainer_state.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="llava.train"):
        assert last_complete_checkpoint(tmp_path) is None
    assert "checkpoint-7: trainer_state.json unreadable" in caplog.text
    assert last_complete_checkpoint(tmp_path / "missing") is None
