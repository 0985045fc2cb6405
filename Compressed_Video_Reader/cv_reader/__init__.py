"""`cv_reader`: codec-style video patch selection on stock FFmpeg (PyAV), upstream-compatible assets.

Public API: `select_patches(video) -> CodecSelection`, the pure `select_topk`, geometry helpers and asset writers.
Depends on numpy, av and pillow only.
"""

from .process_settings import load_numpy_with_short_blas_spin

load_numpy_with_short_blas_spin()  # first: OpenBLAS takes its settings when numpy loads it

from .decode import VideoInfo, probe_video  # noqa: E402
from .errors import VideoReadError  # noqa: E402
from .frames import read_letterboxed_frames  # noqa: E402
from .geometry import Letterbox, letterbox, valid_cell_mask  # noqa: E402
from .motion_vectors import rasterize_motion_vectors  # noqa: E402
from .packing import pack_mosaics  # noqa: E402
from .pipeline import CodecSelection, sample_frame_ids, select_patches  # noqa: E402
from .saliency import EnergyConfig  # noqa: E402
from .selection import Selection, positions_from_visidx, select_topk, visible_indices  # noqa: E402

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
