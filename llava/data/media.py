"""Media checks of the data pipeline that never decode: `.npy` headers read by hand (no pickle, errors naming the
file), codec positions loaded safely and validated against their grid, image sizes from headers.

`np.load` is not used on manifest files: its errors name no file and suggest `allow_pickle=True`, which would run
arbitrary code from a data file. Here a `.npy` is read as header + raw integer data, and any other content (pickled
object arrays, garbage, truncation) is a `ValueError` naming the path.
"""

from __future__ import annotations

import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image

_NPY_MAGIC = b"\x93NUMPY"
_HEADER_RE = {
    "descr": re.compile(r"""['"]descr['"]\s*:\s*['"]([^'"]+)['"]"""),
    "fortran_order": re.compile(r"""['"]fortran_order['"]\s*:\s*(True|False)"""),
    "shape": re.compile(r"""['"]shape['"]\s*:\s*\(([^)]*)\)"""),
}
# Integer dtypes a positions file may hold (the codec writer uses int32; int64 and unsigned are accepted).
_INTEGER_KINDS = ("i", "u")
_HEADERS: dict[bytes, NpyHeader] = {}


@dataclass(frozen=True)
class NpyHeader:
    """What a `.npy` header says: `dtype`, `shape`, `fortran_order` and where the data starts (`data_offset`)."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    data_offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_npy_header(path: str | Path) -> NpyHeader:
    """Parses the header of a `.npy` file (one small read). Raises `ValueError` naming `path` for anything that is
    not a plain numeric array (object arrays are pickled Python data and are refused) or whose data is truncated."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot open the .npy file: {error.strerror}") from error
    try:
        head = os.read(fd, 4096)
        if len(head) < 10 or not head.startswith(_NPY_MAGIC):
            raise ValueError(f"{path}: not a .npy file (no NUMPY magic)")
        major = head[6]
        if major == 1:
            (length,), start = struct.unpack("<H", head[8:10]), 10
        elif major in (2, 3):
            if len(head) < 12:
                raise ValueError(f"{path}: truncated .npy header")
            (length,), start = struct.unpack("<I", head[8:12]), 12
        else:
            raise ValueError(f"{path}: unsupported .npy format version {major}")
        if start + length > len(head):
            head += os.read(fd, start + length - len(head))
        if start + length > len(head):
            raise ValueError(f"{path}: truncated .npy header")
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    raw = head[: start + length]
    header = _HEADERS.get(raw)
    if header is None:  # the files of one dataset share a few headers: each is parsed once
        header = _parse_npy_header(raw[start:].decode("latin1"), start + length, path)
        if len(_HEADERS) < 4096:
            _HEADERS[raw] = header
    if size < header.data_offset + header.nbytes:
        raise ValueError(
            f"{path}: truncated .npy: {size - header.data_offset} data bytes, {header.nbytes} expected for "
            f"{header.dtype} {list(header.shape)}"
        )
    return header


def _parse_npy_header(text: str, data_offset: int, path: str | Path) -> NpyHeader:
    fields = {key: pattern.search(text) for key, pattern in _HEADER_RE.items()}
    if any(match is None for match in fields.values()):
        raise ValueError(f"{path}: malformed .npy header {text.strip()!r}")
    descr = fields["descr"].group(1)
    try:
        dtype = np.dtype(descr)
    except TypeError as error:
        raise ValueError(f"{path}: unknown .npy dtype {descr!r}") from error
    if dtype.hasobject or dtype.kind not in "biufc":
        raise ValueError(f"{path}: the .npy holds Python objects or non-numeric data ({descr}), not a numeric array")
    try:
        shape = tuple(int(dim) for dim in fields["shape"].group(1).split(",") if dim.strip())
    except ValueError as error:
        raise ValueError(f"{path}: malformed .npy shape {fields['shape'].group(1)!r}") from error
    return NpyHeader(dtype, shape, fields["fortran_order"].group(1) == "True", data_offset)


def positions_rows(path: str | Path) -> int:
    """Rows K of a positions file (header only), checking it is an integer array [K, 3]."""
    header = read_npy_header(path)
    _check_positions_header(header, path)
    return header.shape[0]


def _check_positions_header(header: NpyHeader, path: str | Path) -> None:
    if header.dtype.kind not in _INTEGER_KINDS or len(header.shape) != 2 or header.shape[1] != 3:
        raise ValueError(
            f"{path}: positions_thw must be an integer array [K, 3], got {header.dtype} {list(header.shape)}"
        )


def load_positions_file(path: str | Path) -> np.ndarray:
    """A positions `.npy` as int64 [K, 3], read without pickle; `ValueError` naming `path` when it is not one."""
    header = read_npy_header(path)
    _check_positions_header(header, path)
    with open(path, "rb") as handle:
        handle.seek(header.data_offset)
        data = handle.read(header.nbytes)
    if len(data) < header.nbytes:  # truncated since the header was read
        raise ValueError(f"{path}: truncated .npy: {len(data)} data bytes, {header.nbytes} expected")
    array = np.frombuffer(data, dtype=header.dtype)
    array = array.reshape(header.shape, order="F" if header.fortran_order else "C")
    return array.astype(np.int64)


def check_positions(positions: np.ndarray, *, grid: int, temporal_size: int, where: str) -> None:
    """Every (t, h, w) inside the grid: 0 <= t < temporal_size, 0 <= h, w < grid. The first offending row is named
    in the `ValueError` (prefixed with `where`, e.g. "file:line: positions_thw x.npy")."""
    limits = np.array([temporal_size, grid, grid], dtype=np.int64)
    bad = np.flatnonzero(((positions < 0) | (positions >= limits)).any(axis=1))
    if len(bad):
        row = int(bad[0])
        t, h, w = (int(v) for v in positions[row])
        raise ValueError(
            f"{where}: row {row} (t, h, w) = ({t}, {h}, {w}) is outside the grid "
            f"(0 <= t < {temporal_size}, 0 <= h, w < {grid}); {len(bad)} bad row(s)"
        )


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image from its header: PNG read directly (one small read), others through PIL's lazy
    open (header only, no decode)."""
    with open(path, "rb") as handle:
        head = handle.read(24)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height)
        handle.seek(0)
        with PIL.Image.open(handle) as image:
            return image.size


__all__ = [
    "NpyHeader",
    "check_positions",
    "image_size",
    "load_positions_file",
    "positions_rows",
    "read_npy_header",
]
