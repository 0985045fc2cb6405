"""`select_patches`: one streaming decode of a video -> kept (t, h, w) cells, scores and mosaics (spec 1-6, 14).

Memory is bounded by the sampled frames, not the video length: the loop keeps the letterboxed RGB content of the
`num_frames` sampled frames, a reference to the last anchor and previous frame (motion compensation) and the
sampled frames that wait for a later reference (B-frames need the next frames up to the next anchor; frames
without motion vectors and P-frames that may be intra-heavy the next frame) or for the energy thread (at most
BATCH ready plus MAX_PENDING batches), with their work-resolution luma; at most MAX_PIXEL_JOBS decoded frames wait
for the pixel thread, and below IDLE_CANVAS_PIXELS (on IDLE_CANVAS_CORES cores) at most
MAX_WAITING_CANVASES sampled frames (MAX_WAITING_CANVAS_BYTES) wait for an idle helper to store their canvas.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from . import kernels
from .decode import (
    PICT_I,
    PICT_P,
    ThreadScalers,
    VideoInfo,
    at_first_size,
    frame_orientation,
    iter_indexed_frames,
    luma_in_place,
    luma_samples,
    motion_records,
    nearest_decoded,
    probe_video,
    process_cores,
)
from .errors import VideoReadError
from .geometry import Letterbox, letterbox, valid_cell_mask, valid_cell_ranges
from .motion_estimation import frame_motion
from .motion_vectors import field_blocks, motion_fields
from .packing import letterbox_canvas, pack_mosaics
from .planar import PlanarFrames
from .process_settings import keep_freed_memory_mapped
from .residual import box_downsample, highpass_residual, mc_residual, vectors_on_work_grid
from .saliency import (
    PERCENTILE_SAMPLES,
    EnergyConfig,
    cell_scores,
    compensate_motion,
    fuse_cells,
    median,
    normalise_batch,
)
from .selection import Selection, select_topk, visible_indices

logger = logging.getLogger(__name__)

INTRA_HEAVY = 0.5  # inter frames with more intra blocks than this are treated like I-frames (scene cuts)
BUSY_FIELD = 0.3  # share of non-zero vectors above which a field is treated like camera motion
BATCH = 8  # samples whose energies are computed together (numpy's per-call cost dominates at work resolution)
MAX_PENDING = 2  # batches queued for the energy thread before decoding waits
MAX_PIXEL_JOBS = 4  # sampled frames queued for the pixel thread before decoding waits
# Frames of at least this many pixels get their work luma on the pixel thread (`_Session.work_luma`).
OFFLOAD_LUMA_PIXELS = 500_000
# Canvases of smaller frames (up to 960x540) are stored when the energy thread is idle, not on the pixel thread
# (`keep_canvas`), where this process has two cores (one for decoding, one the helpers share): 6 % faster at 540p
# (median of 13), no faster at 720p, where 64 waiting frames took 33 MB more.
IDLE_CANVAS_PIXELS = 600_000
IDLE_CANVAS_CORES = 2
# Sampled frames whose canvases wait for that (past it they go to the pixel thread): this many frames at most, and
# at most this many bytes of decoded frames: all 64 of the default T for 8-bit 4:2:0 up to 960x540 (fewer for
# 10-bit or 4:4:4 frames). 32 frames were 2-4 % slower on 3-5 s 360p-480p clips, 8 another 6 % slower.
MAX_WAITING_CANVASES = 64
MAX_WAITING_CANVAS_BYTES = 64 << 20
REORDER_SLACK = 8  # frames decoded past the last sampled one when some sampled frame has not come (`_decode_loop`)
WORK_FACTORS = (1, 2, 4, 8, 16)  # luma downscales of the analysis (`_Session.setup`)


def submit_bounded(pool: ThreadPoolExecutor, jobs: list[Future], fn: Callable, *args, limit: int) -> Future:
    """`pool.submit(fn, *args)`, appended to `jobs`, then wait for the oldest unfinished job while more than `limit`
    are queued: back-pressure, so the memory held by queued work does not depend on thread scheduling."""
    job = pool.submit(fn, *args)
    jobs.append(job)
    pending = [queued for queued in jobs[-2 * limit :] if not queued.done()]
    if len(pending) > limit:
        pending[0].result()
    return job


Luma = np.ndarray | Future  # work-resolution luma, or its job on the pixel thread


def _ready(luma: Luma | None) -> np.ndarray | None:
    return luma.result() if isinstance(luma, Future) else luma


def frame_kind(records: np.ndarray, *, height: int, width: int, margin: float = 0.1) -> tuple[bool, bool]:
    """`(later, surely_inter)` of a frame's motion vectors: whether some block is predicted from a later frame (a
    B-frame), and `surely_inter`, from the records' bytes in one compiled pass where it can (a structured-array
    field per question took 30-40 us a frame on the decoding thread)."""
    mb_rows, mb_cols = -(-height // 16), -(-width // 16)
    cover = kernels.macroblock_cover(records, mb_rows=mb_rows, mb_cols=mb_cols)
    if cover is None:
        return bool(np.any(records["source"] > 0)), surely_inter(records, height=height, width=width, margin=margin)
    coded, later = cover
    return later, _mostly_coded(coded, mb_rows * mb_cols, margin=margin)


def surely_inter(records: np.ndarray, *, height: int, width: int, margin: float = 0.1) -> bool:
    """Whether a frame's list-0 vectors cover so much of it that `_Session._route` cannot find it intra-heavy: the
    share of 16x16 macroblocks holding no vector (a macroblock is intra or inter as a whole in these codecs) is
    below INTRA_HEAVY by `margin`. Conservative: a frame it passes over still gets its next frame, and one it lets
    through wrongly would fall back to the previous frame, never fail."""
    mb_rows, mb_cols = -(-height // 16), -(-width // 16)
    rows = np.clip(records["dst_y"].astype(np.int64) // 16, 0, mb_rows - 1)
    cols = np.clip(records["dst_x"].astype(np.int64) // 16, 0, mb_cols - 1)
    coded = np.count_nonzero(np.bincount(rows * mb_cols + cols, minlength=mb_rows * mb_cols))
    return _mostly_coded(int(coded), mb_rows * mb_cols, margin=margin)


def _mostly_coded(coded: int, macroblocks: int, *, margin: float) -> bool:
    return 1.0 - coded / macroblocks < INTRA_HEAVY - margin


def sample_frame_ids(num_decoded: int, num_frames: int = 64, *, start: int = 0) -> np.ndarray:
    """int32 [num_frames] = floor(linspace(start, N-1, num_frames)) (spec 3; duplicates when N < num_frames)."""
    if num_decoded <= 0:
        raise ValueError(f"need at least one frame, got {num_decoded}")
    start = min(max(start, 0), num_decoded - 1)
    return np.linspace(start, num_decoded - 1, num_frames, dtype=int).astype(np.int32)


@dataclass
class CodecSelection:
    """Selected patches of one video.

    Attributes:
        visidx_thw: int32 [K, 3] (t, h, w): t=0 in raster order, then the rest by descending score.
        positions_thw: int32 [K, 3], `visidx_thw` sorted by (t, h, w): the mosaic token order.
        frame_ids: int32 [T] decoded-frame index sampled at each t.
        scores: float32 [T, G, G] cell scores (sum of fused energy over each 16x16 canvas cell, 0..patch**2).
        meta: sizes, letterbox, budget, signal path per frame, counts, timings (JSON-serialisable).
    """

    visidx_thw: np.ndarray
    positions_thw: np.ndarray
    frame_ids: np.ndarray
    scores: np.ndarray
    meta: dict
    # Content RGB [Hn, Wn, 3] per distinct frame: a list of arrays, or the pipeline's 4:2:0 store, which makes
    # each frame's RGB when asked for and the mosaics' RGB from the kept cells only.
    frames: PlanarFrames | list[np.ndarray] | None = field(default=None, repr=False)
    frame_of_t: np.ndarray | None = field(default=None, repr=False)

    @property
    def visible_indices(self) -> np.ndarray:
        """int64 [K] flat indices t*G*G + h*G + w of `positions_thw` (eval asset format, spec 9)."""
        return visible_indices(self.positions_thw, self.meta["grid"])

    def mosaics(self) -> list[np.ndarray]:
        """`num_images` uint8 [S, S, 3] RGB mosaics; image 0 is frame t=0 in full (spec 8.4)."""
        if self.frames is None or self.frame_of_t is None:
            raise ValueError("this selection was computed with keep_pixels=False: no pixels to pack")
        pad = self.meta["pad_info"]
        if isinstance(self.frames, PlanarFrames):
            positions = np.asarray(self.positions_thw, dtype=np.int64)
            return list(
                self.frames.mosaics(
                    np.asarray(self.frame_of_t)[positions[:, 0]],
                    cell_rows=positions[:, 1],
                    cell_cols=positions[:, 2],
                    num_images=self.meta["num_images"],
                    patch_size=self.meta["patch_size"],
                    square_size=self.meta["square_size"],
                    pad_top=pad["pad_top"],
                    pad_left=pad["pad_left"],
                )
            )
        return pack_mosaics(
            self.frames,
            self.frame_of_t,
            positions_thw=self.positions_thw,
            num_images=self.meta["num_images"],
            patch_size=self.meta["patch_size"],
            square_size=self.meta["square_size"],
            pad_top=pad["pad_top"],
            pad_left=pad["pad_left"],
        )

    def sampled_frames(self) -> np.ndarray:
        """uint8 [T, S, S, 3] letterboxed RGB canvas of each sampled frame (for visualisation)."""
        if self.frames is None or self.frame_of_t is None:
            raise ValueError("this selection was computed with keep_pixels=False")
        pad = self.meta["pad_info"]
        canvases = [
            letterbox_canvas(f, self.meta["square_size"], pad_top=pad["pad_top"], pad_left=pad["pad_left"])
            for f in self.frames
        ]
        return np.stack([canvases[i] for i in self.frame_of_t])


@dataclass
class _Sample:
    """A sampled frame waiting for its energy (display index `index`, slots `ts`)."""

    index: int
    ts: list[int]
    luma: Luma
    records: np.ndarray | None
    prev_refs: list[Luma]
    prev_frame: Luma | None
    pict_type: int
    next_refs: list[Luma] = field(default_factory=list)
    prev_source: av.VideoFrame | None = None  # block matching: the previous frame, made luma only if no next comes

    def wait_luma(self) -> None:
        """Replace the luma jobs of the pixel thread by their arrays (on the energy thread)."""
        self.luma = _ready(self.luma)
        self.prev_refs = [_ready(r) for r in self.prev_refs]
        self.next_refs = [_ready(r) for r in self.next_refs]
        self.prev_frame = _ready(self.prev_frame)


class _Session:
    """State of one streaming pass; see `select_patches`."""

    def __init__(
        self,
        video: str,
        *,
        num_frames: int,
        square_size: int,
        patch_size: int,
        cfg: EnergyConfig,
        motion_source: str,
        keep_pixels: bool,
    ) -> None:
        self.video = video
        self.num_frames = num_frames
        self.square = square_size
        self.patch = patch_size
        self.grid = square_size // patch_size
        self.cfg = cfg
        self.motion_source = motion_source
        self.keep_pixels = keep_pixels
        self.use_codec = True
        self.box: Letterbox | None = None
        self.rotation = 0
        self.mirror = False
        self.factor = 1
        self.coded = (0, 0)
        self.scores: dict[int, np.ndarray] = {}
        self.paths: dict[int, str] = {}
        self.frames: PlanarFrames | None = None  # content of each distinct sampled frame (`setup`)
        self.frame_row: dict[int, int] = {}
        self._scalers = ThreadScalers()  # (canvases are stored on several threads: `keep_canvas`)
        self.waiting_canvases: deque[tuple[int, av.VideoFrame]] = deque()  # (`keep_canvas`)
        self.idle_canvases = process_cores() == IDLE_CANVAS_CORES
        self.max_waiting_canvases = MAX_WAITING_CANVASES  # (`setup`: fewer for frames of many bytes)
        self._timing_lock = threading.Lock()
        # Grey of frames whose luma is not read in place (`work_luma`: always on the pixel thread, and one reformatter
        # serves the stream as the frame size is fixed).
        self.gray = VideoReformatter()
        self.pixel_worker: ThreadPoolExecutor | None = None  # during `_decode_pass`
        self.pixel_jobs: list[Future] = []
        # (`_decode_pass`: wakes the energy thread while it is idle before its first batch; `touch`: the store is new)
        self.canvas_waits: Callable[..., None] | None = None
        self.timing = defaultdict(float)

    def setup(self, frame: av.VideoFrame, *, distinct: list[int], work_factor: int | None) -> None:
        """Geometry from the first decoded frame (display size after rotation)."""
        self.coded = (frame.height, frame.width)
        self.rotation, self.mirror = frame_orientation(frame)
        h0, w0 = (frame.width, frame.height) if self.rotation in (90, 270) else (frame.height, frame.width)
        self.box = letterbox(h0, w0, out_size=self.square)
        # Work resolution: at least ~4 work pixels per canvas cell side, and a divisor of the 8-px motion block
        # (factor 4 instead of 2 on the demo clips changed the agreement by 0.002 and halved the residual cost;
        # factor 8 from 720p on keeps 4.4-6.7 work pixels per cell and quarters the cost of the warps again).
        cell_px = max(h0, w0) * self.patch / self.square
        # From 1440p (cells of 64+ frame pixels) factor 16 keeps 4.4-6.7 work pixels per cell as well: at 4K, factor 8
        # spent 22 ms of analysis per sampled frame on 13 work pixels per cell side.
        factor = work_factor or max(f for f in WORK_FACTORS if f == 1 or cell_px >= 4 * f)
        # A strip thinner than the factor (8x4096, 2x4096) would have no work row at all: at least one.
        while factor > 1 and min(frame.height, frame.width) < factor:
            factor //= 2
        self.factor = factor
        # The only pixel memory of a run: the content rectangle of each distinct sampled frame (bounded by T, not by
        # the video length), as 4:2:0 planes (`planar`, odd letterbox pads included); as RGB, converted on the pixel
        # thread as they come, where the mosaics cannot be made from the planes (cells of an odd size), or each
        # frame would be converted at the end, on the critical path (10-s PAL clip: 1.48x -> 1.58x of a plain
        # decode, when odd pads took that path).
        planar = PlanarFrames.planes_fit(square_size=self.square, patch_size=self.patch)
        self.frames = PlanarFrames(len(distinct), height=self.box.Hn, width=self.box.Wn, planar=planar)
        self.frame_row = {idx: row for row, idx in enumerate(distinct)}
        frame_bytes = sum(plane.buffer_size for plane in frame.planes)
        self.max_waiting_canvases = min(MAX_WAITING_CANVASES, MAX_WAITING_CANVAS_BYTES // max(frame_bytes, 1))
        if self.keep_pixels and self.canvases_wait(frame) and self.canvas_waits is not None:
            self.canvas_waits(touch=True)

    def canvases_wait(self, frame: av.VideoFrame) -> bool:
        """Whether the canvases of frames of this size wait for the energy thread to be idle (`keep_canvas`)."""
        return self.idle_canvases and frame.width * frame.height < IDLE_CANVAS_PIXELS

    def work_luma(self, frame: av.VideoFrame) -> Luma:
        """Work-resolution luma of a frame; from OFFLOAD_LUMA_PIXELS up, made on the pixel thread. After decoding,
        these box sums over whole frames are the largest cost of the decoding thread (0.4 ms per 720p frame, for
        the sampled frames and their references), and from 720p up that thread is the critical path when the
        decoder runs on one core (one slice per picture: most real footage): select + mosaics went from 1.33x to
        1.13x of a plain decode on a 720p clip, 1.30x to 1.06x at 1080p (median of 9 interleaved runs). Smaller
        frames decode fast and the helper threads are the critical path instead: at 360p the move cost 10 %
        (1.96x -> 2.15x). Luma that is not read in place (RGB, ...: `luma_samples`) goes to the pixel thread at any
        size: its swscale conversion (0.3 ms per 360p frame) made the decoding thread the critical path again (10-s
        10-bit 360p clip when 10-bit luma took that conversion, median of 11 fresh processes: 321 -> 291 ms).
        Bounded like the canvases: at most MAX_PIXEL_JOBS decoded frames wait for that thread."""
        if frame.width * frame.height < OFFLOAD_LUMA_PIXELS and luma_in_place(frame):
            return self._work_luma(frame)
        return submit_bounded(self.pixel_worker, self.pixel_jobs, self._work_luma, frame, limit=MAX_PIXEL_JOBS)

    def _work_luma(self, frame: av.VideoFrame) -> np.ndarray:
        luma, extra = luma_samples(frame, gray=self.gray)
        work = box_downsample(luma, self.factor)
        if extra:
            work *= np.float32(2.0**-extra)  # to the 8-bit scale (a power of two: exact)
        return work

    def keep_canvas(self, index: int, frame: av.VideoFrame) -> None:
        """Letterboxed 4:2:0 content of a sampled frame, made off this thread (swscale runs without the GIL, so it
        overlaps the decoder and the energies). Frames of at least IDLE_CANVAS_PIXELS go to the pixel thread (at
        most MAX_PIXEL_JOBS decoded frames wait for it). Smaller ones wait for the energy thread to be idle
        (`store_waiting_canvases`; before its first batch, as they come): there the helpers are the critical path,
        and the pixel thread and the energy thread sharing the second core held the decoding thread back too (3
        threads wanting 2 cores, and the back-pressure of both queues). A 3-s 360p clip's decoding loop took 85 ms
        with the canvases on the pixel thread, 58 ms without any canvas (a plain decode: 37 ms). Only on
        IDLE_CANVAS_CORES cores (a batch worker: its share of them). On one, every thread shares it: waiting frames
        only grew the decoder's pool (4-s 360p and 5-s 480p clips under `taskset -c 0`: +2 % and +6 % wall, +13 %
        and +23 % page faults); on three or more each thread has a core and the pixel thread stores them beside the
        energies, as for large frames (not measured: the machines this package is measured on have 2 cores)."""
        if not self.keep_pixels:
            return
        if self.canvases_wait(frame) and len(self.waiting_canvases) < self.max_waiting_canvases:
            self.waiting_canvases.append((index, frame))
            if self.canvas_waits is not None:
                self.canvas_waits()
            return
        submit_bounded(self.pixel_worker, self.pixel_jobs, self._store_canvas, index, frame, limit=MAX_PIXEL_JOBS)

    def store_waiting_canvases(self, *, busy: Callable[[], bool] | None = None) -> None:
        """Store the canvases of `keep_canvas` that wait, oldest first, until none is left or `busy()` (any
        number of threads at once: each takes the next frame)."""
        while busy is None or not busy():
            try:
                index, frame = self.waiting_canvases.popleft()
            except IndexError:
                return
            self._store_canvas(index, frame)

    def _store_canvas(self, index: int, frame: av.VideoFrame) -> None:
        t0 = time.perf_counter()
        planes = self._scalers.scaler.planes(
            frame,
            height=self.box.Hn,
            width=self.box.Wn,
            rotation=self.rotation,
            mirror=self.mirror,
            even_rows=not self.frames.planar,
        )
        self.frames.put(self.frame_row[index], planes)
        with self._timing_lock:
            self.timing["pixels_s"] += time.perf_counter() - t0

    def finish(self, samples: list[_Sample]) -> None:
        """Energies of a batch of samples (runs on the energy thread). An unexpected failure of the analysis (a
        geometry or stream no test covered) is reported as `VideoReadError` naming the video and the frames, never
        as a bare numpy IndexError."""
        try:
            for sample in samples:
                sample.wait_luma()
            self._route(samples)
        except VideoReadError:
            raise
        except Exception as err:
            logger.debug("%s: analysis of frames %s failed", self.video, [s.index for s in samples], exc_info=True)
            where = ("frame " if len(samples) == 1 else "frames ") + ", ".join(str(s.index) for s in samples)
            raise VideoReadError(
                self.video,
                "analysis_error",
                detail=f"{where} ({self.coded[1]}x{self.coded[0]}): {type(err).__name__}: {err}",
            ) from err

    def _route(self, samples: list[_Sample]) -> None:
        """Codec vectors when they cover the frame (batched per vector grid), else block matching against the next
        frame (the previous one at the end of the video)."""
        coded = [s for s in samples if s.records is not None and len(s.records)]
        rest = [s for s in samples if s.records is None or not len(s.records)]
        blocks = field_blocks([s.records for s in coded])
        for block in sorted(set(blocks)):
            group = [s for s, b in zip(coded, blocks, strict=True) if b == block]
            fields, has = motion_fields(
                [s.records for s in group], height=self.coded[0], width=self.coded[1], block=block
            )
            predicted = (has[..., 0] | has[..., 1]).reshape(len(group), -1)
            # A frame smaller than one vector block has an empty grid: all intra (block matching), no 0/0 warning.
            intra = 1.0 - np.count_nonzero(predicted, axis=1) / max(predicted.shape[1], 1)
            inter = intra <= INTRA_HEAVY
            if inter.any():
                chosen = [s for s, ok in zip(group, inter, strict=True) if ok]
                # A vector grid finer than the work grid (factor 16 from 1440p): one vector per work pixel for the
                # magnitude as for the residual, which quarters the cost of the compensation and cell sums of the
                # motion map (ground-truth recall unchanged).
                vectors, directions, grid_px = vectors_on_work_grid(
                    fields[inter], has[inter], mv_block=block, factor=self.factor
                )
                self.finish_codec(chosen, vectors, directions, grid_px)
            rest.extend(s for s, ok in zip(group, inter, strict=True) if not ok)
        if rest:
            self._finish_without_vectors(sorted(rest, key=lambda s: s.index))

    def _finish_without_vectors(self, samples: list[_Sample]) -> None:
        # I-frames, scene cuts coded intra, or a codec without vectors (spec 13: upstream scores these with zero
        # motion).
        if self.use_codec and not self.cfg.intra_frame_motion:
            started = time.perf_counter()  # upstream: Mn = 0, residual = intra texture only (spec 4 consequences)
            residual = highpass_residual(np.stack([s.luma for s in samples]), max(1.5 / self.factor, 0.5))
            self._finish(
                samples,
                magnitude=np.zeros((len(samples), 1, 1), np.float32),
                magnitude_step=max(self.coded),
                residual=residual,
                residual_step=self.factor,
                labels=["intra_highpass"] * len(samples),
                started=started,
            )
            return
        # Block matching against the next frame (the previous one at the end of the video).
        pairs = [
            (s, s.next_refs[0], "pixel_next") if s.next_refs else (s, s.prev_frame, "pixel_prev") for s in samples
        ]
        matched = [pair for pair in pairs if pair[1] is not None]
        if matched:
            self.finish_pixel(*(list(column) for column in zip(*matched, strict=True)))
        alone = [s for s, ref, _ in pairs if ref is None]
        if alone:  # a single-frame video: nothing moves
            empty = np.zeros((len(alone), 1, 1), np.float32)
            self._finish(
                alone,
                magnitude=empty,
                magnitude_step=max(self.coded),
                residual=empty,
                residual_step=max(self.coded),
                labels=["single_frame"] * len(alone),
                started=time.perf_counter(),
                mv_floors=np.full(len(alone), max(self.cfg.mv_floor, 2.0)),
            )

    def finish_codec(self, samples: list[_Sample], vectors: np.ndarray, has: np.ndarray, mv_block: int) -> None:
        """Energy from codec motion vectors + motion-compensated residual (spec 4 and 11) of frames sharing one
        vector grid: `vectors` float32 [B, h, w, 4] and `has` bool [B, h, w, 2] from `motion_fields`."""
        started = time.perf_counter()
        # Integer-pixel dead zone (spec 2.3: the upstream reader exports truncated `src - dst`): it keeps sub-pixel
        # jitter out of the per-frame p95 normalisation (quarter-pel magnitudes lowered the agreement with upstream
        # from 0.81 to 0.74 and 0.73 to 0.37 on the demo clips). See EnergyConfig.mv_truncate.
        cfg = self.cfg
        valid = (has[..., 0] | has[..., 1]) if cfg.median_over_coded else np.ones(has.shape[:3], dtype=bool)
        magnitude = compensate_motion(
            vectors[..., 0:2], valid, mode=cfg.mv_compensate, truncate=cfg.mv_truncate, extra_modes=cfg.camera_modes
        )
        only_l1 = has[..., 1] & ~has[..., 0]
        if cfg.l1_weight > 0 and only_l1.any():
            # B-frame blocks predicted from the future only (upstream counts them as still, spec 13.3).
            magnitude_l1 = compensate_motion(
                vectors[..., 2:4], has[..., 1], mode=cfg.mv_compensate, truncate=cfg.mv_truncate
            )
            magnitude = np.where(only_l1, cfg.l1_weight * magnitude_l1, magnitude)
        residual = mc_residual(
            np.stack([s.luma for s in samples]),
            vectors,
            has=has,
            factor=self.factor,
            prev=[s.prev_refs for s in samples],
            nxt=[s.next_refs for s in samples],
            mv_block=mv_block,
            intra=cfg.intra_residual,
        )
        bidirectional = np.ascontiguousarray(has[..., 1]).reshape(len(samples), -1).any(axis=1)
        self._finish(
            samples,
            magnitude=magnitude,
            magnitude_step=mv_block,
            residual=residual,
            residual_step=self.factor,
            labels=["codec_mv_bi" if bi else "codec_mv" for bi in bidirectional.tolist()],
            started=started,
            mv_floors=self._codec_mv_floors(vectors, valid),
        )

    def _codec_mv_floors(self, vectors: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Motion normaliser floor [B] of codec-vector frames. Under camera motion, truncated vectors disagree with
        the camera estimate by +-1 px over the whole background; a higher floor keeps that jitter below real object
        motion. "Moving" also when most blocks carry a non-zero vector around a zero median (B-frames whose vectors
        do not follow the pan, seen on synthetic pans)."""
        cfg = self.cfg
        count = len(vectors)
        if cfg.mv_floor_moving_camera <= cfg.mv_floor:
            return np.full(count, cfg.mv_floor)
        step = 2 if valid[0].size > 4 * PERCENTILE_SAMPLES else 1  # large grids: every other block is plenty
        vectors, valid = vectors[:, ::step, ::step], valid[:, ::step, ::step]
        if valid.all():  # one call for the batch (x and y as contiguous rows: medians partition contiguous data)
            camera_x = np.trunc(vectors[..., 0]).reshape(count, -1)
            camera_y = np.trunc(vectors[..., 1]).reshape(count, -1)
            busy = np.count_nonzero((camera_x != 0) | (camera_y != 0), axis=1) / camera_x.shape[1]
            still = (median(camera_x, axis=1) == 0) & (median(camera_y, axis=1) == 0)
            moving = (busy > BUSY_FIELD) | ~still
        else:
            moving = np.zeros(count, dtype=bool)
            for n in range(count):
                camera = np.trunc(vectors[n][..., 0:2][valid[n]]) if valid[n].any() else np.zeros((1, 2))
                busy = float(np.mean(np.any(camera != 0, axis=1)))
                moving[n] = busy > BUSY_FIELD or bool(np.any(median(camera, axis=0) != 0))
        return np.where(moving, cfg.mv_floor_moving_camera, cfg.mv_floor)

    def finish_pixel(self, samples: list[_Sample], refs: list[np.ndarray], labels: list[str]) -> None:
        """Energy from block matching of each sample against a neighbouring decoded frame (no codec vectors)."""
        started = time.perf_counter()
        motion, residual, step = frame_motion(np.stack([s.luma for s in samples]), np.stack(refs))
        quantum = float(step) / 4 * self.factor  # block matching moves in whole pixels of the matching grid
        step *= self.factor
        magnitude = compensate_motion(
            motion * self.factor, np.ones(motion.shape[:3], bool), mode=self.cfg.mv_compensate, truncate="none"
        )
        # One quantum of jitter is not motion (same reasoning as the integer-pixel codec vectors).
        self._finish(
            samples,
            magnitude=magnitude,
            magnitude_step=step,
            residual=residual,
            residual_step=step,
            labels=labels,
            started=started,
            mv_floors=np.full(len(samples), max(self.cfg.mv_floor, 2 * quantum)),
        )

    def _finish(
        self,
        samples: list[_Sample],
        *,
        magnitude: np.ndarray,
        magnitude_step: int,
        residual: np.ndarray,
        residual_step: int,
        labels: list[str],
        started: float,
        mv_floors: np.ndarray | None = None,
    ) -> None:
        """Normalise the maps [B, h, w] of a batch, sum them per canvas cell and fuse: the scores of the samples'
        frames."""
        cfg = self.cfg
        count = len(samples)
        geometry = {"box": self.box, "patch_size": self.patch, "mode": cfg.resize, "rotation": self.rotation,
                    "mirror": self.mirror}  # fmt: skip
        floors = np.full(count, cfg.mv_floor) if mv_floors is None else mv_floors
        motion_norm = normalise_batch(magnitude, pct=cfg.mv_pct, floors=floors)
        residual_norm = normalise_batch(residual, pct=cfg.res_pct, floors=np.full(count, cfg.res_floor))
        scores = fuse_cells(
            cell_scores(motion_norm, magnitude_step, **geometry),
            cell_scores(residual_norm, residual_step, **geometry),
            cfg=cfg,
        )
        for sample, score, label in zip(samples, scores, labels, strict=True):
            self.scores[sample.index] = score
            self.paths[sample.index] = label
        self.timing["energy_s"] += time.perf_counter() - started


