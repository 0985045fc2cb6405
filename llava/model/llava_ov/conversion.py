"""Checkpoints for LLaVA-OV: assembly from local parts, upstream-trained checkpoints, projector files.

Everything goes through one explicit key map from the upstream LLaVA layout (spec section 2.1) to ours:

| upstream key                                   | ours                                              |
|------------------------------------------------|---------------------------------------------------|
| ``model.vision_tower.vision_tower.<X>``        | ``model.vision_tower.<X>`` (encoder names as is)  |
| ``model.mm_projector.0.{weight,bias}``         | ``model.multi_modal_projector.linear_1.*``        |
| ``model.mm_projector.2.{weight,bias}``         | ``model.multi_modal_projector.linear_2.*``        |
| ``model.{embed_tokens,layers,norm}.*``         | ``model.language_model.{embed_tokens,layers,norm}.*`` |
| ``lm_head.weight``                             | ``lm_head.weight`` (tied to the embeddings)       |

Encoder weights the model does not build are dropped by name: layers past ``vision_feature_layer``,
``layernorm_post`` and the pooling ``head`` (the ``-large`` tower computes them for nothing upstream). A Qwen3 folder
(``Qwen3ForCausalLM``: ``model.*`` + ``lm_head``) uses the upstream LM names already, and an OV-Encoder folder the
bare encoder names, so assembly builds an upstream-layout state dict and reuses the same map.

``python -m llava.model.llava_ov.conversion assemble --vision V --text T [--projector P] [--allow-pickle] OUT``
``python -m llava.model.llava_ov.conversion upstream UPSTREAM_FOLDER OUT [--vision-config ENCODER_FOLDER]
[--allow-pickle]``

Both write a complete checkpoint folder (``save_checkpoint``: safetensors weights, config, generation config and
the processor files: tokenizer, ``preprocessor_config.json``, ``processor_config.json``), atomically, so the demos,
the evaluator and training open it with ``from_pretrained`` as is. Pickle inputs (``pytorch_model.bin``,
``mm_projector.bin``) are read only with ``--allow-pickle`` (``llava.model.safe_weights``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoTokenizer, Qwen3Config

from ...atomic_io import atomic_folder, write_atomic
from ..onevision_encoder import OneVisionEncoderConfig, OneVisionEncoderImageProcessor
from ..onevision_encoder.checkpoint import UPSTREAM_CONFIG_FIELDS
from ..safe_weights import read_weights_file
from .configuration_llava_ov import LlavaOVConfig
from .modeling_llava_ov import LlavaOVForConditionalGeneration
from .processing_llava_ov import IMAGE_ASPECT_RATIOS, LlavaOVProcessor
from .projector import LlavaOVMultiModalProjector

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<|image_pad|>"
UPSTREAM_VISION_PREFIX = "model.vision_tower.vision_tower."
UPSTREAM_KEY_MAP: tuple[tuple[str, str], ...] = (
    (UPSTREAM_VISION_PREFIX, "model.vision_tower."),
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.embed_tokens.", "model.language_model.embed_tokens."),
    ("model.layers.", "model.language_model.layers."),
    ("model.norm.", "model.language_model.norm."),
    ("lm_head.", "lm_head."),
)
# Projector-only files: upstream stage 1 (`mm_projector.bin`) and ours (`save_projector`), normalised to linear_{1,2}.
PROJECTOR_KEY_MAP: tuple[tuple[str, str], ...] = (
    ("model.mm_projector.0.", "linear_1."),
    ("model.mm_projector.2.", "linear_2."),
    ("model.multi_modal_projector.", ""),
    ("multi_modal_projector.", ""),
)
PROJECTOR_FILE = "multi_modal_projector.safetensors"
UPSTREAM_PROJECTOR_FILE = "mm_projector.bin"
_ENCODER_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.")
_UNUSED_ENCODER_PARTS = ("head.", "layernorm_post.")
# Fields upstream training writes into the LLM config (spec section 2.1); they are not Qwen3 fields.
_UPSTREAM_NON_TEXT_FIELDS = {
    "architectures", "auto_map", "model_type", "image_aspect_ratio", "image_grid_pinpoints", "image_crop_resolution",
    "image_split_resolution", "tokenizer_padding_side", "tokenizer_model_max_length", "use_mm_proj",
}  # fmt: skip


def _encoder_key_is_used(key: str, num_vision_layers: int) -> bool:
    """Whether an encoder key (bare name) belongs to the truncated, head-less tower the model builds."""
    if key.startswith(_UNUSED_ENCODER_PARTS) or key.endswith("inv_freq"):
        return False
    match = _ENCODER_LAYER.match(key)
    return match is None or int(match.group(1)) < num_vision_layers


def convert_upstream_state_dict(
    state: Mapping[str, torch.Tensor], *, num_vision_layers: int
) -> dict[str, torch.Tensor]:
    """Upstream LLaVA-OV keys -> ours (the table in the module docstring); ``ValueError`` on any unknown key.

    ``num_vision_layers``: encoder layers the model builds (``config.num_vision_layers_used``, 23 of 24 for -2);
    later layers, ``layernorm_post`` and ``head`` are dropped.
    """
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, tensor in state.items():
        if key.startswith(UPSTREAM_VISION_PREFIX) and not _encoder_key_is_used(
            key.removeprefix(UPSTREAM_VISION_PREFIX), num_vision_layers
        ):
            continue
        for source, target in UPSTREAM_KEY_MAP:
            if key.startswith(source):
                converted[target + key.removeprefix(source)] = tensor
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"upstream checkpoint has keys outside the LLaVA-OV key map: {sorted(unknown)[:10]}")
    return converted


def read_state_dict(folder: str | os.PathLike, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder: ``model.safetensors``, sharded safetensors, or (``allow_pickle`` only)
    ``pytorch_model.bin``; ``PickleWeightsError`` for a pickle-only folder without the opt-in."""
    folder = Path(folder)
    for index_name, single_name in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        if (folder / index_name).is_file():
            shards = sorted(set(json.loads((folder / index_name).read_text())["weight_map"].values()))
            files = [folder / shard for shard in shards]
        elif (folder / single_name).is_file():
            files = [folder / single_name]
        else:
            continue
        state: dict[str, torch.Tensor] = {}
        for file in files:
            state.update(read_weights_file(file, allow_pickle=allow_pickle))
        return state
    raise FileNotFoundError(f"{folder}: no model.safetensors(.index.json) or pytorch_model.bin(.index.json)")


