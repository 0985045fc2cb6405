"""Where the direction of motion is lost: linear probes on each stage of a playground-trained checkpoint.

    python benchmarks/direction_probe.py [--model_path checkpoints/llava_ov_tiny_sft] [--data playground/data]

For every moving training / held-out clip (codec mosaics + `positions_thw`), three feature vectors are probed for
the direction (left / right / up / down) with a ridge classifier fitted on the training clips and scored on the
held-out ones:
  1. `positions_thw` alone: the slope of the kept cells' h and w against t (what the codec selection gives);
  2. the encoder's output, mean-pooled over the motion tokens (t > 0) and over the frame-0 tokens;
  3. the projected tokens the LM reads, pooled the same way.
A high score at 1 and a low one at 3 says the model's input carries the direction and its layers drop it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from llava.data import load_manifest
from llava.data.samples import sample_inputs
from llava.data.synthetic import DIRECTIONS
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor
from llava.playground.pretrain_encoder import pooled

logger = logging.getLogger("benchmarks.direction_probe")

STAGES = ("positions_thw alone", "encoder output", "projected tokens")


def clip_features(
    model: LlavaOVForConditionalGeneration, processor: LlavaOVProcessor, data: Path, *, split: str
) -> tuple[list[np.ndarray], np.ndarray]:
    """([positions, encoder, projected] feature matrices, direction labels) of the moving clips of `split`."""
    raw = json.loads((data / f"raw_video_{split}.json").read_text())
    by_id = {sample["id"]: sample for sample in raw}
    manifest = load_manifest(data / f"video_{split}_codec.jsonl")
    features, labels = [[], [], []], []
    for i in tqdm(range(len(manifest)), desc=f"{split} clips", unit="clip"):
        record = manifest[i]
        truth = by_id[record.sample["id"]]
        # training samples hold every question of a clip (direction in `meta`); held-out ones one question each
        direction = truth["meta"]["direction"] if "meta" in truth else truth["answer"] * (truth["kind"] == "direction")
        if not direction:
            continue
        pixel_values, positions = processor.preprocess_video(sample_inputs(record).videos[0])
        with torch.inference_mode():
            encoded = model.model.vision_tower([pixel_values], patch_positions=[positions]).last_hidden_state[0]
            projected = model.model.multi_modal_projector(encoded)
        later = positions[:, 0] > 0  # the cells kept after the full first frame
        cells = positions[later].double().numpy()
        slopes = [np.polyfit(cells[:, 0], cells[:, axis], 1)[0] for axis in (1, 2)]
        features[0].append(np.array(slopes))
        for stage, tokens in ((1, encoded), (2, projected)):
            features[stage].append(pooled(tokens[None], positions[None])[0].numpy())  # as stage 0's read-out
        labels.append(list(DIRECTIONS).index(direction))
    return [np.stack(stage) for stage in features], np.array(labels)


def ridge_probe(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, *, penalty: float = 1e-2) -> np.ndarray:
    """Predicted classes of `test` from a one-vs-rest ridge regression on standardised `train` features."""
    mean, std = train.mean(0), train.std(0) + 1e-6
    design = np.c_[(train - mean) / std, np.ones(len(train))]
    targets = np.eye(len(DIRECTIONS))[train_labels]
    gram = design.T @ design + penalty * len(design) * np.eye(design.shape[1])
    weights = np.linalg.solve(gram, design.T @ targets)
    return np.argmax(np.c_[(test - mean) / std, np.ones(len(test))] @ weights, axis=1)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_path", default="checkpoints/llava_ov_tiny_sft")
    parser.add_argument("--data", default="playground/data")
    args = parser.parse_args(argv)
    model = LlavaOVForConditionalGeneration.from_pretrained(args.model_path).eval()
    processor = LlavaOVProcessor.from_pretrained(args.model_path)
    data = Path(args.data)
    train, train_labels = clip_features(model, processor, data, split="train")
    held_out, held_out_labels = clip_features(model, processor, data, split="eval")
    scores = {}
    print(f"{'probe on':<22}{'held-out':>10}{'chance':>8}{'n':>6}")
    for stage, name in enumerate(STAGES):
        predicted = ridge_probe(train[stage], train_labels, held_out[stage])
        scores[name] = float((predicted == held_out_labels).mean())
        print(f"{name:<22}{scores[name]:>10.3f}{1 / len(DIRECTIONS):>8.3f}{len(held_out_labels):>6}")
    print(f"projected / positions held-out accuracy: {scores[STAGES[2]] / scores[STAGES[0]]:.2f}x")
    return scores


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
