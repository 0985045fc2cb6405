"""Which parameters train, and with which learning rate (spec section 5.4, done with explicit flags).

A parameter belongs to one of three parts by its name: the vision tower, the projector, or the language model
(everything else: embeddings, decoder layers, final norm, lm_head). Optimizer groups are (part) x (decay / no
decay), each part with its own learning rate; frozen parameters are in no group.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

VISION, PROJECTOR, LANGUAGE = "vision_tower", "projector", "language_model"
_PART_MARKERS = ((VISION, "vision_tower"), (PROJECTOR, "multi_modal_projector"))


def parameter_part(name: str) -> str:
    """The part a parameter name belongs to: ``vision_tower``, ``projector`` or ``language_model``."""
    for part, marker in _PART_MARKERS:
        if marker in name:
            return part
    return LANGUAGE


def set_trainable_parts(model: nn.Module, *, language_model: bool, projector: bool, vision_tower: bool) -> dict:
    """Sets ``requires_grad`` by part and returns {part: trainable parameter count}."""
    wanted = {LANGUAGE: language_model, PROJECTOR: projector, VISION: vision_tower}
    counts = dict.fromkeys(wanted, 0)
    for name, param in model.named_parameters():
        part = parameter_part(name)
        param.requires_grad_(wanted[part])
        if wanted[part]:
            counts[part] += param.numel()
    return counts


def trainable_counts(model: nn.Module) -> dict:
    """{part: number of parameters with ``requires_grad``} (e.g. after PEFT froze or added some)."""
    counts = dict.fromkeys((LANGUAGE, PROJECTOR, VISION), 0)
    for name, param in model.named_parameters():
        if param.requires_grad:
            counts[parameter_part(name)] += param.numel()
    return counts


def optimizer_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    *,
    decay_names: set[str],
    learning_rate: float,
    weight_decay: float,
    projector_lr: float | None = None,
    vision_tower_lr: float | None = None,
) -> list[dict]:
    """Parameter groups for the optimizer: one per (part, decay) pair with trainable parameters."""
    rates = {
        LANGUAGE: learning_rate,
        PROJECTOR: projector_lr or learning_rate,
        VISION: vision_tower_lr or learning_rate,
    }
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        part, decays = parameter_part(name), name in decay_names
        group = groups.setdefault(
            (part, decays),
            {"params": [], "lr": rates[part], "weight_decay": weight_decay if decays else 0.0, "name": part},
        )
        group["params"].append(param)
    return list(groups.values())