def select_patches(
    video_path: str | Path,
    *,
    num_frames: int = 64,
    num_images: int = 8,
    square_size: int = 576,
    patch_size: int = 16,
    keep_first_full_frame: bool = True,
    budget: int | None = None,
    sample_start_offset: int = 0,
    energy: EnergyConfig | None = None,
    motion_source: str = "auto",
    keep_pixels: bool = True,
    work_factor: int | None = None,
    padding_policy: str = "zero",
) -> CodecSelection:
    """Select the patches of a video where something happens, in one decode pass.

    Args: `num_frames` T (frames at floor(linspace(start, N-1, T)), start = `sample_start_offset`); `num_images`
    mosaics of G*G cells, G = square_size // patch_size, and K = `budget` (default num_images * G*G);
    `keep_first_full_frame` keeps all cells of t=0 (spec 6); `energy` the recipe (`EnergyConfig()` = clean);
    `motion_source` "auto" (codec vectors where exported, block matching for frames without), "codec" (error if
    none) or "pixel"; `keep_pixels` keeps the letterboxed RGB of sampled frames for `mosaics()`; `work_factor`
    luma downscale (1, 2, 4, 8 or 16) of the residual proxy (default from the cell size); `padding_policy` "zero"
    (padding cells rank after every content cell) or "exclude" (never picked).

    Raises:
        VideoReadError: the file is missing, empty, not a video, has no video stream or no decodable frame, changes
            resolution, cannot be analysed, or (padding excluded) has too few content cells.
    """
    started = time.perf_counter()
    keep_freed_memory_mapped()  # the energy pass's temporaries are not faulted in again for every batch
    k_total = check_arguments(
        num_frames=num_frames,
        num_images=num_images,
        square_size=square_size,
        patch_size=patch_size,
        budget=budget,
        keep_first_full_frame=keep_first_full_frame,
        motion_source=motion_source,
        padding_policy=padding_policy,
        work_factor=work_factor,
    )
    info = probe_video(video_path)
    frame_ids = sample_frame_ids(info.num_frames, num_frames, start=sample_start_offset)
    session = _Session(
        str(video_path),
        num_frames=num_frames,
        square_size=square_size,
        patch_size=patch_size,
        cfg=energy or EnergyConfig(),
        motion_source=motion_source,
        keep_pixels=keep_pixels,
    )
    session.use_codec = _use_codec_vectors(info, motion_source=motion_source)
    choose = functools.partial(
        _choose,
        session,
        frame_ids=frame_ids,
        k_total=k_total,
        keep_first_full_frame=keep_first_full_frame,
        exclude_padding=padding_policy == "exclude",
    )
    run = _decode_pass(
        session, info=info, frame_ids=frame_ids, work_factor=work_factor, started=started, choose=choose
    )
    return _assemble(
        session,
        run,
        k_total=k_total,
        num_images=num_images,
        keep_first_full_frame=keep_first_full_frame,
    )


