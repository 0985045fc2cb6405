"""The start-up scan: every manifest record parsed, validated and costed ONCE, in parallel, and cached on disk.

At 1.54M samples, tokenising every prompt and opening every media file on every rank at every start costs minutes.
Here one pass (worker processes over chunks of records, each chunk read through one open file) checks each record
(JSON, schema, markers vs media, the codec `.npy` header, image headers when the geometry depends on the image size)
and estimates its token cost: visual tokens exactly from headers, text tokens as `a * chars + b * turns + c`, with
a, b, c fitted on a calibration sample that is tokenised exactly (the fit's error on held-out samples is reported, so
the grouping quality stays measured). Samples whose estimate comes near `max_length` are tokenised exactly, so an
overlong sample is found here and not mid-training.

The result is cached under `$LLAVA_DATA_CACHE` (default `~/.cache/llava/data`), keyed by the manifest's content
fingerprint (path, size, mtime of each file and the selected records), the processor geometry, the tokenizer and
`max_length`; it is written atomically, so other ranks and every resume read it instead of scanning again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import PIL.Image
from tqdm.auto import tqdm

from llava.atomic_io import atomic_path
from llava.model.llava_ov.chat_format import IMAGE_MARKER, VIDEO_MARKER, frame_lines
from llava.model.llava_ov.processing_llava_ov import LlavaOVProcessor
from llava.model.llava_ov.video_inputs import positions_grid

from .manifests import Manifest, parse_json, validate_sample
from .media import image_size, positions_rows
from .samples import fixed_image_tokens, inputs_from_sample, text_for_cost, visual_token_cost

logger = logging.getLogger(__name__)

# Bumped whenever what the scan computes changes, so stale cache files are never reused.
SCAN_VERSION = 1
CACHE_ENV = "LLAVA_DATA_CACHE"
# Failures a bad record can cause (see dataset._SAMPLE_ERRORS); anything else is a bug and propagates.
SAMPLE_ERRORS = (
    ValueError,
    OSError,
    KeyError,
    IndexError,
    av.error.FFmpegError,
    PIL.Image.DecompressionBombError,
)
_CALIBRATION_SAMPLES = 512
_CHUNK = 8192
# Estimates above this fraction of max_length are checked by exact tokenisation (the estimate is not a bound).
_EXACT_CHECK_FRACTION = 0.8


def default_cache_dir() -> Path:
    """`$LLAVA_DATA_CACHE`, else `~/.cache/llava/data` (outside the checkout: the scan of a big manifest is data)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "llava" / "data")


@dataclass
class ScanResult:
    """Per-sample results of the scan, arrays over the manifest's records.

    `visual` / `chars` / `turns`: visual tokens, text characters and turns (int32); `bad`: indices of records that
    failed (sorted) with `messages` ("file:line: reason"); `coefficients`: (a, b, c) of the text estimate;
    `estimate_error`: mean |estimated - exact| / exact of the total cost on held-out calibration samples;
    `exact`: {index: exact cost} for the samples that were tokenised exactly."""

    visual: np.ndarray
    chars: np.ndarray
    turns: np.ndarray
    bad: np.ndarray
    messages: list[str]
    coefficients: tuple[float, float, float] = (0.0, 0.0, 0.0)
    estimate_error: float = 0.0
    exact: dict[int, int] = field(default_factory=dict)
    from_cache: bool = False

    def costs(self) -> np.ndarray:
        """Estimated tokens per sample (int64 [N]); exact where known; bad records cost 0."""
        a, b, c = self.coefficients
        text = np.rint(a * self.chars + b * self.turns + c).astype(np.int64)
        costs = self.visual.astype(np.int64) + np.maximum(text, 1)
        for index, cost in self.exact.items():
            costs[index] = cost
        costs[self.bad] = 0
        return costs


def scan_key(manifest: Manifest, processor: LlavaOVProcessor, *, max_length: int | None) -> str:
    """Hex key of a scan: manifest content fingerprint + processor geometry + tokenizer + max_length."""
    tokenizer = processor.tokenizer
    vocab = sorted(tokenizer.get_vocab().items())
    image_processor = processor.image_processor
    geometry = {
        name: getattr(processor, name, None)
        for name in (
            "template", "system_prompt", "image_aspect_ratio", "image_grid_pinpoints", "image_size",
            "num_video_frames", "video_mode", "video_square_size", "video_patch_size", "video_temporal_size",
            "image_token", "patch_size",
        )
    }  # fmt: skip
    geometry["image_processor"] = {
        name: getattr(image_processor, name, None) for name in ("min_pixels", "max_pixels", "patch_size", "size")
    }
    payload = {
        "version": SCAN_VERSION,
        "manifest": manifest.fingerprint(),
        "geometry": geometry,
        "tokenizer": [type(tokenizer).__name__, hashlib.blake2b(json.dumps(vocab).encode()).hexdigest()],
        "max_length": max_length,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:40]


