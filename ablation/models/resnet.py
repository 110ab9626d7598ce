"""ResNets from torchvision (ImageNet: 18/34/50/101) and CIFAR ResNet-20/56 from its BasicBlock.

Attention positions inside each residual block:
``standard`` end of the residual branch, before the addition (after the last BN);
``pre`` start of the residual branch (before the first conv);
``post`` after the addition and ReLU; ``identity`` on the shortcut.
"""
from __future__ import annotations

from torch import nn
from torchvision import models as tvm
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from .insert import MakeAttention, after, before, on_shortcut

IMAGENET = {
    "resnet18": tvm.resnet18,
    "resnet34": tvm.resnet34,
    "resnet50": tvm.resnet50,
    "resnet101": tvm.resnet101,
}
#: CIFAR ResNets (He et al. 2016, sec. 4.2): 6n+2 layers, n basic blocks per stage.
CIFAR_BLOCKS = {"resnet20": 3, "resnet56": 9}
POSITIONS = ("standard", "pre", "post", "identity")


def num_stages(backbone: str) -> int:
    return 3 if backbone in CIFAR_BLOCKS else 4


class CifarResNet(ResNet):
    """3 stages of basic blocks, 16/32/64 channels, 3x3 stem, no max-pool.

    Shortcuts that change shape use torchvision's 1x1 conv + BN projection (option B of He et
    al.; the paper's CIFAR nets used parameter-free option A, 0.27M params for ResNet-20, option
    B adds 2.8k). Reuses torchvision's ``_make_layer`` and ``forward``.
    """

    def __init__(self, blocks: int, num_classes: int = 10, in_channels: int = 3) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = 16, 1, 1, 64
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(BasicBlock, 16, blocks)
        self.layer2 = self._make_layer(BasicBlock, 32, blocks, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 64, blocks, stride=2)
        self.layer4 = nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def build_resnet(backbone: str, num_classes: int, in_channels: int, small_input: bool) -> ResNet:
    """The plain network; ``small_input`` swaps the ImageNet stem for a 3x3 stride-1 conv, no max-pool."""
    if backbone in CIFAR_BLOCKS:
        return CifarResNet(CIFAR_BLOCKS[backbone], num_classes, in_channels)
    model = IMAGENET[backbone](weights=None, num_classes=num_classes)
    if small_input:
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


def insert_resnet(model: ResNet, position: str, stages: list[int], make: MakeAttention) -> None:
    """Put ``make(channels)`` at ``position`` in every block of the chosen stages (1-based)."""
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
