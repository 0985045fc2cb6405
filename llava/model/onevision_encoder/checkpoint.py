"""Writes OneVision-Encoder folders in the published (upstream) layout.

The layout is what ``lmms-lab-encoder/onevision-encoder-large`` ships: ``config.json`` with ``architectures`` and
the ``auto_map`` of the remote code, ``model.safetensors`` under the upstream key names, and the CLIP
``preprocessor_config.json``. Folders written here load with ``AutoModel.from_pretrained`` after ``import llava``
(no ``trust_remote_code``) and, key for key, with the upstream remote code.

``python -m llava.model.onevision_encoder.checkpoint OUT [--preset tiny] [--no-head] [--dtype bfloat16]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from ...atomic_io import write_atomic
from .configuration_onevision_encoder import OneVisionEncoderConfig
from .modeling_onevision_encoder import OneVisionEncoderModel
from .presets import PRESETS

logger = logging.getLogger(__name__)

UPSTREAM_AUTO_MAP = {
    "AutoConfig": "configuration_onevision_encoder.OneVisionEncoderConfig",
    "AutoModel": "modeling_onevision_encoder.OneVisionEncoderModel",
}
# The fields of the published config.json (spec section 1), written in this order-independent set and no more.
UPSTREAM_CONFIG_FIELDS = (
    "attention_dropout", "hidden_act", "hidden_size", "image_size", "initializer_range", "intermediate_size",
    "layer_norm_eps", "layer_norm_type", "model_type", "num_attention_heads", "num_channels", "num_hidden_layers",
    "patch_size", "rope_temporal_size", "rope_theta", "use_head",
)  # fmt: skip
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
UPSTREAM_PREPROCESSOR = {
    "crop_size": {"height": 448, "width": 448},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": CLIP_MEAN,
    "image_processor_type": "CLIPImageProcessor",
    "image_std": CLIP_STD,
    "resample": 3,
    "rescale_factor": 1 / 255,
    "size": {"shortest_edge": 448},
}


def save_upstream_checkpoint(
    model: OneVisionEncoderModel, folder: str | os.PathLike, *, dtype: torch.dtype | None = None
) -> Path:
    """Saves ``model`` to ``folder`` in the upstream layout (``dtype`` defaults to the model's)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = dtype or model.dtype
    state = {name: tensor.detach().to(dtype).contiguous().cpu() for name, tensor in model.state_dict().items()}
    full = model.config.to_dict()
    config = {field: full[field] for field in UPSTREAM_CONFIG_FIELDS}
    if model.config.rope_compute_dtype is not None:
        config["rope_compute_dtype"] = model.config.rope_compute_dtype  # ours; upstream code ignores it
    config.update(
        architectures=["OneVisionEncoderModel"],
        auto_map=UPSTREAM_AUTO_MAP,
        dtype=str(dtype).removeprefix("torch."),
        transformers_version=full.get("transformers_version"),
    )
    write_atomic(folder / "model.safetensors", lambda p: save_file(state, p, metadata={"format": "pt"}))
    write_atomic(folder / "config.json", lambda p: Path(p).write_text(json.dumps(config, indent=2, sort_keys=True)))
    write_atomic(
        folder / "preprocessor_config.json",
        lambda p: Path(p).write_text(json.dumps(UPSTREAM_PREPROCESSOR, indent=2, sort_keys=True)),
    )
    return folder


def build_random_checkpoint(
    folder: str | os.PathLike,
    *,
    config: OneVisionEncoderConfig | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    perturb: float = 0.02,
) -> Path:
    """Writes a randomly initialised encoder (default: the tiny preset) in the upstream layout.

    Norm weights and biases get a random offset of scale ``perturb`` so that no tensor is trivial (a loader that
    forgot one of them would otherwise go unnoticed).
    """
    config = config or PRESETS["tiny"]()
    torch.manual_seed(seed)
    model = OneVisionEncoderModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(perturb * torch.randn_like(param))
    return save_upstream_checkpoint(model, folder, dtype=dtype)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--no-head", action="store_true", help="the -lang layout: no layernorm_post, no head")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = PRESETS[args.preset](**({"use_head": False} if args.no_head else {}))
    folder = build_random_checkpoint(args.out, config=config, seed=args.seed, dtype=getattr(torch, args.dtype))
    logger.info("wrote %s", folder)
    return folder


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    main()
