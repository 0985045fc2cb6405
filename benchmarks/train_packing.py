"""Training throughput with sequence packing vs padding on the same data, side by side in one run.

    python benchmarks/train_packing.py [--checkpoint DIR] [--data playground/data/sft.yaml] [--steps 20]

Both arms train the same model copy from the same start on the same batches (forward + backward + AdamW step);
throughput counts real tokens (no padding). Without --checkpoint a tiny random LLaVA-OV model is built, and the
playground data is used (build it with `python playground/make_playground.py`).

Note: on CPU the LLM attends a packed row through a dense block-diagonal mask (sdpa), so packing pays for
attention across the whole row; with flash-attention varlen kernels (GPU) it does not.
"""

from __future__ import annotations

import argparse
import copy
import logging
import platform
import tempfile
import time

import torch
import transformers

from llava.data import LlavaOVCollator, LlavaOVDataset, load_manifest
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.playground.tiny_checkpoint import build_tiny_checkpoint

logger = logging.getLogger("benchmarks.train_packing")


def schedule(num_batches: int, steps: int) -> list[int]:
    """Batch index of each timed step (batch 0 is the warm-up)."""
    return [1 + i % (num_batches - 1) for i in range(steps)]


def run_arm(model, batches: list[dict], *, steps: int) -> float:
    """Seconds for ``steps`` optimizer steps (forward, backward, AdamW) after one warm-up step."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])
    start = time.perf_counter()
    for index in schedule(len(batches), steps):
        step(batches[index])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data", default="playground/data/sft.yaml")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--row-tokens", type=int, default=768, help="row budget of the bounded packing arm")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("machine: %s, %d threads, torch %s, transformers %s", platform.machine(), torch.get_num_threads(),
                torch.__version__, transformers.__version__)  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.checkpoint or build_tiny_checkpoint(f"{scratch}/tiny")
        model = LlavaOVForConditionalGeneration.from_pretrained(folder)
        processor = LlavaOVProcessor.from_pretrained(folder)
    dataset = LlavaOVDataset(load_manifest(args.data, seed=0), processor)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(dataset), generator=generator).tolist()
    count = min(len(order) // args.batch_size, args.steps + 1)
    groups = [[dataset[j] for j in order[i * args.batch_size : (i + 1) * args.batch_size]] for i in range(count)]
    pad_id = processor.tokenizer.pad_token_id
    results = {}
    arms = {
        "padding": LlavaOVCollator(pad_token_id=pad_id),
        "packing": LlavaOVCollator(pad_token_id=pad_id, packing=True),
        f"packing<={args.row_tokens}": LlavaOVCollator(
            pad_token_id=pad_id, packing=True, max_tokens_per_row=args.row_tokens
        ),
    }
    for name, collator in arms.items():
        batches = [collator(group) for group in groups]
        padded = sum(batches[i]["input_ids"].numel() for i in schedule(len(batches), args.steps))
        results[name] = (run_arm(model, batches, steps=args.steps), padded)
    real_tokens = sum(len(sample["input_ids"]) for i in schedule(len(groups), args.steps) for sample in groups[i])
    print(f"{'arm':<16}{'seconds':>10}{'tokens/s':>12}{'padded tokens':>16}")
    for name, (seconds, padded) in results.items():
        print(f"{name:<16}{seconds:>10.2f}{real_tokens / seconds:>12.0f}{padded:>16}")
    ratios = [f"{name}/padding tokens/s {results['padding'][0] / results[name][0]:.2f}x" for name in list(arms)[1:]]
    overhead = results["padding"][1] / results["packing"][1]
    print(f"ratios: {'; '.join(ratios)}; tokens processed by padding vs packing {overhead:.2f}x")


if __name__ == "__main__":
    main()
