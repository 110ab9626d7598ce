"""Coordinate Attention (Hou, Zhou and Feng, CVPR 2021), as in the authors' code.

Average-pool along W and along H, a shared 1x1 conv to ``max(8, C // reduction)`` channels
with BN and h-swish, then one 1x1 conv and sigmoid per direction: gates (C, H, 1) and (C, 1, W).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .options import check_reduction


class CoordAttention(nn.Module):
    """Coordinate attention; ``reduction`` 32 and a floor of 8 mid channels as in the paper."""

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        mid = max(8, channels // check_reduction("coord", reduction))
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(mid, channels, 1)
        self.conv_w = nn.Conv2d(mid, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2:]
        x_h = x.mean(3, keepdim=True)
        x_w = x.mean(2, keepdim=True).transpose(2, 3)
        y = self.act(self.bn1(self.conv1(torch.cat((x_h, x_w), 2))))
        y_h, y_w = torch.split(y, [h, w], 2)
        a_h = torch.sigmoid(self.conv_h(y_h))
        a_w = torch.sigmoid(self.conv_w(y_w.transpose(2, 3)))
        return x * a_h * a_w
