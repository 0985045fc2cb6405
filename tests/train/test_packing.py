"""Packed training: a collated packed row computes exactly what separate rows compute (sdpa block mask on CPU,
flash-attention varlen on GPU), and token-budget batches reach the Trainer from the YAML with their fill ratio."""

from __future__ import annotations

import json

import pytest
import torch

from llava.data import LlavaOVCollator, LlavaOVDataset, load_manifest
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.train.train import main as train_main
from llava.train.train import parse_arguments
from llava.train.trainer import LlavaTrainer, supervised_positions

from .test_train import _base_args


def _samples(checkpoint, data, count: int = 3) -> tuple[list[dict], int]:
    processor = LlavaOVProcessor.from_pretrained(checkpoint)
    dataset = LlavaOVDataset(load_manifest(str(data / "sft.yaml"), seed=0), processor)
    return [dataset[i] for i in range(count)], processor.tokenizer.pad_token_id


def _to(batch: dict, device: str, dtype: torch.dtype) -> dict:
    def move(value):
        if isinstance(value, torch.Tensor):
            return value.to(device, dtype) if value.is_floating_point() else value.to(device)
        if isinstance(value, list):
            return [move(item) for item in value]
        return value

    return {key: move(value) for key, value in batch.items()}


def _packed_and_separate_logits(checkpoint, data, *, attn: str, device: str, dtype: torch.dtype):
    samples, pad_id = _samples(checkpoint, data)
    model = LlavaOVForConditionalGeneration.from_pretrained(checkpoint, attn_implementation=attn, dtype=dtype)
    model = model.to(device).eval()
    packed_batch = LlavaOVCollator(pad_token_id=pad_id, packing=True)(samples)
    assert packed_batch["input_ids"].shape[0] == 1 and "attention_mask" not in packed_batch
    with torch.no_grad():
        packed = model(**_to(packed_batch, device, dtype)).logits[0]
        separate = [
            model(**_to(LlavaOVCollator(pad_token_id=pad_id)([sample]), device, dtype)).logits[0] for sample in samples
        ]
    return packed.float(), torch.cat(separate).float()


def test_collated_packed_row_equals_separate_rows_sdpa(tiny_llava, playground_small):
    """Position resets alone (no attention mask) make transformers build the block-diagonal causal mask."""
    packed, separate = _packed_and_separate_logits(
        tiny_llava, playground_small, attn="sdpa", device="cpu", dtype=torch.float32
    )
    torch.testing.assert_close(packed, separate, rtol=1e-4, atol=1e-5)
    # A whole-row causal mask (what packing without the position resets would give) differs: the test can fail.
    samples, pad_id = _samples(tiny_llava, playground_small)
    batch = LlavaOVCollator(pad_token_id=pad_id, packing=True)(samples)
    batch["position_ids"] = torch.arange(batch["input_ids"].shape[1])[None]
    model = LlavaOVForConditionalGeneration.from_pretrained(tiny_llava).eval()
    with torch.no_grad():
        leaky = model(**batch).logits[0]
    assert not torch.allclose(leaky, separate, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_collated_packed_row_equals_separate_rows_flash_attention(tiny_llava, playground_small):
    """On CUDA with flash-attn installed: transformers routes the position resets to the varlen kernel."""
    packed, separate = _packed_and_separate_logits(
        tiny_llava, playground_small, attn="flash_attention_2", device="cuda", dtype=torch.bfloat16
    )
    torch.testing.assert_close(packed, separate, rtol=2e-2, atol=2e-2)


def test_token_budget_batches_from_the_config_log_the_fill_ratio(tiny_llava, playground_small, tmp_path):
    out = tmp_path / "budget"
    train_main(_base_args(tiny_llava, playground_small, out, "--packing", "true", "--max_tokens_per_batch", "700",
                          "--train_vision_tower", "false"))  # fmt: skip
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    fills = [entry["fill_ratio"] for entry in history if "loss" in entry]
    assert len(fills) == 2 and all(0.5 < fill <= 1.2 for fill in fills), fills


def test_max_tokens_per_batch_needs_packing(tiny_llava, playground_small, tmp_path):
    args = _base_args(tiny_llava, playground_small, tmp_path / "x", "--max_tokens_per_batch", "700")
    with pytest.raises(ValueError, match="max_tokens_per_batch needs packing: true"):
        train_main(args)


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "padded"])
def test_supervised_logits_loss_equals_the_stock_loss(tiny_llava, playground_small, tmp_path, packing):
    """The Trainer's loss from the supervised positions' logits only == the model's stock loss over all logits,
    in value and in gradient, with and without `num_items_in_batch`."""
    samples, pad_id = _samples(tiny_llava, playground_small)
    batch = LlavaOVCollator(pad_token_id=pad_id, packing=packing)(samples)
    args = parse_arguments(_base_args(tiny_llava, playground_small, tmp_path / "x"))[2]
    model = LlavaOVForConditionalGeneration.from_pretrained(tiny_llava)
    trainer = LlavaTrainer(model=model, args=args)
    kept = supervised_positions(batch["labels"])
    assert 0 < len(kept) < batch["input_ids"].shape[1] // 2  # the prompt and visual tokens are not kept
    for num_items in (None, torch.tensor(1000)):
        model.zero_grad()
        ours = trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items)
        ours.backward()
        our_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        stock = model(**batch, num_items_in_batch=num_items).loss
        stock.backward()
        torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-6)
        for name, param in model.named_parameters():
            if param.grad is not None:
                torch.testing.assert_close(our_grads[name], param.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_token_budget_run_resumed_mid_epoch_equals_a_straight_run(tiny_llava, playground_small, tmp_path):
    """Deterministic and resumable: 2 steps + resume to 3 trains the same rows as 3 steps in one go."""
    extra = ("--packing", "true", "--max_tokens_per_batch", "700", "--lr_scheduler_type", "constant",
             "--warmup_steps", "0", "--train_vision_tower", "false")  # fmt: skip

    def run(out, steps: int, *more: str):
        args = _base_args(tiny_llava, playground_small, out, *extra, *more)
        args[args.index("--max_steps") + 1] = str(steps)
        return train_main(args)

    straight = run(tmp_path / "straight", 3)
    run(tmp_path / "resumed", 2, "--save_strategy", "steps", "--save_steps", "1")
    resumed = run(tmp_path / "resumed", 3, "--save_strategy", "steps", "--save_steps", "1")
    a = LlavaOVForConditionalGeneration.from_pretrained(straight)
    b = LlavaOVForConditionalGeneration.from_pretrained(resumed)
    for name, param in a.named_parameters():
        torch.testing.assert_close(b.get_parameter(name), param, rtol=0, atol=1e-6, msg=name)
