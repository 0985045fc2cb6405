"""Training manifests, read lazily (spec: shared/specs/llava_model_and_training.md section 5.5).

Formats:
* `.jsonl`: one sample per line (blank lines skipped). Indexed by byte offsets (int64 numpy arrays), so 1.5M samples
  cost ~24 MB of index instead of 1.5M Python dicts per rank and worker; a line is parsed when it is read.
* `.json`: a JSON array of samples. Elements are located with a streaming decoder; the file text is kept as one
  string (no dicts) and each element is parsed when it is read.
* `prefix{a,b,c}.json(l)`: brace patterns, the files concatenated.
* `.yaml` / `.yml`: a mixture `datasets: [{json_path, sampling_strategy, image_folder?}]` with strategies `all`,
  `first:N`, `end:N`, `random:N` and percentages (`first:10%`), `random` seeded.

Every record carries its source `file:line`; a malformed line or sample gives a `ValueError` naming it, or, with
`on_bad_line="skip"`, is left out of the index and counted (logged once per file with the first few reasons).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

try:
    import orjson as _orjson
except ImportError:  # optional speed-up
    _orjson = None

logger = logging.getLogger(__name__)

OnBadLine = Literal["raise", "skip"]
_BRACES = re.compile(r"\{([^{}]*)\}")
# Keys of a mixture entry; anything else is a typo that would otherwise be silently ignored.
MIXTURE_KEYS = ("json_path", "sampling_strategy", "image_folder")


@dataclass(frozen=True)
class ManifestRecord:
    """One sample as stored: `sample` (the parsed dict), `source` ("file:line" for messages) and `media_root`
    (the folder relative media paths are resolved against)."""

    sample: dict[str, Any]
    source: str
    media_root: Path


def validate_sample(sample: Any, *, source: str) -> dict[str, Any]:
    """Checks the upstream sample schema; returns the sample or raises `ValueError` naming `source`.

    Schema: `conversations` (non-empty list of `{"from", "value"}` or `{"role", "content"}` dicts), optional
    `image` / `images` (a path or a list of paths), `positions_thw` (a path; needs a list of mosaics under
    `image`), `video` (a path), `id`.
    """
    if not isinstance(sample, dict):
        raise ValueError(f"{source}: a sample must be a JSON object, got {type(sample).__name__}")
    conversations = sample.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise ValueError(f"{source}: 'conversations' must be a non-empty list")
    for index, turn in enumerate(conversations):  # runs for every line of the start-up scan: kept lean
        if not isinstance(turn, dict) or ("from" not in turn and "role" not in turn):
            raise ValueError(
                f"{source}: conversations[{index}] must be a dict with 'from'/'value' or 'role'/'content'"
            )
        text = turn["value"] if "value" in turn else turn.get("content")
        if not isinstance(text, (str, list)):
            raise ValueError(f"{source}: conversations[{index}] has no text ('value' or 'content')")
    for key in ("image", "images"):
        value = sample.get(key)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            raise ValueError(f"{source}: '{key}' must be a path or a list of paths")
    for key in ("positions_thw", "video"):
        if sample.get(key) is not None and not isinstance(sample[key], str):
            raise ValueError(f"{source}: '{key}' must be a path")
    if sample.get("positions_thw") is not None and not isinstance(sample.get("image", sample.get("images")), list):
        raise ValueError(f"{source}: 'positions_thw' needs the list of mosaic paths under 'image'")
    return sample


class Manifest:
    """A read-only sequence of `ManifestRecord`s. Subclasses keep an index, not the samples."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> ManifestRecord:
        raise NotImplementedError

    def source(self, index: int) -> str:
        """`file:line` of record `index`, without parsing it."""
        raise NotImplementedError

    def read_many(self, indices: Sequence[int] | np.ndarray) -> Iterator[tuple[bytes | str, str, Path]]:
        """(raw JSON text, source, media_root) of records `indices`, unparsed, for bulk passes that parse and check
        many records at once (one open file instead of one `open()` per record)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Identifies the content: the files (path, size, mtime) and the selection of records. Equal fingerprints
        mean the per-sample start-up scan can be reused."""
        raise NotImplementedError

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"manifest index {index} out of range ({len(self)} records)")
        return index % len(self)


