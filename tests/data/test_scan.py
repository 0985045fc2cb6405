"""The start-up scan (validation + token costs in one parallel pass, cached on disk) and the load-time checks of
issue 10: positions against their grid, `.npy` files read without pickle, the cheap max_length bound."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from llava.data import LlavaOVDataset, load_manifest
from llava.data import scan as scan_module
from llava.data.media import load_positions_file, read_npy_header

from .helpers import make_image

BLOCK = "\n".join(["<image>"] * 4) + "\n"


def conversation(first: str, answer: str = "A square.") -> list[dict]:
    return [{"from": "human", "value": first + "What moves?"}, {"from": "gpt", "value": answer}]


def grid_positions(*, t_values=(0, 5, 9, 20)) -> np.ndarray:
    """4 mosaics of a 4x4 grid (the small processor's codec geometry)."""
    rows, cols = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    return np.concatenate([np.column_stack([np.full(16, t), rows.ravel(), cols.ravel()]) for t in t_values]).astype(
        np.int32
    )


@pytest.fixture()
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    make_image(40, 30, seed=1).save(folder / "a.png")
    for index in range(4):
        make_image(64, 64, seed=10 + index).save(folder / f"m{index}.jpg")
    np.save(folder / "good.npy", grid_positions())
    return folder


def codec(positions: str, **extra) -> dict:
    return {
        "image": [f"m{i}.jpg" for i in range(4)],
        "positions_thw": positions,
        "conversations": conversation(BLOCK),
        **extra,
    }


def write_manifest(path: Path, samples: list) -> Path:
    path.write_text("\n".join(s if isinstance(s, str) else json.dumps(s) for s in samples) + "\n")
    return path


# ---------------------------------------------------------------------------------- positions and .npy files
def test_positions_outside_the_grid_name_file_line_and_value(small_processor, media, tmp_path):
    bad_t = grid_positions()
    bad_t[17] = (1000, 1, 1)
    np.save(media / "bad_t.npy", bad_t)
    bad_h = grid_positions()
    bad_h[3] = (0, -7, 2)
    np.save(media / "bad_h.npy", bad_h)
    path = write_manifest(tmp_path / "d.jsonl", [codec("good.npy"), codec("bad_t.npy"), codec("bad_h.npy")])
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor)
    assert dataset[0]["patch_positions"][0].shape == (64, 3)
    with pytest.raises(ValueError, match=rf"{path}:2: .*bad_t.npy.*row 17 \(t, h, w\) = \(1000, 1, 1\)"):
        dataset[1]
    with pytest.raises(ValueError, match=rf"{path}:3: .*bad_h.npy.*\(0, -7, 2\).*0 <= h, w < 4"):
        dataset[2]
    skipping = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, skip_bad_samples=True)
    assert skipping[1]["source"] == f"{path}:1" and skipping.num_skipped == 2  # both bad ones skipped, wrapped


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (lambda p: np.save(p, np.array([{"t": 1}], dtype=object), allow_pickle=True), "Python objects"),
        (lambda p: p.write_bytes(pickle.dumps([[0, 0, 0]])), "not a .npy file"),
        (lambda p: p.write_bytes(b"garbage" * 10), "not a .npy file"),
        (lambda p: p.write_bytes(open_npy_bytes()[:-40]), "truncated"),
        (lambda p: np.save(p, np.zeros((64, 3), dtype=np.float32)), r"integer array \[K, 3\]"),
        (lambda p: np.save(p, np.zeros((64, 2), dtype=np.int32)), r"integer array \[K, 3\]"),
    ],
)
def test_bad_npy_names_the_file_and_never_suggests_pickle(small_processor, media, tmp_path, content, reason):
    target = media / "bad.npy"
    content(target)
    path = write_manifest(tmp_path / "d.jsonl", [codec("bad.npy")])
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor)
    with pytest.raises(ValueError, match=reason) as error:
        dataset[0]
    assert str(error.value).startswith(f"{path}:1: ") and str(target) in str(error.value)
    assert "allow_pickle" not in str(error.value)
    with pytest.raises(ValueError) as scanned:  # the start-up scan reads the header: the same file named
        dataset.prepare()
    assert str(target) in str(scanned.value) and "allow_pickle" not in str(scanned.value)


def open_npy_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, grid_positions())
    return buffer.getvalue()


