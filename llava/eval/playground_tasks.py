"""Local lmms-eval tasks on the playground's held-out questions (answers known by construction, so scored exactly).

The task YAMLs in `tasks/` load a one-row placeholder file (lmms-eval needs a `dataset_path`) and `process_docs`
replaces it with the questions of the playground data folder: `$LLAVA_PLAYGROUND_DATA`, else `playground/data`
under the working directory, else the repository checkout's `playground/data`. Build it with
`python playground/make_playground.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

# The playground's answer sets and chance levels (llava/data/synthetic.py, checked by tests/eval/test_tasks.py).
CHOICES = {
    "moves": ["yes", "no"],
    "direction": ["left", "right", "up", "down"],
    "colour": ["red", "green", "blue", "yellow"],
    "shape_colour": ["red", "green", "blue", "yellow"],
}
_MARKERS = ("<video>", "<image>")


def playground_root() -> Path:
    """The playground data folder (see the module docstring); `FileNotFoundError` naming what was tried."""
    candidates = []
    if os.environ.get("LLAVA_PLAYGROUND_DATA"):
        candidates.append(Path(os.environ["LLAVA_PLAYGROUND_DATA"]))
    candidates += [Path.cwd() / "playground" / "data", Path(__file__).resolve().parents[2] / "playground" / "data"]
    for candidate in candidates:
        if (candidate / "raw_video_eval.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"playground data not found in {[str(c) for c in candidates]}: run `python playground/make_playground.py` "
        "or set LLAVA_PLAYGROUND_DATA"
    )


def _question(sample: dict[str, Any]) -> str:
    text = sample["conversations"][0]["value"]
    for marker in _MARKERS:
        text = text.replace(marker, "")
    return text.strip()


def load_questions(source: str) -> list[dict[str, Any]]:
    """Docs of a playground eval file: id, kind, question (no visual marker), answer, choices, media path."""
    root = playground_root()
    docs = []
    for sample in json.loads((root / source).read_text()):
        media = sample.get("video") or sample.get("image")
        docs.append({
            "id": sample["id"], "kind": sample["kind"], "question": _question(sample), "answer": sample["answer"],
            "choices": CHOICES[sample["kind"]], "media": str(root / media), "is_video": "video" in sample,
        })  # fmt: skip
    return docs


def process_docs(dataset: Any) -> Any:
    """Replaces the placeholder rows (`{"source": "<playground file>"}`) with the questions of that file."""
    import datasets

    return datasets.Dataset.from_list(load_questions(dataset[0]["source"]))


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    """A video as its file path (the model picks codec / offline / uniform), an image as a PIL image."""
    if doc["is_video"]:
        return [doc["media"]]
    with Image.open(doc["media"]) as image:
        return [image.convert("RGB")]


def doc_to_text(doc: dict[str, Any]) -> str:
    return doc["question"]


def doc_to_target(doc: dict[str, Any]) -> str:
    return doc["answer"]


def doc_to_choice(doc: dict[str, Any]) -> list[str]:
    return list(doc["choices"])


def doc_to_choice_target(doc: dict[str, Any]) -> int:
    return doc["choices"].index(doc["answer"])


def first_word(text: str) -> str:
    """Lower-cased first word without punctuation (how the playground answers are compared)."""
    words = text.strip().lower().replace(".", " ").replace(",", " ").split()
    return words[0] if words else ""


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    """Exact scoring: right when the answer's first word is the ground truth; `chance` averages the chance level
    of the questions asked, so the table shows the bar to clear."""
    answer = results[0] if isinstance(results[0], str) else str(results[0])
    return {"accuracy": float(first_word(answer) == doc["answer"]), "chance": 1.0 / len(doc["choices"])}


__all__ = [
    "CHOICES", "doc_to_choice", "doc_to_choice_target", "doc_to_target", "doc_to_text", "doc_to_visual",
    "first_word", "load_questions", "playground_root", "process_docs", "process_results",
]  # fmt: skip
