"""LlavaOVDataset: every sample kind through the processor, file:line errors, skip-and-count, token cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llava.data import LlavaOVDataset, load_manifest
from llava.model.llava_ov.processing_llava_ov import IGNORE_INDEX

from .helpers import make_image, write_video

QA = [{"from": "human", "value": "What moves?"}, {"from": "gpt", "value": "A square."}]


def conversation(first: str) -> list[dict]:
    return [{"from": "human", "value": first + "What moves?"}, {"from": "gpt", "value": "A square."}]


@pytest.fixture()
def media(tmp_path: Path) -> Path:
    """Images, a 4-mosaic codec video (64 px mosaics, grid 4) and a raw clip under tmp_path/media."""
    folder = tmp_path / "media"
    (folder / "codec").mkdir(parents=True)
    make_image(40, 30, seed=1).save(folder / "a.png")
    make_image(20, 50, seed=2).save(folder / "b.png")
    for index in range(4):
        make_image(64, 64, seed=10 + index).save(folder / "codec" / f"clip_{index:03d}.jpg")
    rng = np.random.default_rng(0)
    positions = np.concatenate([np.column_stack([np.full(16, t), rng.integers(0, 4, (16, 2))]) for t in (0, 5, 9, 20)])
    np.save(folder / "codec" / "positions_thw.npy", positions.astype(np.int32))
    write_video(folder / "clip.mp4", num_frames=12)
    return folder


def write_manifest(path: Path, samples: list) -> Path:
    path.write_text("\n".join(s if isinstance(s, str) else json.dumps(s) for s in samples) + "\n")
    return path


def mosaic_paths() -> list[str]:
    return [f"codec/clip_{i:03d}.jpg" for i in range(4)]


def test_every_sample_kind(small_processor, media, tmp_path):
    block = "\n".join(["<image>"] * 4) + "\n"
    path = write_manifest(
        tmp_path / "train.jsonl",
        [
            {"id": "img", "image": "a.png", "conversations": conversation("<image>\n")},
            {"id": "multi", "image": ["a.png", "b.png"], "conversations": conversation("<image>\n<image>\n")},
            {
                "id": "codec",
                "image": mosaic_paths(),
                "positions_thw": "codec/positions_thw.npy",
                "conversations": conversation(block),
            },
            {"id": "raw", "video": "clip.mp4", "conversations": conversation("<image>\n")},
            {"id": "text", "conversations": QA},
            {"id": "no-marker", "image": "b.png", "conversations": QA},
        ],
    )
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor)
    pad = small_processor.image_token_id
    expected = {
        "img": ([16], [None]),
        "multi": ([16, 16], [None, None]),
        "codec": ([64], ["pos"]),
        "raw": ([64], ["pos"]),
        "text": ([], []),
        "no-marker": ([16], [None]),
    }
    for index in range(len(dataset)):
        item = dataset[index]
        tokens, positions = expected[item["id"]]
        assert int((item["input_ids"] == pad).sum()) == sum(tokens) == item["num_visual_tokens"]
        assert [p if p is None else "pos" for p in item["patch_positions"]] == positions
        labels = item["labels"]
        assert small_processor.decode(labels[labels != IGNORE_INDEX]) == "A square.<|im_end|>"
        assert item["source"] == f"{path}:{index + 1}"
    codec = dataset[2]
    assert tuple(codec["pixel_values"][0].shape) == (3, 4, 56, 56)
    stored = np.load(media / "codec" / "positions_thw.npy")
    assert torch.equal(codec["patch_positions"][0], torch.from_numpy(stored).long())
    # The 4 "<image>" lines of the codec JSONL stay 4 lines of 16 placeholders (one per mosaic).
    text = small_processor.decode(codec["input_ids"][codec["input_ids"] != pad])
    assert "<|im_start|>user\n\n\n\n\nWhat moves?" in text  # header newline + 3 separators + the trailing one
    ids = codec["input_ids"].tolist()
    first = ids.index(pad)
    assert ids[first : first + 16] == [pad] * 16 and ids[first + 16] != pad
    raw = dataset[3]["patch_positions"][0]
    assert raw[::16, 0].tolist() == [0, 21, 42, 63]


def test_bad_sample_names_file_and_line(small_processor, media, tmp_path):
    path = write_manifest(
        tmp_path / "bad.jsonl",
        [
            {"id": "ok", "conversations": QA},
            {"id": "missing", "image": "nope.png", "conversations": conversation("<image>\n")},
            {"id": "markers", "image": "a.png", "conversations": conversation("<image>\n<image>\n")},
            "{broken",
        ],
    )
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor)
    assert dataset[0]["id"] == "ok"
    with pytest.raises(ValueError, match=rf"{path}:2: .*nope.png"):
        dataset[1]
    with pytest.raises(ValueError, match=rf"{path}:3: 2 <image> markers for 1 images"):
        dataset[2]
    with pytest.raises(ValueError, match=rf"{path}:4: invalid JSON"):
        dataset[3]


def test_skip_bad_samples_counts_and_logs(small_processor, media, tmp_path, caplog):
    path = write_manifest(
        tmp_path / "bad.jsonl",
        [
            {"id": "missing", "image": "nope.png", "conversations": conversation("<image>\n")},
            {"id": "ok", "conversations": QA},
        ],
    )
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, skip_bad_samples=True)
    with caplog.at_level("WARNING"):
        assert dataset[0]["id"] == "ok"
    assert dataset.num_skipped == 1 and f"{path}:1" in caplog.text


def test_max_length_is_an_error_not_a_truncation(small_processor, media, tmp_path):
    path = write_manifest(tmp_path / "d.jsonl", [{"id": "img", "image": "a.png", "conversations": conversation("")}])
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, max_length=20)
    with pytest.raises(ValueError, match="exceed max_length=20"):
        dataset[0]


def test_token_cost_matches_processed_length(small_processor, media, tmp_path):
    block = "\n".join(["<image>"] * 4) + "\n"
    path = write_manifest(
        tmp_path / "d.jsonl",
        [
            {"id": "img", "image": "a.png", "conversations": conversation("<image>\n")},
            {
                "id": "codec",
                "image": mosaic_paths(),
                "positions_thw": "codec/positions_thw.npy",
                "conversations": conversation(block),
            },
            {"id": "raw", "video": "clip.mp4", "conversations": conversation("")},
            {"id": "text", "conversations": QA},
        ],
    )
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor)
    costs = dataset.token_costs()
    for index in range(len(dataset)):
        actual = len(dataset[index]["input_ids"])
        # Visual tokens from headers only; a video's frame separators ("\n" between frames) are not counted. A
        # manifest this small is tokenised entirely by the start-up scan, so the costs are the exact ones.
        assert actual - 3 <= costs[index] <= actual
        assert dataset.token_cost(index) == costs[index]
