"""The pipeline figure for one video: original frames, uniform 8-frame sampling, saliency heat map, kept patches
over the frames (the rest greyed) and the packed mosaics, as a PNG (and an animated GIF over t)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .assets import atomic_write_bytes
from .pipeline import CodecSelection

THUMB = 160  # thumbnail side in pixels
GAP = 6
LABEL_H = 22


def heat_colormap(values: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] of values in [0, 1]: black -> red -> yellow -> white (an 'inferno'-like ramp)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    stops = np.array([[0, 0, 0], [120, 20, 90], [230, 60, 30], [250, 200, 40], [255, 255, 255]], np.float32)
    pos = v * (len(stops) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = pos - lo
    return (stops[lo[..., 0]] * (1 - frac) + stops[lo[..., 0] + 1] * frac).astype(np.uint8)


def kept_mask(selection: CodecSelection) -> np.ndarray:
    """bool [T, G, G]: True where a cell is kept."""
    grid = selection.meta["grid"]
    mask = np.zeros((selection.meta["T"], grid, grid), dtype=bool)
    mask[selection.visidx_thw[:, 0], selection.visidx_thw[:, 1], selection.visidx_thw[:, 2]] = True
    return mask


def overlay_kept(frame: np.ndarray, keep: np.ndarray, *, patch_size: int) -> np.ndarray:
    """Frame [S, S, 3] with dropped cells greyed out (kept cells unchanged)."""
    cell = np.kron(keep, np.ones((patch_size, patch_size), dtype=bool))
    out = frame.copy()
    size = cell.shape[0]
    grey = (0.3 * frame[:size, :size].mean(axis=-1, keepdims=True) + 90).astype(np.uint8)
    region = out[:size, :size]
    region[~cell] = np.repeat(grey, 3, axis=-1)[~cell]
    return out


def overlay_heat(frame: np.ndarray, scores: np.ndarray, *, patch_size: int, vmax: float) -> np.ndarray:
    """Frame blended with the per-cell score heat map (scores / vmax)."""
    heat = heat_colormap(np.kron(scores / max(vmax, 1e-6), np.ones((patch_size, patch_size))))
    size = heat.shape[0]
    out = frame.astype(np.float32)
    out[:size, :size] = 0.35 * out[:size, :size] + 0.65 * heat
    return out.astype(np.uint8)


def _save_image(path: Path, image: Image.Image, **options) -> None:
    """Encode in memory, then the package's one atomic writer (temp + rename, umask permissions)."""
    buffer = io.BytesIO()
    image.save(buffer, **options)
    atomic_write_bytes(path, buffer.getvalue())


def _thumb(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).resize((THUMB, THUMB), Image.BILINEAR)


def render_pipeline_figure(
    selection: CodecSelection, out_png: str | Path, *, gif: bool = False, num_columns: int = 8
) -> list[Path]:
    """Write the figure to `out_png` (and `<stem>.gif` with one frame per t if `gif`). Returns the written paths."""
    frames = selection.sampled_frames()  # (T, S, S, 3)
    t_len = frames.shape[0]
    patch = selection.meta["patch_size"]
    keep = kept_mask(selection)
    vmax = float(np.percentile(selection.scores[1:], 99)) if t_len > 1 else float(selection.scores.max())
    dense_t = np.linspace(0, t_len - 1, 2 * num_columns).astype(int)
    uniform_t = np.linspace(0, t_len - 1, num_columns).astype(int)  # 0, 9, ..., 63 for T = 64
    mosaics = selection.mosaics()
    stride = max(1, t_len // (2 * num_columns))
    uniform_text = ", ".join(map(str, uniform_t))
    rows = [
        (f"original frames (every {stride}-th of the {t_len} sampled)", [frames[t] for t in dense_t[::2]]),
        (f"uniform {num_columns}-frame sampling (t = {uniform_text})", [frames[t] for t in uniform_t]),
        (
            "saliency heat map (fused motion + residual energy per cell)",
            [overlay_heat(frames[t], selection.scores[t], patch_size=patch, vmax=vmax) for t in uniform_t],
        ),
        (
            f"kept patches (others greyed); K = {selection.visidx_thw.shape[0]}",
            [overlay_kept(frames[t], keep[t], patch_size=patch) for t in uniform_t],
        ),
        ("packed mosaics (image 0 = frame t=0 in full)", mosaics[:num_columns]),
    ]
    width = num_columns * THUMB + (num_columns + 1) * GAP
    height = len(rows) * (THUMB + LABEL_H + GAP) + GAP
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    y = GAP
    for label, images in rows:
        draw.text((GAP, y + 4), label, fill=(0, 0, 0))
        y += LABEL_H
        for col, image in enumerate(images[:num_columns]):
            canvas.paste(_thumb(image), (GAP + col * (THUMB + GAP), y))
        y += THUMB + GAP
    out_png = Path(out_png)
    _save_image(out_png, canvas, format="PNG")
    written = [out_png]
    if gif:
        gif_path = out_png.with_suffix(".gif")
        steps = []
        for t in range(t_len):
            pair = np.concatenate(
                [
                    overlay_heat(frames[t], selection.scores[t], patch_size=patch, vmax=vmax),
                    overlay_kept(frames[t], keep[t], patch_size=patch),
                ],
                axis=1,
            )
            steps.append(Image.fromarray(pair).resize((2 * 2 * THUMB, 2 * THUMB), Image.BILINEAR))
        _save_image(gif_path, steps[0], format="GIF", save_all=True, append_images=steps[1:], duration=120, loop=0)
        written.append(gif_path)
    return written
