"""Stage 0 of the playground: motion pretraining of the tiny encoder, before the SFT.

    python -m llava.playground.pretrain_encoder --model_path checkpoints/llava_ov_tiny --data playground/data \
        --output_dir checkpoints/llava_ov_tiny_motion [--steps 1500] [--seed 0]

The real OneVision-Encoder reaches SFT pretrained on video; the tiny checkpoint's encoder is random. Measured on the
default playground (issue 11, 2 CPU cores), joint SFT from a random encoder never learns which way an object moves:
the held-out direction stays at 0.35-0.55 (left/right and up/down told apart, the sign not) for encoder learning
rates 2e-4..1.5e-3, frozen, deeper or wider encoders, 4x the clips and 2x the steps, even with direction-only
extra samples; the encoder output carries no sign (linear probe ~0.5). Yet the positions carry it (probe 0.97) and
the same encoder learns it in ~500 steps from a direct objective on the pooled tokens (held-out 0.92-0.98 with
1,600 moving clips; 0.53-0.62 with 200-400, which it memorises), and an LM reading that encoder learns to answer
with it (0.90). The sign of a motion is a product of a time asymmetry and a space asymmetry in RoPE attention; the
SFT loss reaches the encoder through a random LM and the other questions (colour, shape, "does it move") pull the
attention toward position-free pooling first.

Objective: regress the moving object's displacement direction over the clip, (dx, dy) in {-1, 0, 1} (zero for a
static clip), from a linear read-out of [mean of the tokens after frame 0, mean of the frame-0 tokens], squared
error. Only the playground's training clips are read (never the held-out ones). The read-out is dropped; the
encoder's weights go into a copy of the checkpoint, which the SFT then starts from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import HfArgumentParser

from llava.atomic_io import atomic_folder
from llava.data import load_manifest
from llava.data.samples import sample_inputs
from llava.data.synthetic import DIRECTIONS
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.playground.evaluate import data_option, videos_option

logger = logging.getLogger("llava.playground.pretrain_encoder")


@dataclass
class PretrainArguments:
    model_path: str = field(metadata={"help": "the tiny LLaVA-OV checkpoint folder (its encoder is trained)"})
    output_dir: str = field(metadata={"help": "where the checkpoint with the pretrained encoder is written"})
    data: str = data_option()
    videos: str = videos_option()
    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0


TRAIN_FILES = {"codec": "video_train_codec.jsonl", "raw": "raw_video_train.json"}


def load_clips(
    processor: LlavaOVProcessor, data: str | Path, *, videos: str = "codec"
) -> tuple[list, list, torch.Tensor]:
    """(pixel values, positions, displacement [N, 2]) of every training clip, preprocessed once. `videos`: the
    precomputed codec mosaics, or the raw clips read by the processor's `video_mode` (codec or uniform)."""
    if videos not in TRAIN_FILES:
        raise ValueError(f"videos must be one of {sorted(TRAIN_FILES)}, got {videos!r}")
    data = Path(data)
    meta = {sample["id"]: sample["meta"] for sample in json.loads((data / "raw_video_train.json").read_text())}
    manifest = load_manifest(data / TRAIN_FILES[videos])
    pixels, positions, targets = [], [], []
    for i in tqdm(range(len(manifest)), desc="training clips", unit="clip"):
        record = manifest[i]
        direction = meta[record.sample["id"]]["direction"]
        values, thw = processor.preprocess_video(sample_inputs(record).videos[0])
        pixels.append(values)
        positions.append(thw)
        targets.append(DIRECTIONS[direction] if direction else (0, 0))
    return pixels, positions, torch.tensor(targets, dtype=torch.float32)


def pooled(tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """[mean of the tokens after frame 0, mean of the frame-0 tokens] per clip: tokens [B, L, D] -> [B, 2D]."""
    later = (positions[..., 0] > 0).unsqueeze(-1).to(tokens.dtype)
    first = 1.0 - later
    return torch.cat(
        [(tokens * later).sum(1) / later.sum(1).clamp_min(1), (tokens * first).sum(1) / first.sum(1).clamp_min(1)],
        dim=-1,
    )


def train_encoder(
    tower: torch.nn.Module,
    clips: tuple[list, list, torch.Tensor],
    *,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
) -> list[float]:
    """Fits `tower` (+ a linear read-out, dropped afterwards) to the clips' displacement; returns the loss per step."""
    pixels, positions, targets = clips
    width = tower.config.hidden_size
    readout = torch.nn.Linear(2 * width, 2)
    optimizer = torch.optim.AdamW([*tower.parameters(), *readout.parameters()], lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    tower.train()
    losses = []
    progress = tqdm(range(steps), desc="encoder motion pretraining", unit="step")
    for _ in progress:
        batch = torch.randint(len(targets), (batch_size,)).tolist()
        thw = torch.stack([positions[i] for i in batch])
        tokens = tower([pixels[i] for i in batch], patch_positions=[positions[i] for i in batch]).last_hidden_state
        predicted = readout(pooled(tokens.reshape(len(batch), -1, width), thw))
        loss = torch.nn.functional.mse_loss(predicted, targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
    tower.eval()
    return losses


def pretrain(args: PretrainArguments) -> Path:
    """Stage 0 on the playground's training clips; writes the checkpoint with the trained encoder to `output_dir`."""
    torch.manual_seed(args.seed)
    model = LlavaOVForConditionalGeneration.from_pretrained(args.model_path)
    processor = LlavaOVProcessor.from_pretrained(args.model_path)
    clips = load_clips(processor, args.data, videos=args.videos)
    if len(clips[2]) < args.batch_size:
        raise ValueError(f"{args.data}: {len(clips[2])} training clips, fewer than one batch of {args.batch_size}")
    losses = train_encoder(
        model.model.vision_tower, clips, steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate
    )
    model.eval()
    out = Path(args.output_dir)
    with atomic_folder(out) as scratch:  # a killed run leaves no half-written checkpoint for the next one to reuse
        model.save_pretrained(scratch)  # with its generation config
        processor.save_pretrained(scratch)
    tail = losses[-50:]
    logger.info("wrote %s (encoder pretrained for %d steps, mean loss of the last %d: %.4f)", out, args.steps,
                len(tail), sum(tail) / max(len(tail), 1))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> Path:
    (args,) = HfArgumentParser(PretrainArguments).parse_args_into_dataclasses(args=argv)
    return pretrain(args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