def resolve_image_token_id(tokenizer_path: str | os.PathLike) -> int:
    """Id of ``<|image_pad|>`` in the tokenizer at ``tokenizer_path`` (151655 in Qwen3's)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ValueError(f"{tokenizer_path}: the tokenizer has no {IMAGE_TOKEN} token")
    return int(token_id)


def read_vision_config(folder: str | os.PathLike) -> OneVisionEncoderConfig:
    """The encoder configuration of an OV-Encoder folder, without the remote-code ``auto_map``/``architectures``."""
    fields = json.loads((Path(folder) / "config.json").read_text())
    if fields.get("model_type") != OneVisionEncoderConfig.model_type:
        raise ValueError(f"{folder}/config.json: model_type {fields.get('model_type')!r} is not onevision_encoder")
    kept = {name: fields[name] for name in (*UPSTREAM_CONFIG_FIELDS, "rope_compute_dtype") if name in fields}
    kept.pop("model_type")
    return OneVisionEncoderConfig(**kept)


def infer_vision_config(state: Mapping[str, torch.Tensor], *, prefix: str = UPSTREAM_VISION_PREFIX):
    """An encoder configuration read off the weights (upstream LLaVA configs name only the hub id of the tower).

    Heads are not visible in the shapes: every published OV-Encoder has head_dim 64, which is assumed.
    """
    names = {key.removeprefix(prefix): tensor for key, tensor in state.items() if key.startswith(prefix)}
    if "embeddings.patch_embedding.weight" not in names:
        raise ValueError(f"no encoder weights under {prefix!r}; pass vision_config explicitly")
    patch = names["embeddings.patch_embedding.weight"]  # (D, C, p, p)
    layers = {int(m.group(1)) for key in names if (m := _ENCODER_LAYER.match(key))}
    hidden = patch.shape[0]
    return OneVisionEncoderConfig(
        hidden_size=hidden,
        intermediate_size=names["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=max(layers) + 1,
        num_attention_heads=hidden // 64,
        num_channels=patch.shape[1],
        patch_size=patch.shape[-1],
        layer_norm_type="layer_norm" if "layernorm_pre.bias" in names else "rms_norm",
        use_head=any(key.startswith("head.") for key in names),
    )


def _build_model(
    config: LlavaOVConfig,
    state: dict[str, torch.Tensor],
    *,
    dtype: torch.dtype | None,
    attn_implementation: str | None,
) -> LlavaOVForConditionalGeneration:
    """Builds the model from a state dict in our layout; every parameter must come from it (or be tied)."""
    if dtype is None:  # the LM's storage dtype (a tied checkpoint may hold only one of embed_tokens / lm_head)
        dtype = next(t.dtype for k, t in state.items() if k.startswith(("model.language_model.", "lm_head.")))
    model, info = LlavaOVForConditionalGeneration.from_pretrained(
        None, config=config, state_dict=state, dtype=dtype, attn_implementation=attn_implementation,
        output_loading_info=True,
    )  # fmt: skip
    missing = info["missing_keys"]
    if missing or info["unexpected_keys"] or info["mismatched_keys"]:
        raise ValueError(
            f"checkpoint does not match the model: missing {sorted(missing)[:10]}, unexpected "
            f"{sorted(info['unexpected_keys'])[:10]}, mismatched {list(info['mismatched_keys'])[:10]}"
        )
    return model.eval()


def load_projector_state_dict(path: str | os.PathLike, *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A projector file -> ``{linear_1.weight, linear_1.bias, linear_2.weight, linear_2.bias}``.

    ``path``: upstream stage-1 ``mm_projector.bin`` (``model.mm_projector.{0,2}.*``), our ``save_projector`` file
    (``model.multi_modal_projector.linear_{1,2}.*``), or a folder holding one of them. The upstream ``.bin`` is a
    pickle: read only with ``allow_pickle``.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / PROJECTOR_FILE, path / UPSTREAM_PROJECTOR_FILE]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{candidates[0].parent}: no {PROJECTOR_FILE} or {UPSTREAM_PROJECTOR_FILE}")
    projector = {}
    for key, tensor in read_weights_file(path, allow_pickle=allow_pickle).items():
        for source, target in PROJECTOR_KEY_MAP:
            if key.startswith(source):
                key = target + key.removeprefix(source)
                break
        projector[key] = tensor
    expected = {f"linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
    if set(projector) - expected or not {"linear_1.weight", "linear_2.weight"} <= set(projector):
        raise ValueError(f"{path}: not a mlp2x_gelu projector file, keys {sorted(projector)}")
    return projector


def save_projector(
    model: LlavaOVForConditionalGeneration,
    folder: str | os.PathLike,
    *,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Writes the projector alone as ``folder/multi_modal_projector.safetensors`` under full model keys (the
    stage-1 file that ``pretrained_projector`` / ``--projector`` read). ``state_dict``: the model's full state dict
    when the caller gathered it (ZeRO-3 partitions the live parameters); default: read from ``model``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "model.multi_modal_projector."
    if state_dict is not None:
        state = {key: tensor for key, tensor in state_dict.items() if key.startswith(prefix)}
    else:
        state = {prefix + key: tensor for key, tensor in model.model.multi_modal_projector.state_dict().items()}
    state = {key: tensor.detach().contiguous().cpu() for key, tensor in state.items()}
    # Atomic: an interrupted save never leaves a half-written file for stage 2 to read.
    return write_atomic(folder / PROJECTOR_FILE, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))


def assemble_from_pretrained(
    vision_path: str | os.PathLike,
    text_path: str | os.PathLike,
    *,
    projector_path: str | os.PathLike | None = None,
    tokenizer_path: str | os.PathLike | None = None,
    vision_feature_layer: int = -2,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
    allow_pickle: bool = False,
) -> LlavaOVForConditionalGeneration:
    """A full LLaVA-OV model from a local OV-Encoder folder and a local Qwen3 folder (no hub access).

    vision_path: OV-Encoder folder (upstream layout, with or without head; only the layers up to
        ``vision_feature_layer`` are loaded). text_path: ``Qwen3ForCausalLM`` folder. projector_path: optional
        stage-1 projector (see :func:`load_projector_state_dict`); without it the projector is freshly initialised.
    tokenizer_path: where ``<|image_pad|>`` is looked up (default ``text_path``). dtype: default the LM's.
    allow_pickle: read pickle weights (``pytorch_model.bin``, ``mm_projector.bin``) too.
    """
    text_config = AutoConfig.from_pretrained(text_path)
    if not isinstance(text_config, Qwen3Config):
        raise ValueError(f"{text_path}: expected a Qwen3 checkpoint, config model_type is {text_config.model_type!r}")
    config = LlavaOVConfig(
        vision_config=read_vision_config(vision_path),
        text_config=text_config,
        image_token_id=resolve_image_token_id(tokenizer_path or text_path),
        vision_feature_layer=vision_feature_layer,
    )
    # Build the upstream layout, then convert it like a trained checkpoint: one key map for both paths.
    vision_state = read_state_dict(vision_path, allow_pickle=allow_pickle)
    state = {UPSTREAM_VISION_PREFIX + key: tensor for key, tensor in vision_state.items()}
    text_state = read_state_dict(text_path, allow_pickle=allow_pickle)
    foreign = [key for key in text_state if not key.startswith(("model.", "lm_head."))]
    if foreign:
        raise ValueError(f"{text_path}: not a Qwen3ForCausalLM state dict, keys {foreign[:5]}")
    state.update(text_state)
    state = convert_upstream_state_dict(state, num_vision_layers=config.num_vision_layers_used)
    if projector_path is not None:
        projector = load_projector_state_dict(projector_path, allow_pickle=allow_pickle)
    else:
        logger.info("no projector file: the projector starts from a fresh initialisation")
        projector = _initial_projector_state(config)
    state.update({f"model.multi_modal_projector.{key}": tensor for key, tensor in projector.items()})
    return _build_model(config, state, dtype=dtype, attn_implementation=attn_implementation)


def _initial_projector_state(config: LlavaOVConfig) -> dict[str, torch.Tensor]:
    """A fresh projector as the model's own initialisation makes it: weights N(0, initializer_range), zero biases."""
    projector = LlavaOVMultiModalProjector(config)
    std = config.text_config.initializer_range
    with torch.no_grad():
        for name, param in projector.named_parameters():
            if name.endswith("weight"):
                param.normal_(0.0, std)
            else:
                param.zero_()
    return projector.state_dict()


