"""`cv_reader`: codec-style video patch selection on stock FFmpeg (PyAV), upstream-compatible assets.

Public API: `select_patches(video) -> CodecSelection`, the pure `select_topk`, geometry helpers and asset writers.
Depends on numpy, av and pillow only.
"""

from .decode import VideoInfo, probe_video
from .errors import VideoReadError
from .frames import read_letterboxed_frames
from .geometry import Letterbox, letterbox, valid_cell_mask
from .motion_vectors import rasterize_motion_vectors
from .packing import pack_mosaics
from .pipeline import CodecSelection, sample_frame_ids, select_patches
from .saliency import EnergyConfig
from .selection import Selection, positions_from_visidx, select_topk, visible_indices

__all__ = [
    "CodecSelection",
    "EnergyConfig",
    "Letterbox",
    "Selection",
    "VideoInfo",
    "VideoReadError",
    "letterbox",
    "pack_mosaics",
    "positions_from_visidx",
    "probe_video",
    "rasterize_motion_vectors",
    "read_letterboxed_frames",
    "sample_frame_ids",
    "select_patches",
    "select_topk",
    "valid_cell_mask",
    "visible_indices",
]