def _use_codec_vectors(info: VideoInfo, *, motion_source: str) -> bool:
    """Whether the codec's motion vectors drive the motion energy (else block matching on decoded frames)."""
    if motion_source == "codec" and not info.exports_motion_vectors:
        raise ValueError(f"{info.path}: codec {info.codec} exports no motion vectors (use motion_source='auto')")
    if not info.exports_motion_vectors and motion_source == "auto":
        logger.info("%s: codec %s exports no motion vectors, using block-matching motion", info.path, info.codec)
    return motion_source != "pixel" and info.exports_motion_vectors


def check_arguments(
    *,
    num_frames: int = 64,
    num_images: int = 8,
    square_size: int = 576,
    patch_size: int = 16,
    budget: int | None = None,
    keep_first_full_frame: bool = True,
    motion_source: str = "auto",
    padding_policy: str = "zero",
    work_factor: int | None = None,
) -> int:
    """Validate the arguments of `select_patches` before any video is opened (a bad value is the caller's error, not
    the video's, and would otherwise surface after a whole decode, or as a ZeroDivisionError); returns K.

    Raises:
        ValueError: naming the argument and the allowed range.
    """
    for name, value in (("num_frames", num_frames), ("num_images", num_images), ("patch_size", patch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(square_size, bool) or not isinstance(square_size, (int, np.integer)) or square_size < patch_size:
        raise ValueError(f"square_size must be an integer of at least patch_size {patch_size}, got {square_size!r}")
    if square_size % patch_size:
        raise ValueError(f"square_size {square_size} is not a multiple of patch_size {patch_size}")
    grid = square_size // patch_size
    cells = grid * grid
    k_total = budget if budget is not None else num_images * cells
    if not 1 <= k_total <= num_images * cells:
        raise ValueError(
            f"budget must be in 1..{num_images * cells} ({num_images} mosaics of {cells} cells), got {k_total}"
        )
    if k_total > num_frames * cells:
        raise ValueError(
            f"budget {k_total} exceeds the {num_frames * cells} cells of {num_frames} sampled frames "
            f"({cells} each): lower num_images or budget, or sample more frames"
        )
    if keep_first_full_frame and k_total < cells:
        raise ValueError(f"budget {k_total} is smaller than the first frame kept whole ({cells} cells)")
    if padding_policy not in ("zero", "exclude"):
        raise ValueError(f"padding_policy must be zero or exclude, got {padding_policy!r}")
    if motion_source not in ("auto", "codec", "pixel"):
        raise ValueError(f"motion_source must be auto, codec or pixel, got {motion_source!r}")
    if work_factor is not None and work_factor not in WORK_FACTORS:
        raise ValueError(f"work_factor must be 1, 2, 4, 8 or 16, got {work_factor!r}")
    return k_total


def needed_frames(sampled: list[int]) -> frozenset[int]:
    """Display indices that may have to be decoded even when no later frame predicts from them: each sampled frame,
    the frame after it (the block-matching partner, see `_NeededFrames`) and the frame before the last one (its
    block-matching partner: it has no next frame). Other non-reference frames are skipped by the decoder. The frame
    before a sample is not needed: as a list-0 candidate it matters only when it is a reference frame, and those
    are always decoded (skipping the others saved 13 % of the decoded frames of B-frame clips, the agreement with
    upstream and the ground-truth recall unchanged)."""
    if not sampled:
        return frozenset()
    last = max(sampled)
    return frozenset({i + d for i in sampled for d in (0, 1)} | ({last - 1} if last > 0 else set()))


class _NeededFrames:
    """The `keep` of the selection's decode (asked once per packet, in decode order, as it goes to the decoder):
    `needed_frames`, less the frame after a sample that does not need it. That frame is the block-matching partner
    of I-frames and intra-heavy P-frames (`_Router._sample`). A B-frame is compared only with later frames decoded
    before it (`_Router._list1_candidate`): when its next frame comes after it in decode order too, it is no
    candidate; a mostly predicted P-frame reads no later frame. A sample is known as a B-frame when its packet
    comes after a packet shown later (reordered), as a mostly predicted P-frame once it has come out of the
    decoder. The frames skipped are non-reference frames only (`skip_frame`). 10-s 360p clip with B-frames: 215
    -> 183 of 300 frames decoded, select + mosaics 5-8 % faster."""

    def __init__(self, sampled: list[int], router: _Router, *, codec_vectors: bool) -> None:
        self.upper = needed_frames(sampled)
        self.router = router
        self.codec_vectors = codec_vectors  # (block matching pairs every sample with its next frame)
        self.reordered: set[int] = set()  # samples whose packet came after that of a later frame
        self.furthest = -1  # the largest display index sent so far

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int) or index < 0:
            return False
        slots = self.router.slots
        self.router.note_sent(index)
        if index in slots and index < self.furthest:
            self.reordered.add(index)
        self.furthest = max(self.furthest, index)
        if index not in self.upper:
            return False
        sample = index - 1
        if index in slots or sample not in slots or not self.codec_vectors:
            return True
        # (A B-frame that turns out to have no list-1 vector and to be mostly intra, a scene cut coded as a
        # B-frame, is compared with the next frame decoded instead, by block matching.)
        return sample not in self.reordered and sample not in self.router.next_unneeded


@dataclass
class _Run:
    """Facts of one decode pass that the assembly of the result needs."""

    info: VideoInfo
    frame_ids: np.ndarray
    slots: dict[int, list[int]]
    missing: list[int]
    num_decoded: int
    pix_fmt: str | None
    use_codec: bool
    t_start: float
    chosen: Future  # of `_Chosen`, made on the energy thread after the last energies (`_decode_pass`)


@dataclass
class _Chosen:
    """The kept cells of a video and what their choice was made from (`_choose`)."""

    selected: Selection
    scores: np.ndarray  # float32 [T, G, G] cell scores of each t
    duplicate_t: np.ndarray  # bool [T], t repeats an earlier t or its frame was never decoded
    frame_row: dict[int, int | None]  # sampled frame -> the decoded frame whose scores it took
    paths: list[str]  # the signal path of each distinct sampled frame
    valid: np.ndarray  # bool [G, G] content cells


class _Router:
    """Routes each decoded frame: luma for the samples waiting on it, a new sample when it is sampled, and the
    list-0 references (last anchor, previous frame) for the next ones. Samples go to `submit` once their later
    references are in: B-frames after the next anchor, other frames after the next frame."""

    def __init__(self, session: _Session, *, slots: dict[int, list[int]], submit: Callable[[_Sample], None]) -> None:
        self.session, self.slots, self.submit = session, slots, submit
        self.anchor: tuple[av.VideoFrame, np.ndarray | None] | None = None
        self.prev: tuple[av.VideoFrame, np.ndarray | None] | None = None
        self.wait_anchor: list[_Sample] = []
        self.wait_frame: list[_Sample] = []
        self.next_unneeded: set[int] = set()  # samples that read no frame after them but a reference (`_NeededFrames`)
        self.sent: dict[int, int] = {}  # display index -> place in decode order, of the packets sent so far
        self.sent_count = 0  # (its entries shown before every waiting sample are dropped: memory flat in length)
        self.shown = -1  # the largest display index routed so far

    def note_sent(self, index: int) -> None:
        """Frame `index` goes to the decoder now (`_NeededFrames`)."""
        if index not in self.sent:
            self.sent[index] = self.sent_count
            self.sent_count += 1
            if len(self.sent) > 4096:  # only frames still to come out, or waiting samples, are asked about
                floor = min([s.index for s in self.pending()] + [self.shown + 1])
                self.sent = {i: place for i, place in self.sent.items() if i >= floor}

    def sent_before(self, index: int, sample: int) -> bool:
        """Whether frame `index` went to the decoder before `sample` (True when either order is unknown)."""
        first, second = self.sent.get(index), self.sent.get(sample)
        return first is None or second is None or first < second

    def _list1_candidate(self, index: int, sample: _Sample) -> bool:
        """Whether frame `index` (after `sample` in display order, before its next anchor) is a list-1 reference
        candidate of the waiting B-frame `sample`: the first such frame decoded before it. A B-frame's references
        are all decoded before it; a frame after it in both orders (the non-reference B-frame after a B-pyramid
        reference, any B-frame after a B-frame without pyramid) cannot be one."""
        return not sample.next_refs and self.sent_before(index, sample.index)

    def pending(self) -> list[_Sample]:
        return self.wait_frame + self.wait_anchor

    def drain(self) -> list[_Sample]:
        """The samples still waiting at the end of the video; those without a next frame get the previous one."""
        for sample in self.pending():
            if sample.prev_source is not None and not sample.next_refs:
                sample.prev_frame = self.session.work_luma(sample.prev_source)
            sample.prev_source = None
        return self.pending()

    def _luma_of(self, ref: tuple[av.VideoFrame, np.ndarray | None] | None) -> np.ndarray | None:
        if ref is None:
            return None
        return ref[1] if ref[1] is not None else self.session.work_luma(ref[0])

    def add(self, index: int, frame: av.VideoFrame) -> None:
        session = self.session
        ptype = int(frame.pict_type)
        is_anchor = ptype in (PICT_I, PICT_P) or not session.use_codec
        # Luma only where a sample uses it: its own frame, the next frame of waiting samples, the next anchor of
        # waiting B-frames (the frames in between are not read).
        needed = (
            index in self.slots
            or self.wait_frame
            or (self.wait_anchor and (is_anchor or any(self._list1_candidate(index, s) for s in self.wait_anchor)))
        )
        luma = session.work_luma(frame) if needed else None
        for sample in self.wait_frame:
            sample.next_refs.append(luma)
            sample.prev_source = None
            self.submit(sample)
        self.wait_frame = []
        for sample in self.wait_anchor:
            # List-1 candidates: the next B-pyramid reference and the next anchor (I/P).
            if is_anchor or self._list1_candidate(index, sample):
                sample.next_refs.append(luma)
            if is_anchor:
                self.submit(sample)
        if is_anchor:
            self.wait_anchor = []
        if index in self.slots:
            self._sample(index, frame, luma=luma, ptype=ptype)
        if is_anchor:
            self.anchor = (frame, luma)
        self.prev = (frame, luma)
        self.shown = max(self.shown, index)

    def _sample(self, index: int, frame: av.VideoFrame, *, luma: np.ndarray, ptype: int) -> None:
        if self.session.use_codec:
            # (No vectors from I-frames, nor from a `same_size_frame`: its vectors belong to another grid.)
            records = motion_records(frame) if ptype != PICT_I else None
            anchor_luma = self._luma_of(self.anchor)
            same = self.anchor is not None and self.prev is not None and self.anchor[0] is self.prev[0]
            prev_luma = anchor_luma if same else self._luma_of(self.prev)
            if self.anchor is not None:
                self.anchor = (self.anchor[0], anchor_luma)
            if self.prev is not None:
                self.prev = (self.prev[0], prev_luma)
            # List-0 candidates: the previous anchor and the previous frame (B-pyramid / multi-reference).
            prev_refs = [anchor_luma] if same else [r for r in (anchor_luma, prev_luma) if r is not None]
            prev_source = None
        else:
            # Block matching pairs a sample with the next frame; the previous one is needed only at the end of the
            # video, so its luma is made then (`drain`), not for every sample.
            records, prev_refs, prev_luma = None, [], None
            prev_source = self.prev[0] if self.prev is not None else None
        sample = _Sample(
            index=index,
            ts=self.slots[index],
            luma=luma,
            records=records,
            prev_refs=prev_refs,
            prev_frame=prev_luma,
            pict_type=ptype,
            prev_source=prev_source,
        )
        self.session.keep_canvas(index, frame)
        later, inter = (False, False)
        if records is not None:
            later, inter = frame_kind(records, height=frame.height, width=frame.width)
        if later:
            self.wait_anchor.append(sample)  # B-frame: needs the next frames up to the next anchor
            self.next_unneeded.add(index)
        elif inter:
            # A P-frame that is mostly predicted takes the codec-vector path, which reads no later frame: ready now
            # (the next frame's luma is not made for it).
            self.next_unneeded.add(index)
            self.submit(sample)
        else:
            # I-frames and intra-heavy P-frames wait for the next frame: the block-matching fallback of intra-heavy
            # frames (scene cuts) compares with it (same shot after a cut).
            self.wait_frame.append(sample)


def _decode_pass(
    session: _Session,
    *,
    info: VideoInfo,
    frame_ids: np.ndarray,
    work_factor: int | None,
    started: float,
    choose: Callable[[dict[int, list[int]]], _Chosen],
) -> _Run:
    """The one decode pass: fills `session.scores` (and pixels).

    Energies of finished samples are computed in batches of BATCH on one helper thread, and the canvases of
    sampled frames (and the work-resolution luma of large frames) on another, or for frames below
    IDLE_CANVAS_PIXELS on the first between its batches, while this thread keeps decoding (numpy, swscale and
    FFmpeg release the GIL). Decoding itself stays on this thread with slice threading (spec 11: frame
    threading corrupts motion vectors); non-reference frames that no sample needs are not decoded at all.
    """
    slots: dict[int, list[int]] = defaultdict(list)
    for t, idx in enumerate(frame_ids.tolist()):
        slots[idx].append(t)
    t_decode0 = time.perf_counter()
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cv_reader_energy")
    session.pixel_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cv_reader_pixels")
    jobs: list[Future] = []
    finished: list[_Sample] = []
    batches = [0, 0]  # energy batches submitted, started
    draining = [False]  # a canvas job of the energy thread before its first batch is queued or running

    def batch_queued() -> bool:
        return batches[0] > batches[1]

    def finish(samples: list[_Sample]) -> None:
        batches[1] += 1
        session.finish(samples)
        # Idle until the next batch: canvases that wait (`keep_canvas`), one at a time (0.2-0.4 ms each at 360p).
        session.store_waiting_canvases(busy=batch_queued)

    def drain(touch: bool = False) -> None:
        try:
            if touch:
                session.frames.touch()
            session.store_waiting_canvases(busy=batch_queued)
        finally:
            draining[0] = False

    def canvas_waits(touch: bool = False) -> None:
        # Before its first batch the energy thread has nothing to do (5-s 480p clip: the first batch starts 18 ms
        # into a 70-ms decode): it stores the canvases that wait until a batch is queued, instead of leaving them for
        # after that batch. Later, `finish` drains them between batches; waking the thread for each canvas there
        # too gained nothing on clips where it is often idle (10-s 360p) and cost job overhead. When the store is
        # made (`touch`), it first writes one byte of each of its pages (`PlanarFrames.touch`), so that the threads
        # storing canvases later do not fault those pages in one by one in their busy time. Fresh processes against
        # d8b4202 (medians of 13): 3-s 360p 0.967x, 6-s 360p 0.996x, 10-s 360p 0.992x, 5-s 852x480 0.962x, 4-s PAL
        # 0.957x, 10-s 320x240 0.995x, 4-s 10-bit 360p 1.003x. (The pixel thread doing it, beside the energy thread
        # storing canvases: 1.05x.)
        if not draining[0] and batches[0] == 0:
            draining[0] = True
            jobs.append(worker.submit(drain, touch))

    def choose_then_drain() -> _Chosen:
        batches[1] += 1
        try:
            return choose(slots)
        finally:
            session.store_waiting_canvases()  # (its share of the canvases still waiting)

    def flush() -> None:
        if not finished:
            return
        batches[0] += 1
        submit_bounded(worker, jobs, finish, list(finished), limit=MAX_PENDING)
        finished.clear()

    def submit(sample: _Sample) -> None:
        finished.append(sample)
        if len(finished) >= BATCH:
            flush()

    router = _Router(session, slots=slots, submit=submit)
    session.canvas_waits = canvas_waits
    try:
        num_decoded, pix_fmt = _decode_loop(session, router, info=info, work_factor=work_factor)
        session.timing["decode_loop_s"] = time.perf_counter() - t_decode0
        for sample in router.drain():  # end of the video: finish with what was seen
            submit(sample)
        flush()
        # The kept cells are chosen on the energy thread right after the last energies (`choose`, a job like a
        # batch: the drain after that batch leaves the canvases to it), beside this thread storing the canvases
        # still waiting; then it takes its share of them. The top-K leaves the serial tail of the video.
        batches[0] += 1
        chosen = worker.submit(choose_then_drain)
        # Two threads for two cores: with the pixel thread as a third, a 6-s 360p clip took 2.5 % longer.
        session.store_waiting_canvases()
        worker.shutdown(wait=True)
        for job in jobs + session.pixel_jobs:
            job.result()  # re-raise any error of the helper threads here
    finally:
        session.canvas_waits = None
        session.waiting_canvases.clear()  # (after an error: the decoded frames are let go)
        worker.shutdown(wait=True, cancel_futures=True)
        session.pixel_worker.shutdown(wait=True, cancel_futures=True)
        session.pixel_worker = None
    session.timing["energy_wait_s"] = time.perf_counter() - t_decode0 - session.timing["decode_loop_s"]
    missing = sorted(set(slots) - set(session.scores))
    if missing:
        logger.warning(
            "%s: %d of %d sampled frames could not be decoded (%s; e.g. a stream cut before a keyframe, or a"
            " truncated or corrupt file): each shows the nearest decoded sampled frame and gives no patches",
            session.video,
            len(missing),
            len(slots),
            ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else ""),
        )
    return _Run(
        info=info,
        frame_ids=frame_ids,
        slots=slots,
        missing=missing,
        num_decoded=num_decoded,
        pix_fmt=pix_fmt,
        use_codec=session.use_codec,
        t_start=started,
        chosen=chosen,
    )


