"""ResNets from torchvision (ImageNet: 18/34/50/101) and CIFAR ResNet-20/56 from its BasicBlock
(``cifar_resnet.py``). torchvision is imported only when a network is built: importing it costs
seconds (it loads ``torch._dynamo``), and listing backbones or checking a space needs none.

Attention positions inside each residual block:
``standard`` end of the residual branch, before the addition (after the last BN);
``pre`` start of the residual branch (before the first conv);
``post`` after the addition and ReLU; ``identity`` on the shortcut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from .insert import MakeAttention, after, before, on_shortcut

if TYPE_CHECKING:
    from torchvision.models.resnet import ResNet

#: ImageNet ResNets, each built by torchvision's function of that name.
IMAGENET = ("resnet18", "resnet34", "resnet50", "resnet101")
#: CIFAR ResNets (He et al. 2016, sec. 4.2): 6n+2 layers, n basic blocks per stage.
CIFAR_BLOCKS = {"resnet20": 3, "resnet56": 9}
POSITIONS = ("standard", "pre", "post", "identity")


def num_stages(backbone: str) -> int:
    return 3 if backbone in CIFAR_BLOCKS else 4


def build_resnet(backbone: str, num_classes: int, in_channels: int, small_input: bool) -> ResNet:
    """The plain network; ``small_input`` swaps the ImageNet stem for a 3x3 stride-1 conv, no max-pool."""
    if backbone in CIFAR_BLOCKS:
        from .cifar_resnet import CifarResNet

        return CifarResNet(CIFAR_BLOCKS[backbone], num_classes, in_channels)
    from torchvision import models as tvm

    model = getattr(tvm, backbone)(weights=None, num_classes=num_classes)
    if small_input:
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


def insert_resnet(model: ResNet, position: str, stages: list[int], make: MakeAttention) -> None:
    """Put ``make(channels)`` at ``position`` in every block of the chosen stages (1-based)."""
    from torchvision.models.resnet import Bottleneck

    for stage in stages:
        layer = getattr(model, f"layer{stage}")
        for i, block in enumerate(layer):
            last_bn = "bn3" if isinstance(block, Bottleneck) else "bn2"
            out = getattr(block, last_bn).num_features
            if position == "standard":
                setattr(block, last_bn, after(getattr(block, last_bn), make(out)))
            elif position == "pre":
                block.conv1 = before(block.conv1, make(block.conv1.in_channels))
            elif position == "identity":
                block.downsample = on_shortcut(block.downsample, make(out))
            else:
                layer[i] = after(block, make(out))
