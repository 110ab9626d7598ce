"""CIFAR ResNet-20/56 (He et al. 2016, sec. 4.2) from torchvision's ResNet and BasicBlock; in a
module of its own so that ``resnet.py`` can be imported without torchvision."""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet


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