def config_from_upstream(
    upstream: Mapping, *, vision_config: OneVisionEncoderConfig, image_token_id: int
) -> LlavaOVConfig:
    """``LlavaOVConfig`` from an upstream ``config.json`` (a Qwen3 config with ``mm_*`` fields, spec 2.1)."""
    projector_type = upstream.get("mm_projector_type", "mlp2x_gelu")
    if projector_type != "mlp2x_gelu":
        raise ValueError(f"upstream mm_projector_type {projector_type!r} is not supported (only mlp2x_gelu)")
    mm_hidden = upstream.get("mm_hidden_size", vision_config.hidden_size)
    if mm_hidden != vision_config.hidden_size:
        raise ValueError(f"upstream mm_hidden_size {mm_hidden} != encoder hidden_size {vision_config.hidden_size}")
    text_fields = {
        key: value
        for key, value in upstream.items()
        if not key.startswith("mm_") and key not in _UPSTREAM_NON_TEXT_FIELDS
    }
    return LlavaOVConfig(
        vision_config=vision_config,
        text_config=Qwen3Config(**text_fields),
        image_token_id=image_token_id,
        vision_feature_layer=upstream.get("mm_vision_select_layer", -2),
    )


def load_upstream_checkpoint(
    folder: str | os.PathLike,
    *,
    vision_config: OneVisionEncoderConfig | str | os.PathLike | None = None,
    tokenizer_path: str | os.PathLike | None = None,
    image_token_id: int | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
    allow_pickle: bool = False,
) -> LlavaOVForConditionalGeneration:
    """Our model from an upstream-trained LLaVA-OV folder (``LlavaQwen3ForCausalLM`` weights + config).

    vision_config: the encoder's configuration or its folder; default: read off the weights (head_dim 64).
    image_token_id: default ``<|image_pad|>`` of the tokenizer at ``tokenizer_path`` (default ``folder``).
    allow_pickle: read ``pytorch_model.bin`` weights too.
    """
    folder = Path(folder)
    upstream = json.loads((folder / "config.json").read_text())
    state = read_state_dict(folder, allow_pickle=allow_pickle)
    if vision_config is None:
        vision_config = infer_vision_config(state)
        logger.info("encoder configuration inferred from the weights: %s", vision_config.to_diff_dict())
    elif not isinstance(vision_config, OneVisionEncoderConfig):
        vision_config = read_vision_config(vision_config)
    if image_token_id is None:
        image_token_id = resolve_image_token_id(tokenizer_path or folder)
    config = config_from_upstream(upstream, vision_config=vision_config, image_token_id=image_token_id)
    state = convert_upstream_state_dict(state, num_vision_layers=config.num_vision_layers_used)
    return _build_model(config, state, dtype=dtype, attn_implementation=attn_implementation)