def _decode_loop(
    session: _Session, router: _Router, *, info: VideoInfo, work_factor: int | None
) -> tuple[int, str | None]:
    """Decode until every sampled frame and the later references its energy needs are in; returns (frames
    decoded, pixel format)."""
    slots = router.slots
    last_wanted, pix_fmt, num_decoded = max(slots), None, 0
    unseen = set(slots)  # sampled frames not decoded yet
    backstep = 0  # how far behind the largest index routed so far (`router.shown`) a later frame came
    # Frames of a changed size come scaled to the first size, marked as I-frames: compared by block matching.
    frames = at_first_size(
        iter_indexed_frames(
            session.video,
            export_mvs=session.use_codec,
            keep=_NeededFrames(sorted(slots), router, codec_vectors=session.use_codec),
            display_pts=info.display_pts,
            stream_index=info.stream_index,
            quick_open=info.quick_open,
        ),
        path=session.video,
    )
    try:
        for index, frame in frames:
            if session.box is None:
                session.setup(frame, distinct=sorted(slots), work_factor=work_factor)
                pix_fmt = frame.format.name
            backstep = max(backstep, router.shown - index)
            router.add(index, frame)
            num_decoded = max(num_decoded, index + 1)
            unseen.discard(index)
            # Every sampled frame is done: the rest of the file is not needed. Frames come in display order, unless
            # the timestamps are out of order (a broken mux: frames shown in another order than decoded); then, and
            # for a sampled frame that never comes (damaged), decoding goes on past the last one by twice the
            # largest step back seen and REORDER_SLACK.
            if index >= last_wanted and not router.pending():
                if not unseen or index >= last_wanted + 2 * backstep + REORDER_SLACK:
                    break
    finally:
        frames.close()
    return num_decoded, pix_fmt