class _BadLineCounter:
    """Decides which entries of one file are kept, collects the skipped ones and logs them once."""

    def __init__(self, path: Path, on_bad_line: OnBadLine, *, validate: bool) -> None:
        self.path, self.on_bad_line, self.count, self.examples = path, on_bad_line, 0, []
        # Entries are checked while indexing only when asked, or when bad ones must be left out of the index.
        self.checking = validate or on_bad_line == "skip"

    def keeps(self, check: Callable[[], object]) -> bool:
        """Runs ``check`` (raising ValueError on a bad entry) when checking; False for a bad entry that is skipped."""
        if not self.checking:
            return True
        try:
            check()
        except ValueError as error:
            self.report(error)
            return False
        return True

    def report(self, error: ValueError) -> None:
        if self.on_bad_line == "raise":
            raise error
        self.count += 1
        if len(self.examples) < 3:
            self.examples.append(str(error))

    def log(self) -> None:
        if self.count:
            logger.warning("%s: skipped %d bad sample(s), e.g. %s", self.path, self.count, "; ".join(self.examples))


class JsonlManifest(Manifest):
    """A `.jsonl` file indexed by byte offsets (blank lines skipped).

    Args:
        path: the file.
        media_root: folder for relative media paths (default: the file's folder).
        validate: parse and schema-check every line while indexing (always on with `on_bad_line="skip"`).
        on_bad_line: `"raise"` (ValueError naming file:line) or `"skip"` (left out of the index, counted in
            `num_skipped`, logged).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        media_root: str | Path | None = None,
        validate: bool = False,
        on_bad_line: OnBadLine = "raise",
    ) -> None:
        self.path = Path(path)
        self.media_root = Path(media_root) if media_root is not None else self.path.parent
        counter = _BadLineCounter(self.path, on_bad_line, validate=validate)
        if not counter.checking:
            # Index only (the start-up scan parses the lines later, in parallel): newlines found with numpy.
            self._offsets, self._lines = _line_index(self.path)
            self.num_skipped = 0
            return
        # array("q") keeps the index at 8 bytes per entry while it grows (a list of ints would be ~5x that).
        offsets = array("q")
        line_numbers = array("q")
        offset = 0
        with self.path.open("rb") as handle:
            for line_number, line in enumerate(handle, start=1):
                check = lambda line=line, n=line_number: _parse_line(line, source=f"{self.path}:{n}")  # noqa: E731
                if line.strip() and counter.keeps(check):
                    offsets.append(offset)
                    line_numbers.append(line_number)
                offset += len(line)
        counter.log()
        self.num_skipped = counter.count
        self._offsets = np.frombuffer(offsets, dtype=np.int64) if offsets else np.zeros(0, dtype=np.int64)
        self._lines = np.frombuffer(line_numbers, dtype=np.int64) if line_numbers else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._offsets)

    def source(self, index: int) -> str:
        return f"{self.path}:{int(self._lines[self._check_index(index)])}"

    def __getitem__(self, index: int) -> ManifestRecord:
        index = self._check_index(index)
        with self.path.open("rb") as handle:
            handle.seek(int(self._offsets[index]))
            line = handle.readline()
        source = self.source(index)
        return ManifestRecord(sample=_parse_line(line, source=source), source=source, media_root=self.media_root)

    def read_many(self, indices: Sequence[int] | np.ndarray) -> Iterator[tuple[bytes, str, Path]]:
        with self.path.open("rb") as handle:
            position = -1
            for index in indices:
                index = self._check_index(int(index))
                offset = int(self._offsets[index])
                if offset != position:  # consecutive records are read without seeking (keeps the read buffer)
                    handle.seek(offset)
                line = handle.readline()
                position = offset + len(line)
                yield line, f"{self.path}:{int(self._lines[index])}", self.media_root

    def fingerprint(self) -> str:
        return _file_fingerprint("jsonl", self.path, self.media_root, len(self))


_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 13, 32]] = True
_BLOCK_BYTES = 1 << 22


def _line_index(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(byte offsets, 1-based line numbers) of the non-blank lines of `path`, int64, found with numpy block by
    block (~10x faster than iterating lines in Python: 1.5M lines index in about a second)."""
    offsets: list[np.ndarray] = []
    numbers: list[np.ndarray] = []
    base, line_base, carry = 0, 0, b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(_BLOCK_BYTES)
            data = carry + block
            if not data:
                break
            view = np.frombuffer(data, dtype=np.uint8)
            ends = np.flatnonzero(view == 10) + 1  # one past each newline
            if not block and (not len(ends) or ends[-1] != len(data)):
                ends = np.append(ends, len(data))  # the last line has no newline
            if len(ends):
                starts = np.concatenate([[0], ends[:-1]])
                # A line starting with a non-blank byte is kept at once; the rare others are checked one by one.
                keep = ~_WHITESPACE[view[np.minimum(starts, len(view) - 1)]]
                for line in np.flatnonzero(~keep).tolist():
                    keep[line] = bool(data[starts[line] : ends[line]].strip())
                offsets.append(starts[keep] + base)
                numbers.append(np.flatnonzero(keep) + 1 + line_base)
                consumed = int(ends[-1])
                line_base += len(ends)
            else:
                consumed = 0
            carry = data[consumed:]
            base += consumed
            if not block:
                break
    if not offsets:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(offsets).astype(np.int64), np.concatenate(numbers).astype(np.int64)