def test_npy_reader_matches_numpy_for_int_layouts(tmp_path):
    for dtype, order in ((np.int32, "C"), (np.int64, "F"), (np.uint16, "C")):
        array = np.asfortranarray(grid_positions().astype(dtype)) if order == "F" else grid_positions().astype(dtype)
        np.save(tmp_path / "p.npy", array)
        header = read_npy_header(tmp_path / "p.npy")
        assert header.shape == (64, 3) and header.dtype == np.dtype(dtype) and header.fortran_order == (order == "F")
        np.testing.assert_array_equal(load_positions_file(tmp_path / "p.npy"), grid_positions())


# ---------------------------------------------------------------------------------- max_length before tokenising
def test_overlong_line_rejected_before_tokenisation(small_processor, media, tmp_path, monkeypatch):
    long_text = "moves " * 400_000  # 2.4 MB of text
    path = write_manifest(tmp_path / "d.jsonl", [{"conversations": conversation("", answer=long_text)}])
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, max_length=2048)

    def no_tokenising(*args, **kwargs):
        raise AssertionError("the processor was called on an overlong sample")

    monkeypatch.setattr(small_processor, "process_conversation", no_tokenising)
    with pytest.raises(ValueError, match=rf"{path}:1: at least \d+ tokens .* exceed max_length=2048"):
        dataset[0]


# ---------------------------------------------------------------------------------- the start-up scan
def mixed_samples(count: int) -> list:
    samples = []
    for index in range(count):
        answer = " ".join(["the square moves left"] * (1 + index % 7))
        if index % 3 == 0:
            samples.append({"id": str(index), "image": "a.png", "conversations": conversation("<image>\n", answer)})
        elif index % 3 == 1:
            samples.append({"id": str(index), **codec("good.npy", conversations=conversation(BLOCK, answer))})
        else:
            samples.append({"id": str(index), "conversations": conversation("", answer)})
    return samples


def test_bad_line_stops_before_step_zero_with_file_line(small_processor, media, tmp_path):
    samples = mixed_samples(6)
    samples[4] = {"id": "missing", "image": "nope.png", "conversations": conversation("<image>\n")}
    samples.insert(2, "{broken")
    samples.insert(3, codec("nope.npy"))
    path = write_manifest(tmp_path / "d.jsonl", samples)
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor)
    with pytest.raises(ValueError, match=rf"2 bad sample\(s\), e\.g\. {path}:3: invalid JSON.*{path}:4: .*nope.npy"):
        dataset.prepare()


def test_skip_bad_samples_excludes_and_counts_before_training(small_processor, media, tmp_path, caplog):
    samples = mixed_samples(6)
    samples.insert(2, "{broken")
    samples.insert(5, {"id": "markers", "image": "a.png", "conversations": conversation("<image>\n<image>\n")})
    path = write_manifest(tmp_path / "d.jsonl", samples)
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, skip_bad_samples=True)
    with caplog.at_level("WARNING"):
        dataset.prepare()
    assert dataset.num_excluded == 2 and len(dataset) == 6 and len(dataset.estimated_costs()) == 6
    assert f"{path}:3" in caplog.text and f"{path}:6" in caplog.text
    assert [dataset[i]["id"] for i in range(6)] == [str(i) for i in range(6)]
    assert dataset.num_skipped == 0  # nothing left to skip while training


def test_costs_are_cached_atomically_and_reused(small_processor, media, tmp_path, scan_cache, monkeypatch):
    path = write_manifest(tmp_path / "d.jsonl", mixed_samples(9))
    first = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, max_length=4096)
    result = first.prepare(num_workers=2)
    files = list(scan_cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz" and not result.from_cache
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o666 & ~umask
    exact = [first.token_cost(i) for i in range(len(first))]
    assert first.estimated_costs().tolist() == exact  # a manifest this small is costed exactly

    def no_scan(*args, **kwargs):
        raise AssertionError("scanned again although the cache is valid")

    monkeypatch.setattr(scan_module, "_run_pass", no_scan)
    second = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, max_length=4096)
    assert second.prepare().from_cache and second.estimated_costs().tolist() == exact
    monkeypatch.undo()
    monkeypatch.setenv("LLAVA_DATA_CACHE", str(scan_cache))
    # Another max_length, or a changed manifest: another key, scanned again.
    other = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, max_length=2048)
    assert not other.prepare().from_cache
    write_manifest(path, mixed_samples(10))
    changed = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, max_length=4096)
    assert not changed.prepare().from_cache and len(changed.estimated_costs()) == 10
    assert len(list(scan_cache.iterdir())) == 3 and not list(scan_cache.glob(".*tmp"))


