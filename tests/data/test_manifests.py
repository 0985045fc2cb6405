"""Manifests: JSONL byte-offset index, JSON arrays, brace patterns, YAML mixtures, bad lines naming file:line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llava.data.manifests import (
    ConcatManifest,
    JsonArrayManifest,
    JsonlManifest,
    expand_braces,
    load_manifest,
    sampling_indices,
)


def sample(index: int, **extra) -> dict:
    return {
        "id": str(index),
        "conversations": [{"from": "human", "value": f"q{index}"}, {"from": "gpt", "value": "a"}],
        **extra,
    }


def write_jsonl(path: Path, samples: list, *, blank_every: int = 0) -> Path:
    lines = []
    for index, item in enumerate(samples):
        lines.append(item if isinstance(item, str) else json.dumps(item))
        if blank_every and index % blank_every == 0:
            lines.append("")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_is_indexed_by_offsets_and_read_lazily(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [sample(i, image="img.png") for i in range(50)], blank_every=7)
    manifest = load_manifest(path)
    assert isinstance(manifest, JsonlManifest) and len(manifest) == 50
    # The index is two int64 arrays, not parsed samples.
    assert manifest._offsets.dtype == np.int64 and not any(
        isinstance(v, (dict, list)) for v in vars(manifest).values()
    )
    record = manifest[13]
    assert record.sample["id"] == "13" and record.media_root == tmp_path
    # Line numbers account for the blank lines (one after samples 0, 7): sample 13 is on line 16.
    assert record.source == f"{path}:16"


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [sample(0), sample(1), "{not json", sample(3), {"id": "4"}])
    manifest = load_manifest(path)
    assert manifest[1].sample["id"] == "1"
    with pytest.raises(ValueError, match=rf"{path}:3: invalid JSON"):
        manifest[2]
    with pytest.raises(ValueError, match=rf"{path}:5: 'conversations' must be a non-empty list"):
        manifest[4]
    with pytest.raises(ValueError, match=rf"{path}:3: invalid JSON"):
        load_manifest(path, validate=True)


def test_bad_lines_skipped_and_counted(tmp_path, caplog):
    path = write_jsonl(tmp_path / "bad.jsonl", [sample(0), "{not json", sample(2), {"id": "x"}, sample(4)])
    with caplog.at_level("WARNING"):
        manifest = load_manifest(path, on_bad_line="skip")
    assert len(manifest) == 3 and manifest.num_skipped == 2
    assert [manifest[i].sample["id"] for i in range(3)] == ["0", "2", "4"]
    assert f"{path}: skipped 2 bad sample(s)" in caplog.text and f"{path}:2:" in caplog.text


def test_json_array_elements_and_line_numbers(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([sample(i) for i in range(5)], indent=1))
    manifest = load_manifest(path)
    assert isinstance(manifest, JsonArrayManifest) and len(manifest) == 5
    assert manifest[3].sample["id"] == "3"
    line = int(manifest.source(3).rsplit(":", 1)[1])
    assert '"id": "3"' in path.read_text().splitlines()[line - 1 + 1]  # the element opens on `line`, id follows
    (tmp_path / "broken.json").write_text(
        '[\n{"id": 1, "conversations": [{"from": "human", "value": "x"}]},\n{oops}\n]'
    )
    with pytest.raises(ValueError, match=r"broken.json:3: invalid JSON"):
        load_manifest(tmp_path / "broken.json")


def test_brace_patterns(tmp_path):
    assert expand_braces("d{a,b}/x{1,2}.json") == ["da/x1.json", "da/x2.json", "db/x1.json", "db/x2.json"]
    write_jsonl(tmp_path / "part_a.jsonl", [sample(0), sample(1)])
    write_jsonl(tmp_path / "part_b.jsonl", [sample(2)])
    manifest = load_manifest(f"{tmp_path}/part_{{a,b}}.jsonl")
    assert isinstance(manifest, ConcatManifest)
    assert [manifest[i].sample["id"] for i in range(len(manifest))] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("all", list(range(10))), ("first:3", [0, 1, 2]), ("end:2", [8, 9]), ("first:25%", [0, 1, 2]), ("end:10%", [9])],
)
def test_sampling_strategies(strategy, expected):
    assert sampling_indices(strategy, 10, seed=0).tolist() == expected


def test_random_sampling_is_seeded():
    first = sampling_indices("random:4", 100, seed=3)
    assert len(set(first.tolist())) == 4 and first.tolist() == sampling_indices("random:4", 100, seed=3).tolist()
    assert first.tolist() != sampling_indices("random:4", 100, seed=4).tolist()
    assert len(sampling_indices("random:50%", 10, seed=0)) == 5
    with pytest.raises(ValueError, match="sampling_strategy"):
        sampling_indices("middle:3", 10, seed=0)


def test_yaml_mixture(tmp_path):
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "images.jsonl", [sample(i) for i in range(10)])
    write_jsonl(tmp_path / "videos.jsonl", [sample(100 + i) for i in range(6)])
    mixture = tmp_path / "mix.yaml"
    mixture.write_text(
        "datasets:\n"
        "  - json_path: sub/images.jsonl\n    sampling_strategy: first:30%\n"
        "  - json_path: videos.jsonl\n    sampling_strategy: random:2\n    image_folder: media\n"
    )
    manifest = load_manifest(mixture, seed=1)
    ids = [manifest[i].sample["id"] for i in range(len(manifest))]
    assert ids[:3] == ["0", "1", "2"] and len(ids) == 5
    assert all(100 <= int(i) < 106 for i in ids[3:])
    assert manifest[0].media_root == tmp_path / "sub" and manifest[4].media_root == tmp_path / "media"
    assert ids == [load_manifest(mixture, seed=1)[i].sample["id"] for i in range(5)]
    (tmp_path / "empty.yaml").write_text("datasets: []\n")
    with pytest.raises(ValueError, match="non-empty 'datasets'"):
        load_manifest(tmp_path / "empty.yaml")


def test_utf8_bom_accepted_in_json_as_in_jsonl(tmp_path):
    array = tmp_path / "bom.json"
    array.write_bytes(b"\xef\xbb\xbf" + json.dumps([sample(0), sample(1)]).encode())
    lines = tmp_path / "bom.jsonl"
    lines.write_bytes(b"\xef\xbb\xbf" + json.dumps(sample(0)).encode() + b"\n" + json.dumps(sample(1)).encode())
    for path in (array, lines):
        manifest = load_manifest(path)
        assert [manifest[i].sample["id"] for i in range(2)] == ["0", "1"]
        assert [raw for raw, _, _ in manifest.read_many([0, 1])]  # the bulk reader of the start-up scan too


def test_yaml_syntax_error_names_the_yaml(tmp_path):
    mixture = tmp_path / "broken.yaml"
    mixture.write_text("datasets:\n  - json_path: a.jsonl\n   sampling_strategy: [all\n")
    with pytest.raises(ValueError, match=rf"{mixture}: invalid YAML"):
        load_manifest(mixture)


def test_mixture_entry_errors_name_the_yaml_and_the_entry(tmp_path):
    write_jsonl(tmp_path / "ok.jsonl", [sample(0)])
    write_jsonl(tmp_path / "bad.jsonl", ["{not json"])
    mixture = tmp_path / "mix.yaml"
    mixture.write_text("datasets:\n  - json_path: ok.jsonl\n  - json_path: missing.jsonl\n")
    with pytest.raises(FileNotFoundError, match=rf"{mixture}: datasets\[1\]: .*missing.jsonl"):
        load_manifest(mixture)
    mixture.write_text("datasets:\n  - json_path: ok.jsonl\n    sampling_strategy: middle:3\n")
    with pytest.raises(ValueError, match=rf"{mixture}: datasets\[0\]: sampling_strategy"):
        load_manifest(mixture)
    mixture.write_text("datasets:\n  - json_path: ok.jsonl\n  - json_path: bad.jsonl\n")
    with pytest.raises(ValueError, match=rf"{mixture}: datasets\[1\]: .*bad.jsonl:1: invalid JSON"):
        load_manifest(mixture, validate=True)


def test_unknown_mixture_key_is_an_error_naming_it(tmp_path):
    write_jsonl(tmp_path / "ok.jsonl", [sample(0)])
    mixture = tmp_path / "mix.yaml"
    mixture.write_text("datasets:\n  - json_path: ok.jsonl\n    sampling_stratgy: first:1\n")
    with pytest.raises(ValueError, match=rf"{mixture}: datasets\[0\]: unknown key\(s\) \['sampling_stratgy'\]"):
        load_manifest(mixture)


def test_read_many_and_fingerprint_follow_the_selection(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [sample(i) for i in range(5)], blank_every=2)
    write_jsonl(tmp_path / "b.jsonl", [sample(10 + i) for i in range(3)])
    mixture = tmp_path / "mix.yaml"
    mixture.write_text("datasets:\n  - json_path: a.jsonl\n    sampling_strategy: end:3\n  - json_path: b.jsonl\n")
    manifest = load_manifest(mixture)
    bulk = list(manifest.read_many(range(len(manifest))))
    assert [json.loads(raw)["id"] for raw, _, _ in bulk] == ["2", "3", "4", "10", "11", "12"]
    assert [source for _, source, _ in bulk] == [manifest.source(i) for i in range(len(manifest))]
    first = manifest.fingerprint()
    assert load_manifest(mixture).fingerprint() == first
    mixture.write_text("datasets:\n  - json_path: a.jsonl\n    sampling_strategy: end:2\n  - json_path: b.jsonl\n")
    assert load_manifest(mixture).fingerprint() != first
    write_jsonl(tmp_path / "b.jsonl", [sample(10 + i) for i in range(4)])
    assert load_manifest(tmp_path / "b.jsonl").fingerprint() != JsonlManifest(tmp_path / "a.jsonl").fingerprint()