def _choose(
    session: _Session,
    slots: dict[int, list[int]],
    *,
    frame_ids: np.ndarray,
    k_total: int,
    keep_first_full_frame: bool,
    exclude_padding: bool,
) -> _Chosen:
    """The top-K of the scores of every sampled frame (a frame never decoded takes the nearest decoded one's, and
    ranks as a duplicate)."""
    missing = set(slots) - set(session.scores)
    t0 = time.perf_counter()
    grid = session.grid
    decoded_sorted = sorted(session.scores)
    scores = np.zeros((session.num_frames, grid, grid), dtype=np.float32)
    paths = []
    distinct = sorted(slots)
    frame_row = {}
    for idx in distinct:
        src = idx if idx in session.scores else nearest_decoded(decoded_sorted, idx)
        for t in slots[idx]:
            if src is not None:
                scores[t] = session.scores[src]
        frame_row[idx] = src
        paths.append(session.paths.get(src, "missing"))
    duplicate_t = np.zeros(session.num_frames, dtype=bool)
    seen = set()
    for t, idx in enumerate(frame_ids.tolist()):
        duplicate_t[t] = idx in seen or idx in missing
        seen.add(idx)
    valid = valid_cell_mask(session.box, session.patch)
    try:
        selected: Selection = select_topk(
            scores,
            k_total,
            valid_mask=valid,
            keep_first_full_frame=keep_first_full_frame,
            duplicate_t=duplicate_t,
            exclude_padding=exclude_padding,
        )
    except ValueError as err:
        raise VideoReadError(session.video, "too_few_cells", detail=str(err)) from err
    session.timing["select_s"] = time.perf_counter() - t0
    return _Chosen(
        selected=selected, scores=scores, duplicate_t=duplicate_t, frame_row=frame_row, paths=paths, valid=valid
    )


