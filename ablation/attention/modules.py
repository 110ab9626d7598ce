"""Registers every attention module (imported by the registry when it is imported).

SE, ECA and CBAM come from timm with the papers' settings; Coordinate and Triplet attention
and SCA are written here (``coord.py``, ``triplet.py``, ``sca.py``). timm is imported only when
one of its modules is built (importing it costs about a second of CPU, and torchvision with it),
so that a space or a command that builds none of them never loads it.
"""

from __future__ import annotations

from typing import Optional

from torch import nn

from .coord import CoordAttention
from .options import check_kernel, check_reduction, reduced_channels
from .spec import register
from .sca import SCA
from .triplet import TripletAttention


@register("none")
def none(channels: int) -> nn.Module:
    """No attention (identity): the baseline."""
    return nn.Identity()


@register("se", options=("reduction",))
def se(channels: int, reduction: int = 16) -> nn.Module:
    """Squeeze-and-Excitation (Hu et al. 2018): FC layers with bias, ``C // reduction`` hidden units."""
    from timm.layers import SEModule

    hidden = reduced_channels(channels, check_reduction("se", reduction))
    return SEModule(channels, rd_channels=hidden, bias=True)


@register("eca", options=("kernel_size",))
def eca(channels: int, kernel_size: Optional[int] = None) -> nn.Module:
    """ECA (Wang et al. 2020); ``kernel_size=None`` picks the paper's adaptive size from C."""
    from timm.layers import EcaModule

    if kernel_size is None:
        return EcaModule(channels)
    return EcaModule(None, kernel_size=check_kernel("eca", kernel_size))


@register("cbam", options=("reduction", "kernel_size"))
def cbam(channels: int, reduction: int = 16, kernel_size: int = 7) -> nn.Module:
    """CBAM (Woo et al. 2018): channel MLP with bias as in the authors' code, then a k x k spatial gate."""
    from timm.layers.cbam import CbamModule

    hidden = reduced_channels(channels, check_reduction("cbam", reduction))
    return CbamModule(
        channels, rd_channels=hidden, spatial_kernel_size=check_kernel("cbam", kernel_size), mlp_bias=True
    )


register("coord", options=("reduction",))(CoordAttention)
register("triplet", options=("kernel_size",))(TripletAttention)
register("sca", options=("kernel_size", "branches", "pool", "fuse", "norm", "gate"))(SCA)
