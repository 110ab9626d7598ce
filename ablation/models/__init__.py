"""Backbones with attention inserted into their existing blocks.

``build_model(backbone, attention, position, stages, ...)`` builds a torchvision ResNet or
MobileNetV2 and places ``build_attention(attention, channels, **options)`` at ``position`` in
every block of the chosen ``stages`` (1-based; default all). A list value of a per-stage option
(``kernel_size: [3, 5, 5, 7]``, as ECA's authors use) gives element i to the i-th stage with
attention. A backbone given as an import path (``my_pkg.nets:build``) or registered by an
installed package in the entry-point group ``ablation.backbones`` is the user's own: it places
the attention itself (``ablation/external.py``), so its options are one value for all.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional, Sequence

from torch import nn

from ..attention import build_attention
from ..external import build_external, check_arguments, display_name, is_user_backbone, load_backbone
from ..errors import ConfigError
from . import mobilenet, resnet

BACKBONES: tuple[str, ...] = (*resnet.IMAGENET, *resnet.CIFAR_BLOCKS, "mobilenet_v2")
#: Attention options that may be given per stage, as a list with one value per stage with attention.
PER_STAGE_OPTIONS: tuple[str, ...] = ("kernel_size",)


def backbone_display(backbone: str) -> str:
    """The short name of ``backbone`` for tables and plots: a user's backbone's ``display_name``
    attribute (``ablation.external.display_name``), else the name itself."""
    if not is_user_backbone(backbone, BACKBONES):
        return backbone
    return display_name(load_backbone(backbone), backbone)


def positions(backbone: str) -> tuple[str, ...]:
    """Attention positions that exist in ``backbone``."""
    return mobilenet.POSITIONS if backbone == "mobilenet_v2" else resnet.POSITIONS


def placement_keys(backbone: str) -> tuple[str, ...]:
    """Which of ``position`` and ``stages`` ``backbone`` takes: both for ours, those a user's
    backbone declares (it may place its attention without either)."""
    if isinstance(backbone, str) and is_user_backbone(backbone, BACKBONES):
        from ..external import backbone_parameters

        params = backbone_parameters(backbone)
        return tuple(k for k in ("position", "stages") if k in params)
    return ("position", "stages")


def valid_stages(backbone: str, position: str) -> list[int]:
    """Stages of ``backbone`` where ``position`` exists (1-based)."""
    if backbone == "mobilenet_v2":
        return mobilenet.valid_stages(position)
    return list(range(1, resnet.num_stages(backbone) + 1))


def validate_model_args(backbone: str, position: str, stages: Optional[Sequence[int]], width_mult: float = 1.0) -> None:
    """Raise ``ConfigError`` naming the valid values when backbone, position or stages do not exist
    (for a user's backbone: when it cannot be loaded or does not take them)."""
    if is_user_backbone(backbone, BACKBONES):
        check_arguments(backbone, {"position": position, "stages": stages, "width_mult": width_mult})
        return
    if backbone != "mobilenet_v2" and width_mult != 1.0:
        raise ConfigError(f"width_mult applies to mobilenet_v2 only; got {width_mult} for {backbone}")
    if backbone not in BACKBONES:
        raise ConfigError(
            f"backbone {backbone!r} unknown; allowed: {list(BACKBONES)}, a backbone an installed "
            f"package registers (ablate list), or an import path 'package.module:build' of your own"
        )
    if position not in positions(backbone):
        raise ConfigError(f"position {position!r} does not exist in {backbone}; allowed: {list(positions(backbone))}")
    if stages is None:
        return
    allowed = valid_stages(backbone, position)
    if (
        isinstance(stages, (str, bytes))
        or not stages
        or any(isinstance(s, bool) or not isinstance(s, int) or s not in allowed for s in stages)
    ):
        raise ConfigError(
            f"stages {stages!r} invalid for {backbone} at position {position!r}; "
            f"give a non-empty list from {allowed} (or none for all)"
        )


def stage_options(
    backbone: str, position: str, stages: Optional[Sequence[int]], options: dict[str, Any]
) -> Optional[dict[int, dict[str, Any]]]:
    """The attention options of each stage with attention where a :data:`PER_STAGE_OPTIONS` key
    holds a list (element i for the i-th of ``stages``, in the order given; default all stages
    in order), or None where none does. ``ConfigError`` where a list's length is not the number
    of those stages, or the backbone is a user's (it places attention itself)."""
    listed = {k: list(v) for k, v in options.items() if k in PER_STAGE_OPTIONS and isinstance(v, (list, tuple))}
    if not listed:
        return None
    key, values = next(iter(listed.items()))
    if is_user_backbone(backbone, BACKBONES):
        raise ConfigError(
            f"{key}: a per-stage list {values} needs one of the backbones {list(BACKBONES)}; "
            f"backbone {backbone!r} places attention itself, so give one value"
        )
    chosen = list(stages) if stages is not None else valid_stages(backbone, position)
    for key, values in listed.items():
        if len(values) != len(chosen):
            raise ConfigError(
                f"{key}: a per-stage list needs one value per stage with attention, {len(chosen)} "
                f"here (stages {chosen} of {backbone} at position {position!r}); got {values}"
            )
    return {stage: {**options, **{k: v[i] for k, v in listed.items()}} for i, stage in enumerate(chosen)}


def build_model(
    backbone: str,
    attention: str = "none",
    position: str = "standard",
    stages: Optional[Sequence[int]] = None,
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    width_mult: float = 1.0,
    **attention_options: Any,
) -> nn.Module:
    """``backbone`` with ``attention`` at ``position`` in every block of ``stages`` (default all);
    a per-stage option's list gives each stage its value (:func:`stage_options`)."""
    validate_model_args(backbone, position, stages, width_mult)
    external = is_user_backbone(backbone, BACKBONES)
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"in_channels must be a positive integer, got {in_channels!r}")
    by_stage = stage_options(backbone, position, stages, attention_options)
    for options in by_stage.values() if by_stage else [attention_options]:
        build_attention(attention, 8, **options)  # fail on bad options before building

    def make(channels: int) -> nn.Module:
        return build_attention(attention, channels, **attention_options)

    if external:
        return build_external(backbone, make, num_classes, in_channels, small_input, width_mult, position, stages)
    chosen = list(stages) if stages is not None else valid_stages(backbone, position)
    if backbone == "mobilenet_v2":
        model = mobilenet.build_mobilenet(num_classes, in_channels, small_input, width_mult)
        insert = mobilenet.insert_mobilenet
    else:
        model = resnet.build_resnet(backbone, num_classes, in_channels, small_input)
        insert = resnet.insert_resnet
    if attention != "none":
        if by_stage is None:
            insert(model, position, chosen, make)
        else:
            for stage, options in by_stage.items():
                insert(model, position, [stage], partial(build_attention, attention, **options))
    return model


__all__ = [
    "BACKBONES",
    "PER_STAGE_OPTIONS",
    "backbone_display",
    "build_model",
    "placement_keys",
    "positions",
    "stage_options",
    "valid_stages",
    "validate_model_args",
]
