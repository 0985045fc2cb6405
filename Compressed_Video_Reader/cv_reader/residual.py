"""Motion-compensated residual proxy on decoded luma (spec 11: stock FFmpeg exposes no coefficients).

All maps here are float32 luma at a "work" resolution: the frame box-averaged by an integer factor `f`, so one work
pixel covers f x f luma pixels. Motion fields are in full-resolution pixels and are divided by `f` here.
"""

from __future__ import annotations

import numpy as np

from . import kernels


def box_sums(plane: np.ndarray, factor: int) -> np.ndarray:
    """Sums [..., H//f, W//f] of each f x f block of the last two axes of `plane` [..., H, W] (trailing rows/cols
    that do not fill a block are dropped): uint16 for 8-bit input (it holds 256 x 255), else float32.

    Separable sums of strided slices (several times faster than a reshape-sum), rows first: whole contiguous rows add
    at full vector speed, and the strided column pass then reads a plane f times smaller (2.5x faster than columns
    first at 720p). Float input is summed rows then columns, always in the same order."""
    h, w = plane.shape[-2] // factor, plane.shape[-1] // factor
    plane = plane[..., : h * factor, : w * factor]
    acc_type = np.uint16 if plane.dtype == np.uint8 and factor <= 16 else np.float32
    rows = plane[..., 0::factor, :].astype(acc_type)
    for dy in range(1, factor):
        rows += plane[..., dy::factor, :]
    acc = rows[..., 0::factor].copy()
    for dx in range(1, factor):
        acc += rows[..., dx::factor]
    return acc


def box_downsample(plane: np.ndarray, factor: int) -> np.ndarray:
    """float32 [..., H//f, W//f] mean of each f x f block of the last two axes of `plane` [..., H, W] (trailing
    rows/cols that do not fill a block are dropped: at most f-1 pixels)."""
    if factor == 1:
        return plane.astype(np.float32)
    compiled = kernels.box_mean(plane, factor)
    if compiled is not None:
        return compiled
    return box_sums(plane, factor).astype(np.float32) * np.float32(1.0 / (factor * factor))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes with edge replication (numpy only: the package has no
    OpenCV)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    height, width = image.shape[-2:]
    lead = [(0, 0)] * (image.ndim - 2)
    out = np.pad(image, [*lead, (radius, radius), (0, 0)], mode="edge")
    out = sum(kernel[i] * out[..., i : i + height, :] for i in range(kernel.size))
    out = np.pad(out, [*lead, (0, 0), (radius, radius)], mode="edge")
    return sum(kernel[i] * out[..., i : i + width] for i in range(kernel.size)).astype(np.float32)


def highpass_residual(luma: np.ndarray, sigma: float) -> np.ndarray:
    """`|Y - GaussianBlur(Y, sigma)|`: the spec 11 stand-in for intra-coded residual (texture energy)."""
    return np.abs(luma - gaussian_blur(luma, sigma))


def upsample_blocks(field: np.ndarray, block: int, *, height: int, width: int) -> np.ndarray:
    """Nearest-upsample per-block arrays [B, h_b, w_b, ...] by `block` pixels to exactly [B, height, width, ...]
    (edge-replicated where the block grid does not reach the border; a view of `field` when block is 1 and nothing
    is padded)."""
    out = field if block == 1 else np.repeat(np.repeat(field, block, axis=1), block, axis=2)
    out = out[:, :height, :width]  # a view when nothing is repeated or padded: callers only read it
    pad_h, pad_w = height - out.shape[1], width - out.shape[2]
    if pad_h > 0 or pad_w > 0:
        pad = [(0, 0), (0, max(pad_h, 0)), (0, max(pad_w, 0))] + [(0, 0)] * (out.ndim - 3)
        out = np.pad(out, pad, mode="edge")
    return out