# ------------------------------------------------------------------------------------------------ the pass itself
# Worker processes are forked after these are set: the manifest index and the processor are inherited, not pickled.
_WORKER_STATE: dict[str, Any] = {}


def _scan_chunk(bounds: tuple[int, int]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
    start, stop = bounds
    manifest: Manifest = _WORKER_STATE["manifest"]
    processor: LlavaOVProcessor = _WORKER_STATE["processor"]
    geometry = _Geometry(processor)
    count = stop - start
    visual = np.zeros(count, dtype=np.int32)
    chars = np.zeros(count, dtype=np.int32)
    turns = np.zeros(count, dtype=np.int32)
    errors: list[tuple[int, str]] = []
    for offset, (raw, source, media_root) in enumerate(manifest.read_many(range(start, stop))):
        try:
            sample = validate_sample(parse_json(raw, source=source), source=source)
            visual[offset], chars[offset], turns[offset] = _sample_cost(sample, source, media_root, geometry)
        except SAMPLE_ERRORS as error:
            message = str(error)
            errors.append((start + offset, message if message.startswith(source) else f"{source}: {message}"))
    return start, visual, chars, turns, errors


class _Geometry:
    """What the scan needs of the processor, looked up once per chunk instead of once per sample."""

    def __init__(self, processor: LlavaOVProcessor) -> None:
        self.processor = processor
        self.fixed_image_tokens = fixed_image_tokens(processor)
        self.raw_video_tokens = processor.count_video_tokens()
        self.roots: dict[int, str] = {}
        self.blocks: dict[int, str] = {}
        # `processor.visual` builds its preprocessor per call (its settings may change between calls); during one
        # scan they do not, so the token count of each (frames, grid) is computed once.
        self.video_tokens: dict[tuple[int, int], int] = {}

    def count_video_tokens(self, *, num_frames: int, grid: int) -> int:
        key = (num_frames, grid)
        if key not in self.video_tokens:
            self.video_tokens[key] = self.processor.count_video_tokens(num_frames=num_frames, grid=grid)
        return self.video_tokens[key]

    def root(self, media_root: Path) -> str:
        key = id(media_root)
        if key not in self.roots:
            self.roots[key] = os.fspath(media_root)
        return self.roots[key]


def _sample_cost(sample: dict[str, Any], source: str, media_root: Path, geometry: _Geometry) -> tuple[int, int, int]:
    """(visual tokens, text characters, turns) of a validated sample.

    The regular layouts (codec: T consecutive `<image>` lines for T mosaics; images: one marker per image) are
    checked here directly; any other layout goes through `inputs_from_sample`, the loader's own rules, so the scan
    accepts and rejects exactly what loading does."""
    texts = [turn.get("value", turn.get("content")) for turn in sample["conversations"]]
    strings = [text for text in texts if isinstance(text, str)]
    # One joined string: counting and searching it are single C calls (the markers contain no NUL).
    joined = "\0".join(strings)
    num_chars = len(joined) - max(len(strings) - 1, 0)
    images = sample.get("image", sample.get("images"))
    images = [images] if isinstance(images, str) else images or ()
    num_image_markers = joined.count(IMAGE_MARKER)
    no_video_marker = VIDEO_MARKER not in joined
    positions = sample.get("positions_thw")
    if positions is not None:
        frames = len(images)
        block = geometry.blocks.get(frames)
        if block is None:
            block = geometry.blocks[frames] = frame_lines(frames) if frames else ""
        regular = sample.get("video") is None and no_video_marker and num_image_markers == frames and block in joined
        if not regular:
            inputs_from_sample(sample, source=source, media_root=media_root)  # raises the loader's error, if any
        rows = positions_rows(os.path.join(geometry.root(media_root), positions))
        grid = positions_grid(rows, num_frames=frames)
        return geometry.count_video_tokens(num_frames=frames, grid=grid), num_chars, len(texts)
    if sample.get("video") is None and no_video_marker and num_image_markers == len(images):
        if geometry.fixed_image_tokens is not None:
            return geometry.fixed_image_tokens * len(images), num_chars, len(texts)
        root = geometry.root(media_root)
        total = 0
        for path in images:
            width, height = image_size(os.path.join(root, path))
            total += geometry.processor.count_image_tokens(width=width, height=height)
        return total, num_chars, len(texts)
    inputs = inputs_from_sample(sample, source=source, media_root=media_root)
    return visual_token_cost(inputs, geometry.processor), num_chars, len(texts)


def _run_pass(manifest: Manifest, processor: LlavaOVProcessor, *, num_workers: int, progress: bool) -> ScanResult:
    size = len(manifest)
    visual = np.zeros(size, dtype=np.int32)
    chars = np.zeros(size, dtype=np.int32)
    turns = np.zeros(size, dtype=np.int32)
    errors: list[tuple[int, str]] = []
    chunks = [(start, min(start + _CHUNK, size)) for start in range(0, size, _CHUNK)]
    _WORKER_STATE.update(manifest=manifest, processor=processor)
    bar = tqdm(total=size, desc="scanning the manifest", unit="samples", disable=not progress, mininterval=1.0)
    try:
        if num_workers > 1 and len(chunks) > 1 and "fork" in multiprocessing.get_all_start_methods():
            # fork: the workers inherit the index and the processor (no pickling); they only parse and read headers.
            with multiprocessing.get_context("fork").Pool(min(num_workers, len(chunks))) as pool:
                results = pool.imap_unordered(_scan_chunk, chunks)
                for start, chunk_visual, chunk_chars, chunk_turns, chunk_errors in results:
                    _store(visual, chars, turns, errors, start, chunk_visual, chunk_chars, chunk_turns, chunk_errors)
                    bar.update(len(chunk_visual))
        else:
            for chunk in chunks:
                start, chunk_visual, chunk_chars, chunk_turns, chunk_errors = _scan_chunk(chunk)
                _store(visual, chars, turns, errors, start, chunk_visual, chunk_chars, chunk_turns, chunk_errors)
                bar.update(len(chunk_visual))
    finally:
        bar.close()
        _WORKER_STATE.clear()
    errors.sort()
    return ScanResult(
        visual=visual,
        chars=chars,
        turns=turns,
        bad=np.asarray([index for index, _ in errors], dtype=np.int64),
        messages=[message for _, message in errors],
    )


def _store(
    visual: np.ndarray,
    chars: np.ndarray,
    turns: np.ndarray,
    errors: list[tuple[int, str]],
    start: int,
    chunk_visual: np.ndarray,
    chunk_chars: np.ndarray,
    chunk_turns: np.ndarray,
    chunk_errors: list[tuple[int, str]],
) -> None:
    stop = start + len(chunk_visual)
    visual[start:stop], chars[start:stop], turns[start:stop] = chunk_visual, chunk_chars, chunk_turns
    errors.extend(chunk_errors)


def exact_cost(manifest: Manifest, processor: LlavaOVProcessor, index: int) -> int:
    """Tokens of sample `index` as the LLM sees them (text tokenised, visual tokens from headers)."""
    (raw, source, media_root), *_ = manifest.read_many([index])
    inputs = inputs_from_sample(validate_sample(parse_json(raw, source=source), source=source), source=source,
                                media_root=media_root)  # fmt: skip
    text = text_for_cost(inputs, processor)
    return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"]) + visual_token_cost(inputs, processor)


def _calibrate(manifest: Manifest, processor: LlavaOVProcessor, result: ScanResult, *, seed: int) -> None:
    """Fits text tokens ~ a * chars + b * turns + c on up to 512 good samples tokenised exactly (half fit, half
    held out to measure the error of the total cost estimate). A manifest of at most 512 good samples is costed
    exactly (the estimate is then only reported)."""
    good = np.setdiff1d(np.arange(len(manifest)), result.bad)
    if len(good) == 0:
        return
    picked = np.sort(
        np.random.default_rng(seed).choice(good, size=min(len(good), _CALIBRATION_SAMPLES), replace=False)
    )
    texts = []
    for raw, source, media_root in manifest.read_many(picked):
        inputs = inputs_from_sample(validate_sample(parse_json(raw, source=source), source=source), source=source,
                                    media_root=media_root)  # fmt: skip
        texts.append(text_for_cost(inputs, processor))
    tokens = np.asarray([len(ids) for ids in processor.tokenizer(texts, add_special_tokens=False)["input_ids"]])
    if len(picked) == len(good):
        # A manifest small enough to calibrate on entirely gets exact costs (no estimate needed).
        result.exact.update(
            {int(i): int(t) + int(v) for i, t, v in zip(picked, tokens, result.visual[picked], strict=True)}
        )
    features = np.stack([result.chars[picked], result.turns[picked], np.ones(len(picked))], axis=1).astype(np.float64)
    fit = np.arange(len(picked)) % 2 == 0 if len(picked) >= 4 else np.ones(len(picked), dtype=bool)
    held = ~fit if (~fit).any() else fit
    coefficients, *_ = np.linalg.lstsq(features[fit], tokens[fit].astype(np.float64), rcond=None)
    result.coefficients = tuple(float(v) for v in coefficients)
    estimate = np.maximum(np.rint(features[held] @ coefficients), 1) + result.visual[picked][held]
    exact = tokens[held] + result.visual[picked][held]
    result.estimate_error = float(np.mean(np.abs(estimate - exact) / np.maximum(exact, 1)))


def _check_lengths(manifest: Manifest, processor: LlavaOVProcessor, result: ScanResult, max_length: int) -> None:
    """Exact cost of the samples estimated near or over `max_length`; the ones over it become bad records."""
    costs = result.costs()
    known_bad = set(result.bad.tolist())
    bad, messages = list(result.bad), list(result.messages)
    # Visual tokens alone over the limit: no tokenising needed (e.g. 10368-token codec videos at max_length 2048).
    for index in np.flatnonzero(result.visual > max_length).tolist():
        if index not in known_bad:
            known_bad.add(index)
            bad.append(index)
            messages.append(
                f"{manifest.source(index)}: {int(result.visual[index])} visual tokens exceed max_length={max_length}"
            )
    near = np.flatnonzero(costs > _EXACT_CHECK_FRACTION * max_length).tolist()
    near = [i for i in near if i not in known_bad and (i not in result.exact or result.exact[i] > max_length)]
    for index in near:
        source = manifest.source(index)
        try:
            cost = result.exact[index] if index in result.exact else exact_cost(manifest, processor, index)
        except SAMPLE_ERRORS as error:
            bad.append(index)
            messages.append(f"{source}: {error}")
            continue
        result.exact[index] = cost
        if cost > max_length:
            bad.append(index)
            messages.append(f"{source}: {cost} tokens exceed max_length={max_length}")
    order = np.argsort(np.asarray(bad, dtype=np.int64), kind="stable")
    result.bad = np.asarray(bad, dtype=np.int64)[order]
    result.messages = [messages[i] for i in order]


# ------------------------------------------------------------------------------------------------ the cache
def _save(path: Path, result: ScanResult) -> None:
    """Atomic write (temp file in the same folder + rename) with umask-respecting permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "messages": result.messages,
        "coefficients": result.coefficients,
        "estimate_error": result.estimate_error,
        "exact": {str(k): v for k, v in result.exact.items()},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            visual=result.visual,
            chars=result.chars,
            turns=result.turns,
            bad=result.bad,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )


def _load(path: Path) -> ScanResult | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes())
            return ScanResult(
                visual=data["visual"],
                chars=data["chars"],
                turns=data["turns"],
                bad=data["bad"],
                messages=list(meta["messages"]),
                coefficients=tuple(meta["coefficients"]),
                estimate_error=float(meta["estimate_error"]),
                exact={int(k): int(v) for k, v in meta["exact"].items()},
                from_cache=True,
            )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
        logger.warning("ignoring unreadable scan cache %s (%s): scanning again", path, error)
        return None


def scan_manifest(
    manifest: Manifest,
    processor: LlavaOVProcessor,
    *,
    max_length: int | None = None,
    num_workers: int | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = True,
    seed: int = 0,
) -> ScanResult:
    """The scan of `manifest` (see the module docstring): from the cache when present, else computed and cached.

    Args:
        num_workers: worker processes (default: the CPUs this process may use).
        cache_dir: default `default_cache_dir()`; `use_cache=False` neither reads nor writes it.
    """
    path = None
    if use_cache:
        path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = path / f"scan-{scan_key(manifest, processor, max_length=max_length)}.npz"
        cached = _load(path)
        if cached is not None and len(cached.visual) == len(manifest):
            logger.info("manifest scan read from the cache %s (%d samples)", path, len(manifest))
            return cached
    workers = num_workers if num_workers is not None else len(os.sched_getaffinity(0))
    logger.info("scanning %d samples (%d worker processes): validation and token costs", len(manifest), workers)
    result = _run_pass(manifest, processor, num_workers=workers, progress=progress)
    _calibrate(manifest, processor, result, seed=seed)
    if max_length is not None:
        _check_lengths(manifest, processor, result, max_length)
    logger.info(
        "manifest scan: %d samples, %d bad; text estimate %.3f * chars + %.2f * turns + %.1f, cost error %.1f%%",
        len(manifest), len(result.bad), *result.coefficients, 100 * result.estimate_error,
    )  # fmt: skip
    if path is not None:
        try:
            _save(path, result)
        except OSError as error:
            logger.warning("could not write the scan cache %s (%s): the next start scans again", path, error)
    return result


def describe_bad(result: ScanResult, *, limit: int = 3) -> str:
    """ "N bad sample(s), e.g. file:line: reason; ..." for logs and errors."""
    return f"{len(result.bad)} bad sample(s), e.g. " + "; ".join(result.messages[:limit])


__all__ = ["CACHE_ENV", "ScanResult", "default_cache_dir", "describe_bad", "exact_cost", "scan_key", "scan_manifest"]