def test_estimate_on_a_larger_manifest_is_close_and_parallel_equals_serial(
    small_processor, media, tmp_path, monkeypatch
):
    monkeypatch.setattr(scan_module, "_CALIBRATION_SAMPLES", 24)
    path = write_manifest(tmp_path / "d.jsonl", mixed_samples(90))
    monkeypatch.setattr(scan_module, "_CHUNK", 16)  # several chunks, so the workers really split the work
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor)
    parallel = dataset.prepare(num_workers=2, use_cache=False)
    serial = scan_module.scan_manifest(dataset.manifest, small_processor, num_workers=1, use_cache=False)
    np.testing.assert_array_equal(parallel.costs(), serial.costs())
    exact = np.asarray([dataset.token_cost(i) for i in range(len(dataset))])
    error = np.abs(dataset.estimated_costs() - exact) / exact
    assert error.mean() < 0.05 and 0 <= parallel.estimate_error < 0.05


def test_overlong_samples_found_by_the_scan(small_processor, media, tmp_path, monkeypatch):
    monkeypatch.setattr(scan_module, "_CALIBRATION_SAMPLES", 4)
    samples = mixed_samples(12)
    samples[7] = {"id": "long", "conversations": conversation("", " ".join(["the square moves left"] * 300))}
    path = write_manifest(tmp_path / "d.jsonl", samples)
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, max_length=400)
    with pytest.raises(ValueError, match=rf"{path}:8: \d+ tokens exceed max_length=400"):
        dataset.prepare()


def test_visual_tokens_over_max_length_found_without_tokenising(small_processor, media, tmp_path, monkeypatch):
    path = write_manifest(tmp_path / "d.jsonl", mixed_samples(6))  # samples 1 and 4: codec, 64 visual tokens
    tokenised = []
    exact_cost = scan_module.exact_cost

    def recording(manifest, processor, index):
        tokenised.append(index)
        return exact_cost(manifest, processor, index)

    monkeypatch.setattr(scan_module, "exact_cost", recording)
    monkeypatch.setattr(scan_module, "_CALIBRATION_SAMPLES", 2)
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor, max_length=60)
    dataset.skip_bad_samples = True
    dataset.prepare()
    visual = [m for m in dataset.scan.messages if "64 visual tokens exceed max_length=60" in m]
    assert [m.split(": ")[0] for m in visual] == [f"{path}:2", f"{path}:5"]
    assert not {1, 4} & set(tokenised)


def test_scan_accepts_and_rejects_what_loading_does(small_processor, media, tmp_path):
    spread = "<image>\nWhat?\n" + "\n".join(["<image>"] * 3) + "\n"
    layouts = [
        codec("good.npy"),  # the regular codec layout
        codec("good.npy", conversations=conversation("<video>\n")),  # one <video> marker
        codec("good.npy", conversations=conversation("")),  # no marker: prepended
        codec("good.npy", conversations=conversation(spread)),  # 4 markers, not consecutive
        codec("good.npy", conversations=conversation(BLOCK + "<video>")),  # both kinds
        codec("good.npy", video="clip.mp4"),  # positions and a raw video
        {"image": "a.png", "conversations": conversation("")},  # marker prepended
        {"image": "a.png", "conversations": conversation("<video>\n")},  # video marker without video
        {"image": ["a.png", "a.png"], "conversations": conversation("<image>\n")},  # 1 marker, 2 images
        {"conversations": [{"from": "gpt", "value": "<image> no user turn"}], "image": "a.png"},
        {"video": "clip.mp4", "image": "a.png", "conversations": conversation("")},  # video and images
        {"conversations": conversation("<image>\n")},  # marker without image
    ]
    path = write_manifest(tmp_path / "d.jsonl", layouts)
    dataset = LlavaOVDataset(load_manifest(path, image_folder=media), small_processor)
    loader_bad = set()
    for index in range(len(dataset)):
        try:
            dataset.inputs(index)
        except ValueError:
            loader_bad.add(index)
    result = scan_module.scan_manifest(dataset.manifest, small_processor, num_workers=1, use_cache=False)
    assert set(result.bad.tolist()) == loader_bad == {3, 5, 7, 8, 10, 11}
