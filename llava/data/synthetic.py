"""Synthetic motion videos and shape images with known answers: the playground data and the test media.

A clip is a static textured background with one or two coloured shapes; at most one of them moves in one of four
directions (or nothing moves). Because the ground truth is known, a model trained on these clips can be scored
exactly: which way does the object move, what colour is the moving one, does anything move.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from llava.atomic_io import atomic_path

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 80, 230), "yellow": (240, 210, 40)}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SHAPES = ("square", "circle")


@dataclass(frozen=True)
class ClipSpec:
    """What a synthetic clip shows. ``direction`` is None for a static clip (then ``colour`` is the shape's)."""

    colour: str
    direction: str | None
    distractor: str | None
    shape: str
    seed: int

    @property
    def moves(self) -> bool:
        return self.direction is not None

    def to_dict(self) -> dict:
        return asdict(self)


def random_clip_spec(rng: np.random.Generator, *, static_fraction: float = 0.25) -> ClipSpec:
    colours = list(COLOURS)
    colour = colours[rng.integers(len(colours))]
    others = [c for c in colours if c != colour]
    distractor = others[rng.integers(len(others))] if rng.random() < 0.5 else None
    direction = None if rng.random() < static_fraction else list(DIRECTIONS)[rng.integers(len(DIRECTIONS))]
    return ClipSpec(colour, direction, distractor, SHAPES[rng.integers(2)], int(rng.integers(1 << 31)))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth grey texture (flat areas alone would let any selector look perfect)."""
    coarse = rng.integers(70, 130, size=(height // 16 + 2, width // 16 + 2), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    grey = np.asarray(image, dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _draw(frame: Image.Image, shape: str, colour: str, box: tuple[int, int, int, int]) -> None:
    draw = ImageDraw.Draw(frame)
    if shape == "square":
        draw.rectangle(box, fill=COLOURS[colour])
    else:
        draw.ellipse(box, fill=COLOURS[colour])


def render_clip(spec: ClipSpec, *, width: int = 160, height: int = 128, frames: int = 24) -> np.ndarray:
    """uint8 [frames, height, width, 3] RGB frames of the clip."""
    rng = np.random.default_rng(spec.seed)
    background = _background(rng, height, width)
    size = max(12, min(width, height) // 5)
    dx, dy = DIRECTIONS[spec.direction] if spec.direction else (0, 0)
    speed = max(1.0, 0.6 * (width if dx else height) / frames)
    # Start where the whole path stays inside the frame.
    travel_x, travel_y = abs(dx) * speed * (frames - 1), abs(dy) * speed * (frames - 1)
    x0 = rng.uniform(0, max(1.0, width - size - travel_x))
    y0 = rng.uniform(0, max(1.0, height - size - travel_y))
    if dx < 0:
        x0 += travel_x
    if dy < 0:
        y0 += travel_y
    distractor_box = None
    if spec.distractor:
        dx0, dy0 = rng.uniform(0, width - size), rng.uniform(0, height - size)
        distractor_box = (int(dx0), int(dy0), int(dx0) + size, int(dy0) + size)
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    for i in range(frames):
        frame = Image.fromarray(background.copy())
        if distractor_box:
            _draw(frame, SHAPES[1 - SHAPES.index(spec.shape)], spec.distractor, distractor_box)
        x, y = x0 + dx * speed * i, y0 + dy * speed * i
        _draw(frame, spec.shape, spec.colour, (int(x), int(y), int(x) + size, int(y) + size))
        out[i] = np.asarray(frame)
    return out


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    *,
    fps: int = 12,
    codec: str = "libx264",
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encodes uint8 [T, H, W, 3] frames to ``path`` (H.264 with B-frames by default); atomic. The one PyAV clip
    writer of the project: the playground, the tests and the benchmarks encode their clips with it.
    `container_format` / `container_options` go to FFmpeg's muxer (e.g. "mpegts", {"movflags": "+faststart"})."""
    path = Path(path)
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), "w", format=container_format, options=container_options or {}) as container,
    ):
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        # One thread: an encoder's output depends on its thread count (x264's threads, the slices of FFmpeg's own
        # encoders), so that every machine makes the same clips of the same frames (the playground, the tests' clips).
        stream.thread_count = 1
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "g": str(2 * fps), "bf": "2"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def clip_questions(spec: ClipSpec) -> list[tuple[str, str, str]]:
    """(kind, question, answer) triples that the clip answers unambiguously."""
    questions = [("moves", "Does anything move in the video? Answer yes or no.", "yes" if spec.moves else "no")]
    if spec.moves:
        questions.append(("direction", "Which way does the object move? Answer left, right, up or down.",
                          spec.direction))  # fmt: skip
        questions.append(("colour", "What colour is the moving object?", spec.colour))
    return questions


CHANCE = {"moves": 0.5, "direction": 0.25, "colour": 0.25, "shape_colour": 0.25}


def render_shape_image(
    colour: str, shape: str, *, seed: int, width: int = 128, height: int = 128
) -> tuple[Image.Image, str]:
    """A shape on a textured background, with its caption."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(_background(rng, height, width))
    size = int(rng.integers(min(width, height) // 4, min(width, height) // 2))
    x, y = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
    _draw(image, shape, colour, (x, y, x + size, y + size))
    return image, f"A {colour} {shape} on a grey background."
