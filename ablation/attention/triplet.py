"""Triplet Attention (Misra et al., WACV 2021).

Three branches, each a Z-pool (max and mean over one dimension, 2 planes), a k x k conv to one
plane, BN and sigmoid, on the (C, W), (C, H) and (H, W) planes; the three gated outputs are
averaged. The authors permute the tensor so that each plane is the last two dimensions; pooling
along a dimension in place gives the same planes without copies (the (C, H) branch sees the
transpose of the authors' (H, C) plane, which only transposes its learned kernel).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .options import check_kernel


class ZPoolGate(nn.Module):
    """Z-pool over ``dim``, conv + BN, sigmoid: a gate on the remaining plane, shape (N, 1, A, B)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x: Tensor, dim: int) -> Tensor:
        pooled = torch.stack((x.amax(dim), x.mean(dim)), 1)
        return torch.sigmoid(self.bn(self.conv(pooled)))


class TripletAttention(nn.Module):
    """Triplet attention with the paper's 7x7 kernel by default."""

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__()
        k = check_kernel("triplet", kernel_size)
        self.cw = ZPoolGate(k)
        self.ch = ZPoolGate(k)
        self.hw = ZPoolGate(k)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g_cw = self.cw(x, 2).view(n, c, 1, w)
        g_ch = self.ch(x, 3).view(n, c, h, 1)
        g_hw = self.hw(x, 1)
        return x * ((g_cw + g_ch + g_hw) * (1.0 / 3))