def _parse_line(line: bytes | str, *, source: str) -> dict[str, Any]:
    return validate_sample(parse_json(line, source=source), source=source)


def parse_json(text: bytes | str, *, source: str) -> Any:
    """`json.loads` (orjson when installed: ~3x faster on the start-up scan), errors naming `source`."""
    try:
        if _orjson is not None:
            if isinstance(text, bytes) and text.startswith(b"\xef\xbb\xbf"):
                text = text[3:]  # a UTF-8 BOM (first line of a file written by some editors), as json.loads accepts
            return _orjson.loads(text)
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError and orjson's error are ValueErrors
        raise ValueError(f"{source}: invalid JSON: {error}") from error


def _file_fingerprint(kind: str, path: Path, media_root: Path, count: int) -> str:
    stat = path.stat()
    return f"{kind}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{os.path.abspath(media_root)}:{count}"


class JsonArrayManifest(Manifest):
    """A `.json` file holding an array of samples; elements located once, parsed on access.

    A syntax error that breaks the array itself always raises (the element boundaries are lost); schema errors
    follow `on_bad_line` as in `JsonlManifest` (validation happens while indexing only when asked or skipping).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        media_root: str | Path | None = None,
        validate: bool = False,
        on_bad_line: OnBadLine = "raise",
    ) -> None:
        self.path = Path(path)
        self.media_root = Path(media_root) if media_root is not None else self.path.parent
        # utf-8-sig: a UTF-8 BOM is accepted, as `json.loads` accepts it on the lines of a .jsonl file.
        try:
            self._text = self.path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValueError(f"{self.path}: not UTF-8 text: {error}") from error
        decoder = json.JSONDecoder()
        counter = _BadLineCounter(self.path, on_bad_line, validate=validate)
        spans: list[tuple[int, int]] = []
        lines: list[int] = []
        text = self._text
        line, line_pos = 1, 0  # running line count up to `line_pos`, so finding lines stays linear in file size

        def line_at(pos: int) -> int:
            nonlocal line, line_pos
            line += text.count("\n", line_pos, pos)
            line_pos = pos
            return line

        pos = _skip_space(text, 0)
        if pos >= len(text) or text[pos] != "[":
            raise ValueError(f"{self.path}:{line_at(pos)}: a .json manifest must be a JSON array of samples")
        pos = _skip_space(text, pos + 1)
        if pos < len(text) and text[pos] == "]":
            pos = len(text)
        while pos < len(text):
            source = f"{self.path}:{line_at(pos)}"
            try:
                element, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as error:
                raise ValueError(f"{source}: invalid JSON: {error}") from error
            if counter.keeps(lambda element=element, source=source: validate_sample(element, source=source)):
                spans.append((pos, end))
                lines.append(line)
            pos = _skip_space(text, end)
            if pos < len(text) and text[pos] == ",":
                pos = _skip_space(text, pos + 1)
            elif pos < len(text) and text[pos] == "]":
                break
            else:
                raise ValueError(f"{self.path}:{line_at(min(pos, len(text)))}: expected ',' or ']' in the array")
        counter.log()
        self.num_skipped = counter.count
        self._spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        self._lines = np.asarray(lines, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._spans)

    def source(self, index: int) -> str:
        return f"{self.path}:{int(self._lines[self._check_index(index)])}"

    def __getitem__(self, index: int) -> ManifestRecord:
        index = self._check_index(index)
        start, end = (int(v) for v in self._spans[index])
        source = self.source(index)
        sample = validate_sample(json.loads(self._text[start:end]), source=source)
        return ManifestRecord(sample=sample, source=source, media_root=self.media_root)

    def read_many(self, indices: Sequence[int] | np.ndarray) -> Iterator[tuple[str, str, Path]]:
        for index in indices:
            index = self._check_index(int(index))
            start, end = (int(v) for v in self._spans[index])
            yield self._text[start:end], self.source(index), self.media_root

    def fingerprint(self) -> str:
        return _file_fingerprint("json", self.path, self.media_root, len(self))


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


class SubsetManifest(Manifest):
    """Records `indices` of another manifest (a sampling strategy's result)."""

    def __init__(self, base: Manifest, indices: np.ndarray) -> None:
        self.base, self.indices = base, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def source(self, index: int) -> str:
        return self.base.source(int(self.indices[self._check_index(index)]))

    def __getitem__(self, index: int) -> ManifestRecord:
        return self.base[int(self.indices[self._check_index(index)])]

    def read_many(self, indices: Sequence[int] | np.ndarray) -> Iterator[tuple[bytes | str, str, Path]]:
        return self.base.read_many(self.indices[np.asarray(indices, dtype=np.int64)])

    def fingerprint(self) -> str:
        digest = hashlib.blake2b(self.indices.tobytes(), digest_size=16).hexdigest()
        return f"subset({self.base.fingerprint()};{digest})"


class ConcatManifest(Manifest):
    """Several manifests one after the other."""

    def __init__(self, parts: Sequence[Manifest]) -> None:
        self.parts = list(parts)
        self._ends = np.cumsum([len(part) for part in self.parts], dtype=np.int64)

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def _locate(self, index: int) -> tuple[Manifest, int]:
        index = self._check_index(index)
        part = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[part - 1]) if part else 0
        return self.parts[part], index - start

    def source(self, index: int) -> str:
        part, local = self._locate(index)
        return part.source(local)

    def __getitem__(self, index: int) -> ManifestRecord:
        part, local = self._locate(index)
        return part[local]

    def read_many(self, indices: Sequence[int] | np.ndarray) -> Iterator[tuple[bytes | str, str, Path]]:
        indices = np.asarray(indices, dtype=np.int64) % max(len(self), 1)
        parts = np.searchsorted(self._ends, indices, side="right")
        # Runs of consecutive indices in one part are read together (one open file per run).
        breaks = np.flatnonzero(np.diff(parts)) + 1
        for run in np.split(np.arange(len(indices)), breaks):
            if len(run):
                part = int(parts[run[0]])
                start = int(self._ends[part - 1]) if part else 0
                yield from self.parts[part].read_many(indices[run] - start)

    def fingerprint(self) -> str:
        return "concat(" + ";".join(part.fingerprint() for part in self.parts) + ")"


