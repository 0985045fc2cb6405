"""Held-out accuracy of a model on the playground questions (answers known by construction), vs chance.

    python -m llava.playground.evaluate --model_path checkpoints/llava_ov_tiny_sft [--data playground/data]
        [--videos codec|raw]

Scores the video questions (does anything move / which way / what colour) and the image question (shape colour) by
greedy generation; an answer is right when its first word equals the ground truth. The videos are the precomputed
codec mosaics (`--videos codec`, what the default trains on) or the raw clips (`--videos raw`, decoded by the
checkpoint processor's `video_mode`: on-the-fly codec selection or uniform frames). Prints a table per question kind
with the chance level, and returns the figures.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import HfArgumentParser

from llava.data import load_manifest
from llava.data.samples import sample_inputs
from llava.data.synthetic import CHANCE
from llava.model import LlavaOVForConditionalGeneration, LlavaOVProcessor

logger = logging.getLogger("llava.playground.evaluate")


def data_option() -> Any:
    """The `--data` option of the playground commands."""
    return field(default="playground/data", metadata={"help": "the playground data folder"})


def videos_option() -> Any:
    """The `--videos` option of the playground commands: how the clips reach the model."""
    return field(
        default="codec", metadata={"help": "codec (precomputed mosaics) or raw (clips, the processor's video_mode)"}
    )


@dataclass
class EvalArguments:
    model_path: str = field(metadata={"help": "a LLaVA-OV checkpoint folder"})
    data: str = data_option()
    videos: str = videos_option()
    batch_size: int = 16
    max_new_tokens: int = 6
    limit: int | None = field(default=None, metadata={"help": "score only the first N questions"})


VIDEO_FILES = {"codec": "video_eval_codec.jsonl", "raw": "raw_video_eval.json"}


def held_out_questions(data: Path, *, videos: str = "codec") -> list[tuple[dict, str, str]]:
    """(manifest sample, kind, answer) of the held-out video and image questions."""
    if videos not in VIDEO_FILES:
        raise ValueError(f"--videos must be one of {sorted(VIDEO_FILES)}, got {videos!r}")
    raw = {s["id"]: s for s in json.loads((data / "raw_video_eval.json").read_text())}
    questions = []
    for name in (VIDEO_FILES[videos], "image_eval.json"):
        manifest = load_manifest(data / name)
        for i in range(len(manifest)):
            record = manifest[i]
            truth = raw.get(record.sample["id"], record.sample)  # cv_reader keeps only upstream fields
            questions.append((record, truth["kind"], truth["answer"]))
    return questions


def first_word(text: str) -> str:
    words = text.strip().lower().replace(".", " ").replace(",", " ").split()
    return words[0] if words else ""


def evaluate(args: EvalArguments) -> dict[str, dict[str, float]]:
    model = LlavaOVForConditionalGeneration.from_pretrained(args.model_path).eval()
    processor = LlavaOVProcessor.from_pretrained(args.model_path)
    questions = held_out_questions(Path(args.data), videos=args.videos)[: args.limit]
    right, total = defaultdict(int), defaultdict(int)
    for start in tqdm(range(0, len(questions), args.batch_size), desc="held-out questions", unit="batch"):
        chunk = questions[start : start + args.batch_size]
        inputs = [sample_inputs(record) for record, _, _ in chunk]
        batch = processor(
            conversations=[item.conversation[:-1] for item in inputs],  # drop the answer turn
            images=[item.images for item in inputs], videos=[item.videos for item in inputs],
            add_generation_prompt=True, padding_side="left",
        )  # fmt: skip
        with torch.inference_mode():
            output = model.generate(**batch, max_new_tokens=args.max_new_tokens, do_sample=False)
        answers = processor.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for (_, kind, truth), answer in zip(chunk, answers, strict=True):
            total[kind] += 1
            right[kind] += first_word(answer) == truth
    results = {
        kind: {"accuracy": right[kind] / total[kind], "chance": CHANCE[kind], "questions": total[kind]}
        for kind in sorted(total)
    }
    overall_chance = sum(CHANCE[k] * total[k] for k in total) / sum(total.values())
    results["all"] = {"accuracy": sum(right.values()) / sum(total.values()), "chance": overall_chance,
                      "questions": sum(total.values())}  # fmt: skip
    return results


def format_table(results: dict[str, dict[str, float]]) -> str:
    """The held-out table: one row per question kind with accuracy, chance and the number of questions."""
    lines = [f"{'question':<14}{'accuracy':>10}{'chance':>10}{'n':>6}"]
    for kind, row in results.items():
        lines.append(f"{kind:<14}{row['accuracy']:>10.3f}{row['chance']:>10.3f}{row['questions']:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    (args,) = HfArgumentParser(EvalArguments).parse_args_into_dataclasses(args=argv)
    results = evaluate(args)
    print(format_table(results))  # the command's output (the default SFT run ends with it)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