def vectors_on_work_grid(
    field: np.ndarray, has: np.ndarray, *, mv_block: int, factor: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """`(field, has, block)` of motion fields [B, h, w, ...] on a `mv_block`-px grid, thinned to one vector per work
    pixel (each work pixel's first block) when the work grid of factor `factor` is coarser; unchanged otherwise."""
    if mv_block >= factor:
        return field, has, mv_block
    step = factor // mv_block
    return field[:, ::step, ::step], has[:, ::step, ::step], factor


def warp_bilinear(ref: np.ndarray, *, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Sample `ref` [H, W] at `(y + dy, x + dx)` with bilinear interpolation, coordinates clamped to the frame
    (as the codec's unrestricted motion vectors replicate edges). `dx, dy` [H, W] in work pixels."""
    return _apply_warp(_edge_padded([ref]), _warp_plan(ref.shape, dx=dx[None], dy=dy[None]))[0]


def _warp_plan(shape: tuple[int, ...], *, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, ...]:
    """Gather indices (into the stack of edge-padded frames) and float32 bilinear fractions of displacement fields
    `dx, dy` [B, H, W]: computed once per direction and applied to every candidate reference of that direction."""
    h, w = shape
    ys = np.add(np.arange(h, dtype=np.float32)[None, :, None], dy, dtype=np.float32)
    xs = np.add(np.arange(w, dtype=np.float32)[None, None, :], dx, dtype=np.float32)
    np.clip(ys, 0, h - 1, out=ys)
    np.clip(xs, 0, w - 1, out=xs)
    y0, x0 = np.floor(ys), np.floor(xs)
    ys -= y0  # the fractions, exact in float32 (float32 - int32 would promote them to float64: twice the traffic)
    xs -= x0
    base = y0.astype(np.intp)
    base *= w + 1
    base += x0.astype(np.intp)
    base += (np.arange(dx.shape[0], dtype=np.intp) * ((h + 1) * (w + 1)))[:, None, None]
    return base, xs, ys


def _edge_padded(frames: list[np.ndarray]) -> np.ndarray:
    """float32 [B, H+1, W+1]: the frames [H, W] stacked with their last row and column repeated once (the +1 taps
    of a bilinear sample never leave its frame), written in one pass (np.stack then np.pad copied twice)."""
    h, w = frames[0].shape
    out = np.empty((len(frames), h + 1, w + 1), dtype=np.float32)
    for n, frame in enumerate(frames):
        out[n, :h, :w] = frame
    out[:, h, :w] = out[:, h - 1, :w]
    out[:, :, w] = out[:, :, w - 1]
    return out


def _apply_warp(padded: np.ndarray, plan: tuple[np.ndarray, ...]) -> np.ndarray:
    """Bilinear samples of each edge-padded reference of `padded` [B, H+1, W+1] (`_edge_padded`) at its frame's
    plan (float32, in place: these arrays are the largest temporaries of the energy pass)."""
    base, fx, fy = plan
    w = padded.shape[2] - 1
    padded = padded.reshape(-1)
    top = padded.take(base)
    step = padded.take(base + 1)
    step -= top
    step *= fx
    top += step
    bottom = padded.take(base + (w + 1))
    step = padded.take(base + (w + 2))
    step -= bottom
    step *= fx
    bottom += step
    bottom -= top
    bottom *= fy
    top += bottom
    return top


def _candidate_stacks(refs: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Slot k of each frame's (non-empty) candidate list, stacked and edge-padded [B, H+1, W+1]; frames with fewer
    candidates repeat their first (the minimum over candidates is unchanged)."""
    return [_edge_padded([r[min(k, len(r) - 1)] for r in refs]) for k in range(max(len(r) for r in refs))]


def mc_residual(
    cur: np.ndarray,
    field: np.ndarray,
    *,
    has: np.ndarray,
    factor: int,
    prev: list[list[np.ndarray]],
    nxt: list[list[np.ndarray]],
    mv_block: int = 4,
    intra_sigma: float = 1.5,
    intra: str = "difference",
) -> np.ndarray:
    """Motion-compensated residual proxy `|Y_t - prediction|` (spec 11) of a batch of B frames, float32
    [B, Hw, Ww] in grey levels (one warp per direction and candidate for the whole batch).

    Args:
        cur: work-resolution luma [B, Hw, Ww] of the frames.
        field: float32 [B, H//b, W//b, 4] (L0_x, L0_y, L1_x, L1_y) in full-resolution pixels (`motion_fields`),
            one row per `mv_block` = b pixels (4 or 8).
        has: bool [B, H//b, W//b, 2], which directions carry a vector.
        factor: work resolution factor f (1, 2, 4 or 8): one b x b MV block is b/f work pixels.
        prev, nxt: per frame, candidate references (work luma) for list 0 / list 1, e.g. the previous anchor and
            the previous frame. `source` in the exported vectors is a direction, not a reference index (spec 2.3),
            and with B-pyramids or several references the frame a vector points into is unknown: each candidate is
            tried and the smallest error is kept per pixel (a wrong reference under camera motion lights up the
            whole frame).
        intra_sigma: Gaussian sigma in full-resolution pixels of the high-pass used where no prediction exists.
        intra: "difference" or "highpass", the proxy for intra blocks of inter frames.

    Blocks predicted from both directions keep the smaller of the two errors; intra blocks (no vector) take the
    frame difference to the first list-0 candidate when there is one (a pixel-domain change signal: intra blocks in
    inter frames are mostly new or fast-moving content), else the high-pass texture proxy.
    """
    count, hw, ww = cur.shape
    field, has, mv_block = vectors_on_work_grid(field, has, mv_block=mv_block, factor=factor)
    block = mv_block // factor
    compiled = kernels.mc_error(
        cur, field, has=has, block=block, factor=factor, prev=prev, nxt=nxt, difference=intra == "difference"
    )
    if compiled is not None:
        error, unpredicted = compiled  # the "difference" fallback is done; +inf is left where the texture one goes
    else:
        error = _prediction_error(cur, field, has=has, block=block, factor=factor, prev=prev, nxt=nxt)
        unpredicted = True
    no_pred = ~np.isfinite(error) if unpredicted else None
    if no_pred is not None and no_pred.any():
        fallback = np.empty_like(error)
        by_difference = [n for n in range(count) if prev[n] and intra == "difference"]
        if by_difference and compiled is None:  # (the kernel has filled these frames already)
            fallback[by_difference] = np.abs(cur[by_difference] - np.stack([prev[n][0] for n in by_difference]))
        by_texture = sorted(set(range(count)) - set(by_difference))
        if by_texture:
            fallback[by_texture] = highpass_residual(cur[by_texture], max(intra_sigma / factor, 0.5))
        np.copyto(error, fallback, where=no_pred)
    return error


def _prediction_error(
    cur: np.ndarray,
    field: np.ndarray,
    *,
    has: np.ndarray,
    block: int,
    factor: int,
    prev: list[list[np.ndarray]],
    nxt: list[list[np.ndarray]],
) -> np.ndarray:
    """The numpy version of `kernels.mc_error`: float32 [B, Hw, Ww] smallest error over each direction's candidates
    where its block carries a vector, +inf elsewhere (`field`, `has` on the work grid, `block` work pixels each)."""
    count, hw, ww = cur.shape
    vec = upsample_blocks(field / np.float32(factor), block, height=hw, width=ww)  # divided on the block grid
    error = np.full(cur.shape, np.inf, dtype=np.float32)
    for refs, direction, (cx, cy) in ((prev, 0, (0, 1)), (nxt, 1, (2, 3))):
        # Only the frames that use this direction (P-frames have no list 1): warps cost per frame warped. Each
        # direction's mask is made contiguous first (reductions over the interleaved [..., 2] are 50x slower).
        coded = np.ascontiguousarray(has[..., direction])
        frames = [n for n in np.flatnonzero(coded.reshape(count, -1).any(axis=1)).tolist() if refs[n]]
        if not frames:
            continue
        rows = slice(None) if len(frames) == count else frames  # a slice keeps `best` a view of `error`
        mask = upsample_blocks(coded[rows], block, height=hw, width=ww)
        plan = _warp_plan((hw, ww), dx=vec[rows, ..., cx], dy=vec[rows, ..., cy])
        part = cur[rows]
        best = error[rows]
        for stack in _candidate_stacks([refs[n] for n in frames]):
            err = _apply_warp(stack, plan)
            np.subtract(part, err, out=err)
            np.abs(err, out=err)
            np.minimum(best, err, out=best, where=mask)
        if not isinstance(rows, slice):
            error[rows] = best
    return error