def sampling_indices(strategy: str, size: int, *, seed: int, source: str = "") -> np.ndarray:
    """Indices kept by a sampling strategy: `all`, `first:N`, `end:N`, `random:N`, N an int or a percentage `P%`
    (ceil(P * size / 100), as upstream). `random` draws without replacement with `seed` (sorted, for read locality).
    """
    strategy = str(strategy).strip()
    if strategy == "all":
        return np.arange(size, dtype=np.int64)
    kind, _, amount = strategy.partition(":")
    if kind not in ("first", "end", "random") or not amount:
        raise ValueError(
            f"{source}sampling_strategy must be all, first:N, end:N or random:N (N or P%), got {strategy!r}"
        )
    try:
        count = math.ceil(float(amount[:-1]) * size / 100) if amount.endswith("%") else int(amount)
    except ValueError as error:
        raise ValueError(f"{source}bad amount in sampling_strategy {strategy!r}") from error
    if count < 0:
        raise ValueError(f"{source}sampling_strategy {strategy!r}: the amount must be >= 0")
    count = min(count, size)
    if kind == "first":
        return np.arange(count, dtype=np.int64)
    if kind == "end":
        return np.arange(size - count, size, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(size, size=count, replace=False)).astype(np.int64)


def expand_braces(pattern: str) -> list[str]:
    """`data{a,b}.json` -> [`dataa.json`, `datab.json`] (upstream multi-file syntax); nested groups expand too."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for option in match.group(1).split(",") for expanded in expand_braces(head + option + tail)]


def load_manifest(
    path: str | Path,
    *,
    image_folder: str | Path | None = None,
    seed: int = 0,
    validate: bool = False,
    on_bad_line: OnBadLine = "raise",
) -> Manifest:
    """Opens a manifest of any supported format (see the module docstring).

    Args:
        path: `.jsonl`, `.json`, a brace pattern of those, or a `.yaml` mixture.
        image_folder: folder relative media paths are resolved against (default: each manifest file's folder;
            a mixture entry's own `image_folder` wins).
        seed: seed of `random:` strategies (entry i uses `seed + i`).
        validate, on_bad_line: see `JsonlManifest`.
    """
    path_str = str(path)
    files = expand_braces(path_str)
    if len(files) > 1:
        return ConcatManifest(
            [
                load_manifest(f, image_folder=image_folder, seed=seed, validate=validate, on_bad_line=on_bad_line)
                for f in files
            ]
        )
    path = Path(path_str)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _load_mixture(path, image_folder=image_folder, seed=seed, validate=validate, on_bad_line=on_bad_line)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    if suffix == ".jsonl":
        return JsonlManifest(path, media_root=image_folder, validate=validate, on_bad_line=on_bad_line)
    if suffix == ".json":
        return JsonArrayManifest(path, media_root=image_folder, validate=validate, on_bad_line=on_bad_line)
    raise ValueError(f"{path}: unknown manifest format (expected .jsonl, .json, .yaml)")


def _load_mixture(
    path: Path, *, image_folder: str | Path | None, seed: int, validate: bool, on_bad_line: OnBadLine
) -> Manifest:
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: invalid YAML: {error}") from error
    entries = config.get("datasets") if isinstance(config, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: a mixture needs a non-empty 'datasets' list")
    parts: list[Manifest] = []
    for number, entry in enumerate(entries):
        where = f"{path}: datasets[{number}]: "
        if not isinstance(entry, Mapping) or not isinstance(entry.get("json_path"), str):
            raise ValueError(f"{where}each entry needs a 'json_path' (a path)")
        unknown = sorted(str(key) for key in entry if key not in MIXTURE_KEYS)
        if unknown:
            raise ValueError(f"{where}unknown key(s) {unknown} (known: {', '.join(MIXTURE_KEYS)})")
        json_path = Path(entry["json_path"])
        if not json_path.is_absolute():
            json_path = path.parent / json_path
        folder = entry.get("image_folder", image_folder)
        if folder is not None and not Path(str(folder)).is_absolute():
            folder = path.parent / str(folder)
        try:
            base = load_manifest(
                json_path, image_folder=folder, seed=seed + number, validate=validate, on_bad_line=on_bad_line
            )
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{where}{error}") from error
        except ValueError as error:
            raise ValueError(f"{where}{error}") from error
        strategy = entry.get("sampling_strategy", "all")
        indices = sampling_indices(strategy, len(base), seed=seed + number, source=where)
        logger.info("%s%s: %d of %d samples (%s)", where, json_path, len(indices), len(base), strategy)
        parts.append(SubsetManifest(base, indices))
    return ConcatManifest(parts)


__all__ = [
    "ConcatManifest",
    "JsonArrayManifest",
    "JsonlManifest",
    "Manifest",
    "ManifestRecord",
    "SubsetManifest",
    "expand_braces",
    "load_manifest",
    "parse_json",
    "sampling_indices",
    "validate_sample",
]
