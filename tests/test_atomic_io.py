"""`llava.atomic_io`: the one atomic writer of the package (temp file in the folder + rename, umask permissions)."""

from __future__ import annotations

import os

import pytest

from llava.atomic_io import atomic_path, write_text


def test_rename_into_place_with_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        target = write_text(tmp_path / "sub" / "out.json", "{}")
    finally:
        os.umask(old)
    assert target.read_text() == "{}"
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_failure_leaves_neither_file_nor_temp(tmp_path):
    (tmp_path / "out.mp4").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.mp4") as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == tmp_path  # writers that pick a format by suffix still work
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert (tmp_path / "out.mp4").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_atomic_folder_replaces_the_old_folder_only_when_complete(tmp_path):
    from llava.atomic_io import atomic_folder

    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as scratch:
        (scratch / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    old = os.umask(0o022)
    try:
        with atomic_folder(target) as scratch:
            (scratch / "config.json").write_text("{}")
    finally:
        os.umask(old)
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]
    assert target.stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
