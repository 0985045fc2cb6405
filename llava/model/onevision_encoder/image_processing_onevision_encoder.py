"""Image processor of the OneVision-Encoder ViT (spec: shared/specs/ov_encoder.md section 7), PIL + numpy only.

Three ways to bring an image to the encoder, chosen by ``resize_mode``:

* ``"clip"`` (default): the upstream ``-large`` ``preprocessor_config.json`` pipeline (a ``CLIPImageProcessor``):
  RGB conversion, bicubic resize of the short side to 448 on uint8 with the long side ``int(long * 448 / short)``,
  center crop 448x448 at offsets ``((W - 448) // 2, (H - 448) // 2)``, ``x / 255`` and CLIP mean/std in float32.
* ``"native"``: aspect-preserving bicubic resize so that both sides are multiples of ``patch_size`` (14) and the area
  lies in ``[min_pixels, max_pixels]``; no crop. Sizes differ per image, so ``pixel_values`` is a list.
* ``"pad_to_square"``: the LLaVA pipeline: pad to a centred black square, bicubic resize to ``size`` (504x504 in
  LLaVA-OV), rescale and normalise; no crop.

transformers 5 defaults to a torchvision backend whose antialiased tensor resize gives slightly different pixels
(section 7), and torchvision cannot be installed here; every step below is done on PIL images / numpy arrays, the
way the upstream ``CLIPImageProcessor`` did it, so ``"clip"`` mode reproduces the upstream pixels bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import PIL.Image
from huggingface_hub.dataclasses import validate_typed_dict
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoImageProcessor
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_base import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ChannelDimension, PILImageResampling, SizeDict
from transformers.processing_utils import ImagesKwargs, Unpack
from transformers.utils import TensorType, is_torch_available

from .configuration_onevision_encoder import OneVisionEncoderConfig

if is_torch_available():
    import torch

ResizeMode = Literal["clip", "native", "pad_to_square"]
RESIZE_MODES: tuple[str, ...] = get_args(ResizeMode)


class OneVisionEncoderImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    resize_mode (`str`, *optional*, defaults to `"clip"`):
        `"clip"`: resize (`size`, usually `{"shortest_edge": 448}`) + optional center crop (`crop_size`), the upstream
        pipeline. `"native"`: aspect-preserving resize to multiples of `patch_size` within `[min_pixels, max_pixels]`,
        no crop. `"pad_to_square"`: pad to a black square, resize to `size`, no crop.
    patch_size (`int`, *optional*, defaults to 14):
        Patch side of the encoder in pixels; native-mode sides are multiples of it.
    min_pixels (`int`, *optional*, defaults to `16 * 14 * 14`):
        Smallest image area (pixels) in native mode; smaller images are upscaled.
    max_pixels (`int`, *optional*, defaults to `4096 * 14 * 14`):
        Largest image area (pixels) in native mode; larger images are downscaled.
    """

    resize_mode: ResizeMode
    patch_size: int
    min_pixels: int
    max_pixels: int


