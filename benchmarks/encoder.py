"""OneVision-Encoder benchmark: attention backends and sparse-vs-dense video encoding, side by side in one run.

    python benchmarks/encoder.py                 # CPU: sdpa vs eager, sparse (8 mosaics) vs dense (64 frames)
    python benchmarks/encoder.py --quick         # smaller inputs, for a smoke run
    python benchmarks/encoder.py --device cuda   # adds the large config in bf16 with flash attention (GPU)

Prints a table and ends with one line of ratios. Absolute times are only meaningful for the device named.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import transformers

from llava.model import OneVisionEncoderModel
from llava.model.onevision_encoder.presets import onevision_encoder_large, onevision_encoder_tiny

logger = logging.getLogger("benchmarks.encoder")

# Codec geometry of the LLaVA pipeline (spec README): 8 mosaics of 36x36 patches (504 px, patch 14) = 10,368
# tokens carrying positions on the 64-frame grid; the dense baseline encodes all 64 frames of 36x36 patches.
MOSAICS, GRID, FRAMES = 8, 36, 64


@dataclass
class Timing:
    name: str
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], *, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` runs (seconds)."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        _sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def codec_inputs(*, grid: int, patch: int, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """8 mosaics [1, 3, 8, grid*patch, grid*patch] with positions [1, 8*grid*grid, 3]: frame 0 whole, then
    patches spread over t = 1..63 (random but sorted by (t, h, w), as cv_reader writes them)."""
    generator = torch.Generator().manual_seed(seed)
    size = grid * patch
    pixels = torch.randn(1, 3, MOSAICS, size, size, generator=generator)
    per_image = grid * grid
    first = torch.stack(
        torch.meshgrid(torch.zeros(1).long(), torch.arange(grid), torch.arange(grid), indexing="ij"), -1
    )
    cells = torch.randperm((FRAMES - 1) * per_image, generator=generator)[: (MOSAICS - 1) * per_image].sort().values
    rest = torch.stack([1 + cells // per_image, (cells % per_image) // grid, cells % grid], -1)
    positions = torch.cat([first.reshape(-1, 3), rest])[None]
    return pixels.to(device, dtype), positions.to(device)


def model_flops_per_token(model: OneVisionEncoderModel, tokens: int) -> float:
    """Forward FLOPs per token: 2 x linear parameters plus the attention matmuls (4 L D per layer)."""
    config = model.config
    linear = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "head." not in n)
    attention = 4 * tokens * config.hidden_size * config.num_hidden_layers
    return 2 * linear + attention


def run(args: argparse.Namespace) -> list[str]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    lines: list[str] = []
    ratios: list[str] = []
    logger.info(
        "machine: %s, %s threads, torch %s, transformers %s, device %s",
        platform.processor() or platform.machine(), torch.get_num_threads(), torch.__version__,
        transformers.__version__, torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    )  # fmt: skip

    # 1. sdpa vs eager at the same config (large width, a few layers; one 448x448 image = 1024 tokens)
    layers = 2 if args.quick else args.layers
    size = 224 if args.quick else 448
    config = onevision_encoder_large(num_hidden_layers=layers)
    image = torch.randn(1, 3, size, size, device=device)
    timings = {}
    for implementation in ("eager", "sdpa"):
        model = OneVisionEncoderModel(config).to(device).eval()
        model.set_attn_implementation(implementation)
        seconds = measure(lambda m=model: m(image), device=device, repeats=args.repeats)
        timings[implementation] = Timing(f"large-width {layers} layers, {size}px image, {implementation}", 0, seconds)
        timings[implementation].tokens = (size // 14) ** 2
        del model
    for timing in timings.values():
        lines.append(f"{timing.name:<58} {timing.seconds * 1e3:10.1f} ms {timing.tokens_per_second:12.0f} tok/s")
    ratios.append(f"sdpa/eager speed-up {timings['eager'].seconds / timings['sdpa'].seconds:.2f}x")

    # 2. a 64-frame clip: sparse codec input (8 mosaics, 10,368 tokens) vs dense (all 64 frames)
    grid = 16 if args.quick else GRID
    model = OneVisionEncoderModel(onevision_encoder_tiny()).to(device).eval()
    pixels, positions = codec_inputs(grid=grid, patch=14, device=device, dtype=torch.float32)
    dense = torch.randn(1, 3, FRAMES, grid * 14, grid * 14, device=device)
    sparse_s = measure(lambda: model(pixels, patch_positions=positions), device=device, repeats=args.repeats)
    dense_s = measure(lambda: model(dense), device=device, repeats=max(1, args.repeats // 2))
    sparse = Timing(
        f"tiny model, sparse: {MOSAICS} mosaics, {positions.shape[1]} tokens", positions.shape[1], sparse_s
    )
    full = Timing(f"tiny model, dense: {FRAMES} frames, {FRAMES * grid * grid} tokens", FRAMES * grid * grid, dense_s)
    for timing in (sparse, full):
        lines.append(f"{timing.name:<58} {timing.seconds * 1e3:10.1f} ms {timing.tokens_per_second:12.0f} tok/s")
    ratios.append(f"sparse vs dense 64-frame clip speed-up {dense_s / sparse_s:.2f}x")

    # 3. GPU only: the large config in bf16 with flash attention at 10,368 tokens
    if device.type == "cuda":
        implementation = "flash_attention_2" if args.flash else "sdpa"
        model = OneVisionEncoderModel(onevision_encoder_large()).to(device, torch.bfloat16).eval()
        model.set_attn_implementation(implementation)
        pixels, positions = codec_inputs(grid=GRID, patch=14, device=device, dtype=torch.bfloat16)
        seconds = measure(lambda: model(pixels, patch_positions=positions), device=device, repeats=args.repeats)
        tokens = positions.shape[1]
        flops = model_flops_per_token(model, tokens) * tokens / seconds
        mfu = flops / (args.peak_tflops * 1e12)
        name = f"large bf16 {implementation}, {tokens} tokens"
        lines.append(f"{name:<58} {seconds * 1e3:10.1f} ms {tokens / seconds:12.0f} tok/s  MFU {mfu:.1%}")
        ratios.append(f"large bf16 {tokens / seconds:.0f} tok/s, MFU {mfu:.1%} of {args.peak_tflops:g} TFLOP/s")
    return lines + ["ratios: " + "; ".join(ratios)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=4, help="layers of the large-width model for sdpa vs eager")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller inputs (smoke run)")
    parser.add_argument("--flash", action="store_true", help="GPU: flash_attention_2 instead of sdpa")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU bf16 dense peak for MFU (H100 SXM)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for line in run(args):
        print(line)


if __name__ == "__main__":
    main()