def build_processor(
    tokenizer_path: str | os.PathLike,
    *,
    vision_path: str | os.PathLike | None = None,
    upstream_config: Mapping | None = None,
) -> LlavaOVProcessor:
    """The processor of a converted checkpoint: the tokenizer at ``tokenizer_path``, the image processor of the
    encoder folder ``vision_path`` (its ``preprocessor_config.json``; the upstream defaults without one), and the
    image geometry an upstream ``config.json`` names (``image_aspect_ratio`` ``anyres*``/``pad``, list pinpoints);
    everything else is the processor's defaults (the published LLaVA-OV geometry)."""
    if vision_path is not None:
        image_processor = OneVisionEncoderImageProcessor.from_pretrained(vision_path)
    else:
        image_processor = OneVisionEncoderImageProcessor()
    geometry: dict = {}
    aspect = str((upstream_config or {}).get("image_aspect_ratio") or "")
    if aspect.startswith("anyres"):
        geometry["image_aspect_ratio"] = "anyres"
        pinpoints = (upstream_config or {}).get("image_grid_pinpoints")
        if isinstance(pinpoints, list) and all(isinstance(p, list) and len(p) == 2 for p in pinpoints):
            geometry["image_grid_pinpoints"] = pinpoints
    elif aspect in IMAGE_ASPECT_RATIOS:
        geometry["image_aspect_ratio"] = aspect
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    return LlavaOVProcessor(image_processor=image_processor, tokenizer=tokenizer, **geometry)


