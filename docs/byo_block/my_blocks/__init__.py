"""A user's own blocks for `ablation`: an attention module and a backbone, by import path.

``my_blocks:SimAM`` is a parameter-free attention module after SimAM (Yang et al., ICML 2021):
each neuron is weighted by the inverse of its energy, computed from its squared distance to the
channel's mean. ``my_blocks:tiny_net`` is a backbone that places the attention it is given.
"""

import torch
from torch import nn


class SimAM(nn.Module):
    """x * sigmoid(1 / energy); ``e_lambda`` regularises the channel variance."""

    display_name = "SimAM"  # what report tables and plots call it (else "my_blocks:SimAM")

    def __init__(self, channels: int, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        v = d.sum(dim=(2, 3), keepdim=True) / max(n, 1)
        return x * torch.sigmoid(d / (4 * (v + self.e_lambda)) + 0.5)


def tiny_net(num_classes: int, attention, in_channels: int = 3, width: int = 32) -> nn.Module:
    """Two conv blocks, attention after each, global pooling and a classifier."""
    layers = []
    for i, (cin, cout) in enumerate(((in_channels, width), (width, 2 * width))):
        layers += [
            nn.Conv2d(cin, cout, 3, stride=1 + i, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            attention(cout),
        ]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes))