def _assemble(
    session: _Session, run: _Run, *, k_total: int, num_images: int, keep_first_full_frame: bool
) -> CodecSelection:
    info, frame_ids, slots, missing = run.info, run.frame_ids, run.slots, run.missing
    num_decoded, pix_fmt, use_codec, t_start = run.num_decoded, run.pix_fmt, run.use_codec, run.t_start
    chosen: _Chosen = run.chosen.result()  # (re-raises `_choose`'s VideoReadError)
    selected, scores, duplicate_t = chosen.selected, chosen.scores, chosen.duplicate_t
    frame_row, paths, valid = chosen.frame_row, chosen.paths, chosen.valid
    grid = session.grid

    frames = frame_of_t = None
    if session.keep_pixels:
        frames = session.frames  # (frames never decoded are black)
        # Missing frames (fewer decoded than demuxed) show the nearest decoded sampled frame.
        frame_of_t = np.array(
            [session.frame_row[frame_row[i]] if frame_row[i] is not None else 0 for i in frame_ids.tolist()],
            dtype=np.int64,
        )

    box = session.box
    h_start, h_end, w_start, w_end = valid_cell_ranges(box, session.patch)
    s_valid = int(valid.sum())
    path_counts: dict[str, int] = defaultdict(int)
    for p in paths:
        path_counts[p] += 1
    meta = {
        "video": session.video,
        "codec": info.codec,
        "pix_fmt": pix_fmt,
        "num_packets": info.num_frames,
        "num_decoded_frames_read": num_decoded,
        "coded_size": [session.coded[0], session.coded[1]],
        "rotation": session.rotation,
        "mirrored": session.mirror,
        "H0": box.H0,
        "W0": box.W0,
        "T": session.num_frames,
        "num_images": num_images,
        "square_size": session.square,
        "patch_size": session.patch,
        "grid": grid,
        "pad_info": box.to_dict(),
        "S_total": grid * grid,
        "S_valid": s_valid,
        "valid_ranges": {
            "S_valid": s_valid,
            "hb_total": grid,
            "wb_total": grid,
            "valid_h_start": h_start,
            "valid_h_end": h_end,
            "valid_w_start": w_start,
            "valid_w_end": w_end,
        },
        "K": k_total,
        "keep_first_full_frame": keep_first_full_frame,
        "signal": "codec_mv+mc_residual" if use_codec else "block_matching+mc_residual",
        "motion_source": session.motion_source,
        "frame_signal_counts": dict(path_counts),
        "frame_signal": paths,
        "energy": {k: getattr(session.cfg, k) for k in session.cfg.__dataclass_fields__},
        "work_factor": session.factor,
        "num_distinct_frames": len(slots),
        "duplicate_t": int(duplicate_t.sum()),
        "missing_frames": missing,
        "padding_picked": selected.num_padding_picked,
        "duplicate_picked": selected.num_duplicate_frame_picked,
        "timings": {
            **{k: round(v, 4) for k, v in session.timing.items()},
            "total_s": round(time.perf_counter() - t_start, 4),
        },
    }
    return CodecSelection(
        visidx_thw=selected.visidx_thw,
        positions_thw=selected.positions_thw,
        frame_ids=frame_ids,
        scores=scores,
        meta=meta,
        frames=frames,
        frame_of_t=frame_of_t,
    )
