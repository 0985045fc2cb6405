"""Which checkpoint keys the encoder may leave out or ignore, and a hard error for the rest.

A published folder may hold more than a configuration uses (the head and post-norm of `-large` with
`use_head=False`, the trailing layers when LLaVA loads only `num_hidden_layers=23`): those keys are ignored. A key of
a layer that IS used but under a name the model does not know (another layout, a renamed module), or a used weight
the folder lacks, would otherwise leave that weight at its random initialisation with only a warning: that is an
error here, naming the folder and the keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_ALWAYS_IGNORED = (r"^head\.", r"^layernorm_post\.", r"inv_freq")
_LAYER_KEY = re.compile(r"(^|\.)encoder\.layers\.(\d+)\.")


def ignored_checkpoint_keys(num_hidden_layers: int) -> list[str]:
    """Regexes of checkpoint keys an encoder of `num_hidden_layers` layers may ignore: the head / post-norm (present
    but unused without the head), stale RoPE buffers, and layers at index >= `num_hidden_layers` only."""
    used = "|".join(str(index) for index in range(num_hidden_layers))
    unused_layers = rf"^encoder\.layers\.(?!(?:{used})\.)\d+\." if used else r"^encoder\.layers\.\d+\."
    return [*_ALWAYS_IGNORED, unused_layers]


def raise_on_unloaded_weights(loading_info: Mapping[str, Any], *, source: Any, prefix: str = "") -> None:
    """Raises `ValueError` when weights of the encoder (keys under `prefix`) were not in the checkpoint, or when the
    checkpoint holds unknown keys inside the encoder's layers (e.g. `encoder.layers.0.attn.qkv.weight` of another
    layout): either would leave used weights at random values.

    Args:
        loading_info: `from_pretrained(..., output_loading_info=True)`'s second result.
        source: the folder (for the message).
        prefix: where the encoder sits in the model's keys ("" for the bare encoder, "model.vision_tower." in
            LLaVA-OV).
    """
    missing = sorted(key for key in loading_info.get("missing_keys", ()) if key.startswith(prefix))
    unknown = sorted(key for key in _under(loading_info.get("unexpected_keys", ()), prefix) if _LAYER_KEY.search(key))
    problems = []
    if missing:
        problems.append(f"{len(missing)} encoder weights missing from the checkpoint ({_sample(missing)})")
    if unknown:
        problems.append(f"{len(unknown)} unknown keys inside used encoder layers ({_sample(unknown)})")
    if problems:
        raise ValueError(
            f"{source}: {'; '.join(problems)}. These weights would stay random: convert the checkpoint to this "
            "layout (python -m llava.model.onevision_encoder.checkpoint / llava.model.llava_ov.conversion) or load "
            "a folder of the matching configuration."
        )


def _under(keys: Iterable[str], prefix: str) -> list[str]:
    return [key for key in keys if key.startswith(prefix)]


def _sample(keys: list[str]) -> str:
    return ", ".join(keys[:4]) + (f", ... (+{len(keys) - 4})" if len(keys) > 4 else "")


__all__ = ["ignored_checkpoint_keys", "raise_on_unloaded_weights"]