def save_checkpoint(
    model: LlavaOVForConditionalGeneration, processor: LlavaOVProcessor, folder: str | os.PathLike
) -> Path:
    """Writes a complete checkpoint folder (weights as safetensors, configs, processor files) atomically: into a
    temporary sibling renamed into place once complete (an older folder there is replaced)."""
    folder = Path(folder)
    with atomic_folder(folder) as scratch:
        model.save_pretrained(scratch)
        processor.save_pretrained(scratch)
    return folder


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Write a LLaVA-OV checkpoint folder (safetensors).")
    commands = parser.add_subparsers(dest="command", required=True)
    assemble = commands.add_parser("assemble", help="from a local OV-Encoder folder + a local Qwen3 folder")
    assemble.add_argument("out")
    assemble.add_argument("--vision", required=True, help="OV-Encoder folder")
    assemble.add_argument("--text", required=True, help="Qwen3ForCausalLM folder (with its tokenizer)")
    assemble.add_argument("--projector", help="stage-1 projector file or folder")
    assemble.add_argument("--vision-feature-layer", type=int, default=-2)
    upstream = commands.add_parser("upstream", help="convert an upstream-trained LLaVA-OV folder")
    upstream.add_argument("folder")
    upstream.add_argument("out")
    upstream.add_argument("--vision-config", help="OV-Encoder folder whose config.json describes the tower")
    for command in (assemble, upstream):
        command.add_argument(
            "--allow-pickle", action="store_true",
            help="also read pickle weights (pytorch_model.bin, mm_projector.bin); only for files you trust",
        )  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "assemble":
        model = assemble_from_pretrained(
            args.vision, args.text, projector_path=args.projector, vision_feature_layer=args.vision_feature_layer,
            allow_pickle=args.allow_pickle,
        )  # fmt: skip
        processor = build_processor(args.text, vision_path=args.vision)
    else:
        model = load_upstream_checkpoint(args.folder, vision_config=args.vision_config, allow_pickle=args.allow_pickle)
        upstream_config = json.loads((Path(args.folder) / "config.json").read_text())
        processor = build_processor(args.folder, vision_path=args.vision_config, upstream_config=upstream_config)
    folder = save_checkpoint(model, processor, args.out)
    logger.info("wrote %s", folder)
    return folder


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except (OSError, ValueError) as error:  # a missing folder, pickle weights without --allow-pickle, bad keys
        logger.error("%s", error)
        raise SystemExit(1) from None
