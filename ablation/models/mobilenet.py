"""MobileNetV2 from torchvision (``width_mult`` honoured; torchvision imported only when one is built).

Stages are the 7 rows of the paper's inverted-residual table (1, 2, 3, 4, 3, 3, 1 blocks).
Attention positions inside each inverted-residual block: ``standard`` after the projection
(its BN), before the residual addition; ``dw`` after the depthwise conv (BN + ReLU6);
``post`` after the residual addition (blocks with a residual only, so stages 2-6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from .insert import MakeAttention, after, allow_inplace

if TYPE_CHECKING:
    from torchvision.models.mobilenetv2 import MobileNetV2

STAGE_BLOCKS = (1, 2, 3, 4, 3, 3, 1)
POSITIONS = ("standard", "dw", "post")


def valid_stages(position: str) -> list[int]:
    """Stages where ``position`` exists: ``post`` needs a residual, i.e. a stage of 2+ blocks."""
    return [s for s, n in enumerate(STAGE_BLOCKS, 1) if position != "post" or n > 1]


def build_mobilenet(num_classes: int, in_channels: int, small_input: bool, width_mult: float) -> MobileNetV2:
    """The plain network; ``small_input`` makes the first conv stride 1."""
    from torchvision import models as tvm

    model = tvm.mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width_mult)
    stem = model.features[0][0]
    if small_input or in_channels != 3:
        model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, 1 if small_input else 2, 1, bias=False)
        nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")
    return model


def stage_blocks(model: MobileNetV2) -> list[tuple[int, int]]:
    """(stage, index into ``model.features``) of every inverted-residual block."""
    out, index = [], 1
    for stage, count in enumerate(STAGE_BLOCKS, 1):
        out += [(stage, index + j) for j in range(count)]
        index += count
    return out


def insert_mobilenet(model: MobileNetV2, position: str, stages: list[int], make: MakeAttention) -> None:
    """Put ``make(channels)`` at ``position`` in every block of the chosen stages (1-based)."""
    from torchvision.models.mobilenetv2 import InvertedResidual

    for stage, index in stage_blocks(model):
        if stage not in stages:
            continue
        block = model.features[index]
        assert isinstance(block, InvertedResidual)
        if position == "standard":
            block.conv.append(allow_inplace(make(block.out_channels)))  # input: the projection's output
        elif position == "dw":
            dw = len(block.conv) - 3
            block.conv[dw] = after(block.conv[dw], make(block.conv[dw].out_channels))
        elif block.use_res_connect:
            model.features[index] = after(block, make(block.out_channels))
