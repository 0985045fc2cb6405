"""Real-size dry runs on the CPU: parameter counts of the real model, and one training step at real width.

    python benchmarks/real_scale_step.py [--lm-layers 1] [--vision-layers 1] [--text-tokens 1024] [--loss supervised]

1. The real configurations, written in the repository from their published values (Qwen3-1.7B:
   `llava/train/configs/model_qwen3_1_7b.json`; OneVision-Encoder-large: `onevision_encoder_large()`), built on the
   meta device (no weights, no download): parameters per part as the SFT model builds them (23 of the encoder's 24
   layers for vision_feature_layer -2, no pooling head).
2. One training step (forward, backward, AdamW) of a reduced-depth model at real width: real hidden sizes, the real
   embedding of 151,936 rows (151,669 tokenizer ids), one real-size codec video (8 mosaics of 504 x 504 pixels,
   10,368 patches with (t, h, w) positions) plus `--text-tokens` text tokens, fp32 on the CPU. Prints wall time per
   phase and peak resident memory; docs/real_scale.md derives the per-GPU figures from these.

`--loss supervised` (what `LlavaTrainer` does) computes logits only where a label is supervised (`logits_to_keep`);
`--loss full` runs the model's stock loss, which materialises [tokens, 151936] logits and, in fp32, their
log-softmax and gradients: ~12-16 bytes per token and vocabulary row, ~20-27 GB at 11.4K tokens.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import time
from pathlib import Path

import torch
import transformers
from transformers import Qwen3Config

from llava.model import LlavaOVForConditionalGeneration
from llava.model.llava_ov.configuration_llava_ov import LlavaOVConfig
from llava.model.llava_ov.video_inputs import uniform_positions
from llava.model.onevision_encoder.presets import onevision_encoder_large
from llava.train.arguments import CONFIG_DIR
from llava.train.param_groups import LANGUAGE, PROJECTOR, VISION, parameter_part
from llava.train.trainer import supervised_logits_loss, supervised_positions

logger = logging.getLogger("benchmarks.real_scale_step")

QWEN3_CONFIG = Path(CONFIG_DIR) / "model_qwen3_1_7b.json"
IMAGE_TOKEN_ID = 151655  # <|image_pad|>
TOKENIZER_SIZE = 151669  # len(tokenizer) of Qwen3; the embedding has 151936 rows (spec section 4)
CODEC_FRAMES, CODEC_GRID, MOSAIC_PIXELS = 8, 36, 504  # 8 mosaics x 36 x 36 patches of 14 px = 10,368 patches


def real_config(*, lm_layers: int | None = None, vision_layers: int | None = None) -> LlavaOVConfig:
    """The real LLaVA-OV configuration (Qwen3-1.7B + OneVision-Encoder-large, vision_feature_layer -2); the layer
    counts, when given, are those the model runs (the encoder gets one more, cut by vision_feature_layer)."""
    text_fields = json.loads(QWEN3_CONFIG.read_text())
    if lm_layers is not None:
        text_fields.update(num_hidden_layers=lm_layers, max_window_layers=lm_layers)
    vision = onevision_encoder_large(**({} if vision_layers is None else {"num_hidden_layers": vision_layers + 1}))
    return LlavaOVConfig(
        vision_config=vision, text_config=Qwen3Config(**text_fields), image_token_id=IMAGE_TOKEN_ID,
        vision_feature_layer=-2,
    )  # fmt: skip


def parameter_counts(config: LlavaOVConfig) -> dict[str, int]:
    """{part: parameters} of the model `config` builds, counted on the meta device (tied embeddings once)."""
    with torch.device("meta"):
        model = LlavaOVForConditionalGeneration(config)
    counts = dict.fromkeys((VISION, PROJECTOR, LANGUAGE), 0)
    for name, param in model.named_parameters():
        counts[parameter_part(name)] += param.numel()
    return counts


def codec_sample(*, text_tokens: int, answer_tokens: int, seed: int = 0) -> tuple[dict, torch.Tensor]:
    """One real-size codec video sample: (model inputs, labels [1, L]). Text ids are random ordinary tokens; the
    last `answer_tokens` text tokens are supervised."""
    generator = torch.Generator().manual_seed(seed)
    visual = CODEC_FRAMES * CODEC_GRID * CODEC_GRID
    text = torch.randint(0, 151643, (text_tokens,), generator=generator)  # below the special ids
    input_ids = torch.cat([text[:16], torch.full((visual,), IMAGE_TOKEN_ID), text[16:]])[None]
    labels = torch.full_like(input_ids, -100)
    labels[0, -answer_tokens:] = input_ids[0, -answer_tokens:]
    pixels = torch.randn(3, CODEC_FRAMES, MOSAIC_PIXELS, MOSAIC_PIXELS, generator=generator)
    positions = torch.from_numpy(uniform_positions(num_frames=CODEC_FRAMES, grid=CODEC_GRID))
    return {"input_ids": input_ids, "pixel_values": [pixels], "patch_positions": [positions]}, labels


def _rss_gb() -> float:
    """Peak resident memory of this process so far (GB; Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def training_step(
    model: LlavaOVForConditionalGeneration, inputs: dict, labels: torch.Tensor, *, loss_mode: str
) -> dict[str, float]:
    """Forward, backward and one AdamW step; returns seconds per phase and the loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    start = time.perf_counter()
    if loss_mode == "full":
        loss = model(**inputs, labels=labels).loss
    else:  # what LlavaTrainer does: logits of the supervised positions only
        outputs = model(**inputs, logits_to_keep=supervised_positions(labels), use_cache=False)
        loss = supervised_logits_loss(outputs, labels)
    forward = time.perf_counter()
    loss.backward()
    backward = time.perf_counter()
    optimizer.step()
    done = time.perf_counter()
    return {
        "forward_s": forward - start, "backward_s": backward - forward, "optimizer_s": done - backward,
        "step_s": done - start, "loss": float(loss),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm-layers", type=int, default=1, help="Qwen3 decoder layers in the step (real: 28)")
    parser.add_argument("--vision-layers", type=int, default=1, help="encoder layers run in the step (real: 23)")
    parser.add_argument("--text-tokens", type=int, default=1024)
    parser.add_argument("--answer-tokens", type=int, default=256)
    parser.add_argument("--loss", choices=["supervised", "full"], default="supervised")
    parser.add_argument("--counts-only", action="store_true", help="parameter counts only, no step")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("machine: %s, %d threads, torch %s, transformers %s", platform.machine(), torch.get_num_threads(),
                torch.__version__, transformers.__version__)  # fmt: skip
    counts = parameter_counts(real_config())
    logger.info("real-size parameters (meta device): %s, total %s",
                {k: f"{v:,}" for k, v in counts.items()}, f"{sum(counts.values()):,}")  # fmt: skip
    result: dict = {"parameters": counts}
    if args.counts_only:
        return result
    config = real_config(lm_layers=args.lm_layers, vision_layers=args.vision_layers)
    baseline = _rss_gb()
    torch.manual_seed(0)
    model = LlavaOVForConditionalGeneration(config).train()
    inputs, labels = codec_sample(text_tokens=args.text_tokens, answer_tokens=args.answer_tokens)
    step_parameters = sum(p.numel() for p in model.parameters())
    built = _rss_gb()
    timing = training_step(model, inputs, labels, loss_mode=args.loss)
    peak = _rss_gb()
    result.update(
        step_parameters=step_parameters, tokens=int(inputs["input_ids"].shape[1]), lm_layers=args.lm_layers,
        vision_layers=args.vision_layers, loss_mode=args.loss, rss_before_gb=round(baseline, 2),
        rss_model_gb=round(built, 2), rss_peak_gb=round(peak, 2), **{k: round(v, 3) for k, v in timing.items()},
    )  # fmt: skip
    logger.info(
        "step (%d LM + %d encoder layers at real width, %d parameters, %d tokens = 10,368 visual + %d text, fp32, "
        "loss %s): forward %.1f s, backward %.1f s, AdamW %.1f s, total %.1f s; peak RSS %.2f GB "
        "(%.2f GB before the model, %.2f GB with model and inputs)",
        args.lm_layers, args.vision_layers, step_parameters, result["tokens"], args.text_tokens, args.loss,
        timing["forward_s"], timing["backward_s"], timing["optimizer_s"], timing["step_s"], peak, baseline, built,
    )  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