def compute_native_size(
    height: int, width: int, *, patch_size: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Output size of the native-resolution mode for an input of `height` x `width` pixels.

    Both returned sides are positive multiples of `patch_size`. The image is scaled (only if its area is outside
    `[min_pixels, max_pixels]`) to an area inside the budget, then each side is rounded down or up to the patch grid,
    so the aspect ratio is kept up to one patch per side. `max_pixels` is a hard bound; `min_pixels` holds unless the
    budget is too narrow for any rounding (e.g. `min_pixels == max_pixels`). For extreme shapes such as 1x10000 the
    short side is clamped to one patch and the long side to the budget, so the aspect ratio is not kept.

    Why not transformers' Qwen2-VL `smart_resize`: it can exceed `max_pixels` (its `min_pixels` branch rounds both
    sides up), raises for aspect ratios above 200, and takes the budget only when the rounded area leaves it, while
    the visual token count here must be a hard bound for every image (tests/model/test_image_processing.py,
    `test_native_size_differs_from_smart_resize`).

    Args:
        height, width: input size in pixels (> 0).
        patch_size: patch side in pixels.
        min_pixels, max_pixels: bounds on the output area in pixels; `patch_size**2 <= max_pixels`,
            `min_pixels <= max_pixels`.

    Returns:
        `(new_height, new_width)` in pixels.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"compute_native_size: height and width must be > 0, got {height}x{width}")
    if patch_size <= 0:
        raise ValueError(f"compute_native_size: patch_size must be > 0, got {patch_size}")
    if max_pixels < patch_size * patch_size:
        raise ValueError(
            f"compute_native_size: max_pixels ({max_pixels}) must be at least one patch ({patch_size}x{patch_size})"
        )
    if min_pixels > max_pixels:
        raise ValueError(f"compute_native_size: min_pixels ({min_pixels}) must be <= max_pixels ({max_pixels})")

    area = height * width
    # Scale factor that brings the area into the budget; 1 when it already fits, so an image that fits is only
    # snapped to the patch grid, never rescaled.
    scale = 1.0
    if area > max_pixels:
        scale = math.sqrt(max_pixels / area)
    elif area < min_pixels:
        scale = math.sqrt(min_pixels / area)
    rows, cols = height * scale / patch_size, width * scale / patch_size  # wanted size in patches (fractional)

    # Each side rounds down or up to the patch grid: of the four choices, take the one inside the budget that
    # moves the sides least (the nearest multiples when both fit, as Qwen2-VL's smart_resize does).
    def rank(candidate: tuple[int, int]) -> tuple[bool, bool, float]:
        pixels = candidate[0] * candidate[1] * patch_size * patch_size
        return pixels > max_pixels, pixels < min_pixels, abs(candidate[0] - rows) + abs(candidate[1] - cols)

    choices = [
        (max(1, row), max(1, col))
        for row in (math.floor(rows), math.ceil(rows))
        for col in (math.floor(cols), math.ceil(cols))
    ]
    new_rows, new_cols = min(choices, key=rank)
    if new_rows * new_cols * patch_size * patch_size > max_pixels:
        # Only for extreme aspect ratios, where the short side was clamped up to one patch: max_pixels is the hard
        # bound, so the long side gives way.
        max_patches = max_pixels // (patch_size * patch_size)
        if new_rows >= new_cols:
            new_rows = max(1, max_patches // new_cols)
        else:
            new_cols = max(1, max_patches // new_rows)
    return new_rows * patch_size, new_cols * patch_size


def register_image_processor() -> None:
    """Maps `OneVisionEncoderConfig` to `OneVisionEncoderImageProcessor` (PIL backend) in `AutoImageProcessor`.

    After this, `AutoImageProcessor.from_pretrained(folder)` returns our class for a folder whose
    `preprocessor_config.json` says `"image_processor_type": "OneVisionEncoderImageProcessor"` (what our
    `save_pretrained` writes), and for a folder that only has a `config.json` with `model_type` `onevision_encoder`
    (that path also needs `AutoConfig` to know the model type). Safe to call more than once.
    """
    AutoImageProcessor.register(
        OneVisionEncoderConfig, image_processor_classes={"pil": OneVisionEncoderImageProcessor}, exist_ok=True
    )


class OneVisionEncoderImageProcessor(PilBackend):
    r"""
    Image processor of the OneVision-Encoder: PIL/numpy only, no torchvision.

    The defaults are the upstream `-large` `preprocessor_config.json`, which this class also reads directly
    (`OneVisionEncoderImageProcessor.from_pretrained(upstream_folder)`). Inputs are PIL images or uint8 arrays/tensors
    (`[H, W]`, `[H, W, C]` or `[C, H, W]` with C in {1, 3, 4}; a 4-D array is a batch), one or a list of them;
    a 3-D input whose first axis has 1, 3 or 4 entries is read as channels-first (as transformers does), unless
    `input_data_format` says otherwise.
    Grayscale is replicated to RGB and transparency is composited onto white (as the transformers
    `CLIPImageProcessor` does).

    Output (`BatchFeature`):
        `pixel_values`: float32, normalised. `return_tensors="pt"`/`"np"`: `[B, 3, H, W]` in the `"clip"` and
        `"pad_to_square"` modes; a list of B `[3, H_i, W_i]` tensors/arrays in `"native"` mode (one per image, never
        stacked, because sizes differ; feed them to the encoder one at a time as `pv[None]`). `return_tensors=None`:
        a list of `[3, H_i, W_i]` numpy arrays in every mode.
        `image_grid_hw` (native mode only): int64 `[B, 2]`, the (rows, columns) of each image's patch grid,
        `(H_i / patch_size, W_i / patch_size)`.

    `do_center_crop`/`crop_size` apply in `"clip"` mode only; the other two modes never crop.

    ```python
    >>> upstream = OneVisionEncoderImageProcessor()  # -large: 448 shortest edge + 448 center crop
    >>> llava = OneVisionEncoderImageProcessor(resize_mode="pad_to_square", size={"height": 504, "width": 504})
    >>> native = OneVisionEncoderImageProcessor(resize_mode="native", max_pixels=1024 * 14 * 14)
    >>> upstream(image, return_tensors="pt").pixel_values.shape
    torch.Size([1, 3, 448, 448])
    ```
    """

    valid_kwargs = OneVisionEncoderImageProcessorKwargs
    model_input_names = ["pixel_values", "image_grid_hw"]

    # Upstream `-large` preprocessor_config.json (section 7).
    do_convert_rgb = True
    do_resize = True
    size = {"shortest_edge": 448}
    default_to_square = False
    resample = PILImageResampling.BICUBIC
    do_center_crop = True
    crop_size = {"height": 448, "width": 448}
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    # Ours.
    resize_mode = "clip"
    patch_size = 14
    min_pixels = 16 * 14 * 14
    max_pixels = 4096 * 14 * 14

    def __init__(self, **kwargs: Unpack[OneVisionEncoderImageProcessorKwargs]) -> None:
        super().__init__(**kwargs)
        # Fail at construction, not at the first call, for a bad saved config.
        self._validate_preprocess_kwargs(**{name: getattr(self, name, None) for name in self._valid_kwargs_names})

    def preprocess(self, images: Any, **kwargs: Unpack[OneVisionEncoderImageProcessorKwargs]) -> BatchFeature:
        """Preprocesses one image or a batch; keyword arguments override the instance's settings for this call.

        Args:
            images: a PIL image, a uint8 numpy array / torch tensor (`[H, W]`, `[H, W, C]`, `[C, H, W]`, or a 4-D
                batch), or a list of those.
            **kwargs: any of the processor's settings (`resize_mode`, `size`, `return_tensors`, ...).

        Returns:
            `BatchFeature` with `pixel_values` (and `image_grid_hw` in native mode), see the class docstring.
        """
        try:
            validate_typed_dict(self.valid_kwargs, kwargs)
        except (StrictDataclassError, TypeError) as error:
            # Unknown names and wrong types surface as ValueError like every other bad argument of this class.
            raise ValueError(f"{type(self).__name__}: invalid keyword argument: {error}") from error
        return super().preprocess(images, **kwargs)

    def _validate_preprocess_kwargs(
        self,
        resize_mode: str | None = None,
        patch_size: int | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        size: SizeDict | None = None,
        crop_size: SizeDict | None = None,
        image_mean: Any = None,
        image_std: Any = None,
        do_rescale: bool | None = None,
        rescale_factor: float | None = None,
        do_normalize: bool | None = None,
        do_resize: bool | None = None,
        do_center_crop: bool | None = None,
        resample: Any = None,
        **kwargs: Any,
    ) -> None:
        data_format = kwargs.get("data_format")
        if data_format is not None and ChannelDimension(data_format) != ChannelDimension.FIRST:
            raise ValueError(
                f"data_format must be channels_first (the encoder takes [B, 3, H, W]), got {data_format!r}"
            )
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
        if not isinstance(patch_size, int) or patch_size <= 0:
            raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
        if resize_mode == "native":
            if not isinstance(max_pixels, int) or max_pixels < patch_size * patch_size:
                raise ValueError(
                    f"max_pixels must be an int >= patch_size**2 ({patch_size * patch_size}), got {max_pixels!r}"
                )
            if not isinstance(min_pixels, int) or not 0 < min_pixels <= max_pixels:
                raise ValueError(f"min_pixels must be an int in [1, max_pixels={max_pixels}], got {min_pixels!r}")
        if do_resize and resize_mode != "native":
            if size is None or not (size.shortest_edge or (size.height and size.width)):
                raise ValueError(
                    f"size must have 'shortest_edge' or 'height' and 'width' (resize_mode={resize_mode!r}), got {size}"
                )
            if any(value is not None and value <= 0 for _, value in size):
                raise ValueError(f"size must have positive entries, got {size}")
        if do_center_crop and resize_mode == "clip":
            if (
                crop_size is None
                or not (crop_size.height and crop_size.width)
                or min(crop_size.height, crop_size.width) <= 0
            ):
                raise ValueError(f"crop_size must have positive 'height' and 'width', got {crop_size}")
        if do_rescale and rescale_factor is None:
            raise ValueError("rescale_factor must be set when do_rescale is True")
        if do_normalize:
            for name, value in (("image_mean", image_mean), ("image_std", image_std)):
                values = [value] * 3 if isinstance(value, (int, float)) else list(value or ())
                if len(values) != 3:
                    raise ValueError(f"{name} must have 3 entries (RGB), got {value!r}")
            if any(std == 0 for std in ([image_std] * 3 if isinstance(image_std, (int, float)) else image_std)):
                raise ValueError(f"image_std must not contain zeros, got {image_std!r}")
        if do_resize and resample is not None:
            try:
                PIL.Image.Resampling(int(resample))
            except ValueError as error:
                raise ValueError(f"resample must be a PIL resampling filter (0-5), got {resample!r}") from error

    def _prepare_image_like_inputs(
        self,
        images: Any,
        *args: Any,
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        **kwargs: Any,
    ) -> list[PIL.Image.Image]:
        """Flattens the input into a list of RGB uint8 PIL images, validating each (errors name `images[i]`)."""
        flat = _flatten_images(images)
        return [
            _to_rgb_pil(image, field=f"images[{index}]", do_convert_rgb=do_convert_rgb, data_format=input_data_format)
            for index, image in enumerate(flat)
        ]

    def _preprocess(
        self,
        images: list[PIL.Image.Image],
        *,
        resize_mode: str,
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | int | None,
        do_center_crop: bool,
        crop_size: SizeDict,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | Sequence[float],
        image_std: float | Sequence[float],
        patch_size: int,
        min_pixels: int,
        max_pixels: int,
        return_tensors: str | TensorType | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        resample = PIL.Image.Resampling(int(resample if resample is not None else PILImageResampling.BICUBIC))
        mean = np.asarray(image_mean, dtype=np.float32).reshape(-1, 1, 1) * np.ones((3, 1, 1), dtype=np.float32)
        std = np.asarray(image_std, dtype=np.float32).reshape(-1, 1, 1) * np.ones((3, 1, 1), dtype=np.float32)

        pixel_values = []
        for index, image in enumerate(images):
            if resize_mode == "clip":
                if do_resize:
                    image = _resize(image, _clip_resize_size(image, size), resample)
                if do_center_crop:
                    image = _center_crop(image, height=crop_size.height, width=crop_size.width)
            elif resize_mode == "pad_to_square":
                image = _pad_to_square(image)
                if do_resize:
                    side = size.shortest_edge
                    image = _resize(image, (size.height or side, size.width or side), resample)
            else:
                if do_resize:
                    target = compute_native_size(
                        image.height, image.width, patch_size=patch_size, min_pixels=min_pixels, max_pixels=max_pixels
                    )
                    image = _resize(image, target, resample)
                elif image.height % patch_size or image.width % patch_size:
                    # The encoder would silently floor the remainder (spec section 10, pitfall 9).
                    raise ValueError(
                        f"images[{index}]: {image.height}x{image.width} is not a multiple of patch_size={patch_size}; "
                        "native mode with do_resize=False needs both sides divisible"
                    )
            pixel_values.append(
                _rescale_and_normalize(
                    image,
                    rescale_factor=rescale_factor if do_rescale else None,
                    mean=mean if do_normalize else None,
                    std=std if do_normalize else None,
                )
            )
        return _to_batch_feature(
            pixel_values, native=resize_mode == "native", patch_size=patch_size, return_tensors=return_tensors
        )


def _flatten_images(images: Any) -> list[Any]:
    """One image, a 4-D batch, or a (possibly once nested) list of images -> flat list of single images."""
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("images: got an empty list")
        flat: list[Any] = []
        for item in images:
            # A nested list is how multi-image samples arrive from batched processors; flatten one level.
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        if not flat:
            raise ValueError("images: got only empty lists")
        return flat
    if _is_array(images) and images.ndim == 4:
        if images.shape[0] == 0:
            raise ValueError(f"images: got an empty batch of shape {tuple(images.shape)}")
        return list(images)
    return [images]


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (is_torch_available() and isinstance(value, torch.Tensor))


def _to_rgb_pil(
    image: Any, *, field: str, do_convert_rgb: bool | None, data_format: str | ChannelDimension | None
) -> PIL.Image.Image:
    """Validates one input and converts it to an RGB uint8 PIL image (the form the upstream resize works on)."""
    if is_torch_available() and isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        image = _array_to_pil(image, field=field, data_format=data_format)
    elif not isinstance(image, PIL.Image.Image):
        raise ValueError(
            f"{field}: expected a PIL.Image.Image, a numpy array or a torch tensor, got {type(image).__name__}"
        )
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{field}: image has zero size ({image.height}x{image.width} pixels)")
    if image.mode == "RGB":
        return image
    if not do_convert_rgb:
        raise ValueError(f"{field}: PIL mode {image.mode!r} is not RGB and do_convert_rgb is False")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        # Transparent pixels become white, as in transformers' `convert_to_rgb` used by the upstream processor.
        rgba = image.convert("RGBA")
        background = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _array_to_pil(array: np.ndarray, *, field: str, data_format: str | ChannelDimension | None) -> PIL.Image.Image:
    """`[H, W]`, `[H, W, C]` or `[C, H, W]` uint8 (C in {1, 3, 4}) -> PIL image of mode L, RGB or RGBA."""
    if array.dtype != np.uint8:
        # Resizing happens on uint8 (as upstream); a float image would be silently quantised or mis-scaled.
        raise ValueError(
            f"{field}: expected dtype uint8 (0-255 pixel values), got {array.dtype}; convert float images with "
            "`(x * 255).round().astype(np.uint8)`"
        )
    if array.ndim == 3:
        channels = (1, 3, 4)
        if data_format is not None:
            channels_first = ChannelDimension(data_format) == ChannelDimension.FIRST
        elif array.shape[0] in channels:
            # Same precedence as transformers' `infer_channel_dimension_format`: channels first when ambiguous.
            channels_first = True
        elif array.shape[-1] in channels:
            channels_first = False
        else:
            raise ValueError(
                f"{field}: cannot find a channel axis with 1, 3 or 4 entries in shape {tuple(array.shape)}"
            )
        if channels_first:
            array = np.moveaxis(array, 0, -1)
        if array.shape[-1] not in channels:
            raise ValueError(f"{field}: expected 1, 3 or 4 channels, got shape {tuple(array.shape)} ({data_format})")
        if array.shape[-1] == 1:
            array = array[..., 0]
    elif array.ndim != 2:
        raise ValueError(
            f"{field}: expected a 2-D [H, W] or 3-D [H, W, C] / [C, H, W] array, got shape {tuple(array.shape)}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{field}: image has zero size (shape {tuple(array.shape)})")
    return PIL.Image.fromarray(np.ascontiguousarray(array))


def _clip_resize_size(image: PIL.Image.Image, size: SizeDict) -> tuple[int, int]:
    """(height, width) of the CLIP resize: short side -> `shortest_edge`, long side truncated, or an exact size."""
    if size.shortest_edge:
        short, long = sorted((image.height, image.width))
        # int() truncates, as upstream (section 7): 640x480 -> 597x448, not 598x448.
        new_long = int(size.shortest_edge * long / short)
        if image.height <= image.width:
            return size.shortest_edge, new_long
        return new_long, size.shortest_edge
    return size.height, size.width


def _resize(image: PIL.Image.Image, size: tuple[int, int], resample: PIL.Image.Resampling) -> PIL.Image.Image:
    height, width = size
    if (image.height, image.width) == (height, width):
        return image
    return image.resize((width, height), resample=resample)


def _center_crop(image: PIL.Image.Image, *, height: int, width: int) -> PIL.Image.Image:
    """Crop at offsets `((W - width) // 2, (H - height) // 2)`; a smaller image is padded with black (PIL fills
    pixels outside the source with zeros)."""
    left = (image.width - width) // 2
    top = (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def _pad_to_square(image: PIL.Image.Image) -> PIL.Image.Image:
    """Centre the image on a black square of side max(H, W) (spec section 7: LLaVA pads with black)."""
    side = max(image.width, image.height)
    if image.width == image.height:
        return image
    canvas = PIL.Image.new("RGB", (side, side), (0, 0, 0))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def _rescale_and_normalize(
    image: PIL.Image.Image, *, rescale_factor: float | None, mean: np.ndarray | None, std: np.ndarray | None
) -> np.ndarray:
    """RGB uint8 PIL image -> float32 `[3, H, W]`: `x * rescale_factor`, then `(x - mean) / std`."""
    pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    if rescale_factor is not None:
        # The product is taken in float64 and rounded once to float32, as transformers' `rescale` does, so the
        # result is bit-identical to the upstream processor (a float32 product can differ by one ulp).
        values = (pixels.astype(np.float64) * rescale_factor).astype(np.float32)
    else:
        values = pixels.astype(np.float32)
    if mean is not None:
        values = (values - mean) / std
    return values


def _to_batch_feature(
    pixel_values: list[np.ndarray], *, native: bool, patch_size: int, return_tensors: str | TensorType | None
) -> BatchFeature:
    if not native:
        shapes = {array.shape for array in pixel_values}
        if return_tensors is not None and len(shapes) > 1:
            raise ValueError(
                f"pixel_values: images have different sizes after preprocessing ({sorted(shapes)}) and cannot be "
                "stacked; enable do_center_crop, use resize_mode='native', or pass return_tensors=None"
            )
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)

    grid = np.array(
        [[array.shape[1] // patch_size, array.shape[2] // patch_size] for array in pixel_values], dtype=np.int64
    )
    if return_tensors is not None and TensorType(return_tensors) == TensorType.PYTORCH:
        pixel_values = [torch.from_numpy(array) for array in pixel_values]
    # The list stays a list (per-image sizes differ); only the grid is converted.
    return BatchFeature(
        data={"pixel_values": pixel_values, "image_grid_hw": grid},
        tensor_type=return_tensors,
        skip_tensor_conversion={"pixel_values"},
    )


__all__ = ["OneVisionEncoderImageProcessor", "compute_native_size", "register_image_processor"]
