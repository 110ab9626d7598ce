"""SCA: spatial-channel attention (our reading of Liu et al. 2022).

Channel and spatial information are modelled together with directional pooling and no
channel reduction. Each branch pools ``x`` along one direction and runs one small
convolution over the pooled map:

- ``h``: pool over W to a (C, H) plane, one single-channel k x k conv over that plane
  (neighbouring channels and rows interact), sigmoid: a (C, H, 1) gate;
- ``w``: the same over (C, W): a (C, 1, W) gate;
- ``c``: global pool to C values, a 1-D conv of size k along channels: a (C, 1, 1) gate
  (a 2D global pooling, which the paper's abstract criticises);
- ``s``: pool over channels to an (H, W) plane, one k x k conv over it: a (1, H, W) gate (the
  third branch of Triplet Attention, CBAM's spatial gate).

The pooled (C, L) plane is convolved as an (L, C) image (its transpose: channels along the
image width), which is the same family of k x k kernels and runs several times faster on CPU
for deep, narrow stages.
By default every forward pass runs the eager PyTorch ops below, like every peer module; the
fused CPU inference kernel (``sca_kernel``, reads the map once) runs only where the
``fused-sca`` execution path turns it on (``ablation.design.execution``), so that a comparison with
peers on plain PyTorch ops is never made unawares.
Each gate is ``sigmoid`` or ``2sigmoid`` (``gate``: twice the sigmoid, so that a gate starts near
1 and a block near identity, as NFNets scale their SE gates), optionally after BatchNorm on its
convolution's output (``norm: bn``, as Triplet Attention does), and the gates are fused by
product (``mul``, as Coordinate Attention) or mean (``mean``, as Triplet Attention).
Parameters per insertion: ``P*k*k`` for each of ``h``/``w``/``s`` plus ``P*k`` for ``c`` (``P`` =
2 planes for ``avgmax``, else 1), plus 2 per branch with ``norm: bn``, independent of C.

The default reading, ``branches: hws, fuse: mul, gate: 2sigmoid, norm: none`` (k = 3, average
pooling), was chosen by the reading study (``docs/sca_reading.md``): it has no 2D global pooling
and no channel reduction, starts near identity (three gates near 1 multiplied), and trained with
no collapsed seed. The reading of the first releases is ``branches: hwc, gate: sigmoid``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from . import sca_kernel
from .options import check_choice, check_kernel

BRANCHES = "hwcs"
POOLS = ("avg", "max", "avgmax")
FUSES = ("mul", "mean")
NORMS = ("none", "bn")
GATES = ("sigmoid", "2sigmoid")


def check_branches(branches: object) -> str:
    """A non-empty string of distinct letters from ``hwcs``, returned in canonical order."""
    if (
        not isinstance(branches, str)
        or not branches
        or set(branches) - set(BRANCHES)
        or len(set(branches)) != len(branches)
    ):
        raise ConfigError(
            f"sca: branches must be a non-empty string of distinct letters from {BRANCHES!r} "
            f"(e.g. 'hwc', 'hws', 'hw', 'c'), got {branches!r}"
        )
    return "".join(b for b in BRANCHES if b in branches)


class SCA(nn.Module):
    """Directional-pooling gates over (C, H), (C, W) and C; see the module docstring.

    ``fused`` (an attribute, False by default, not an ablation option): run the fused CPU
    inference kernel where it applies; set by the ``fused-sca`` execution path only.
    ``inplace`` (an attribute, False by default, not an ablation option): the fused inference
    kernel writes its result over the input, as torchvision's ``ReLU(inplace=True)`` does. Only
    safe where nothing else reads the input afterwards; ``build_model`` sets it where the
    input is the output of the layer just before (``ablation.models.insert.after``). Training
    and the eager path never write in place.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        branches: str = "hws",
        pool: str = "avg",
        fuse: str = "mul",
        norm: str = "none",
        gate: str = "2sigmoid",
    ) -> None:
        super().__init__()
        k = check_kernel("sca", kernel_size)
        self.branches = check_branches(branches)
        self.pool = check_choice("sca", "pool", pool, POOLS)
        self.fuse = check_choice("sca", "fuse", fuse, FUSES)
        self.norm = check_choice("sca", "norm", norm, NORMS)
        self.gate = check_choice("sca", "gate", gate, GATES)
        self.kernel_size = k
        self.fused = False
        self.inplace = False
        planes = 2 if pool == "avgmax" else 1
        self.conv_h = nn.Conv2d(planes, 1, k, padding=k // 2, bias=False) if "h" in self.branches else None
        self.conv_w = nn.Conv2d(planes, 1, k, padding=k // 2, bias=False) if "w" in self.branches else None
        self.conv_c = nn.Conv1d(planes, 1, k, padding=k // 2, bias=False) if "c" in self.branches else None
        self.conv_s = nn.Conv2d(planes, 1, k, padding=k // 2, bias=False) if "s" in self.branches else None
        bn = {"h": nn.BatchNorm2d, "w": nn.BatchNorm2d, "c": nn.BatchNorm1d, "s": nn.BatchNorm2d}
        self.norms = nn.ModuleDict({b: bn[b](1) for b in self.branches}) if self.norm == "bn" else None
        # the fused kernel computes plain sigmoid gates of h, w and c only
        self.kernel_ok = self.norm == "none" and self.gate == "sigmoid" and "s" not in self.branches

    @staticmethod
    def _mean(x: Tensor, dim) -> Tensor:
        """Mean over ``dim``; over contiguous rows (dim 3) a matrix-vector product, which is
        several times faster than the reduction kernel on CPU for rows of 7-28 elements."""
        if dim == 3 and x.is_contiguous():
            return x @ x.new_full((x.shape[3],), 1.0 / x.shape[3])
        return x.mean(dim)

    def _pool(self, x: Tensor, dim) -> list[Tensor]:
        """Average, max or both of ``x`` over ``dim``."""
        if self.pool == "max":
            return [x.amax(dim)]
        mean = self._mean(x, dim)
        return [mean] if self.pool == "avg" else [mean, x.amax(dim)]

    def _global(self, maps: list[Tensor]) -> list[Tensor]:
        """Global pool from directional (N, C, L) maps: mean of row means, max of row maxes (exact)."""
        return [m.amax(-1) if self.pool == "max" or i == 1 else m.mean(-1) for i, m in enumerate(maps)]

    @staticmethod
    def _stack(maps: list[Tensor]) -> Tensor:
        """(N, C[, L]) maps as P input planes (N, P, C[, L])."""
        return maps[0].unsqueeze(1) if len(maps) == 1 else torch.stack(maps, 1)

    def _activate(self, branch: str, z: Tensor) -> Tensor:
        """A branch's conv output to its gate: optional BatchNorm, then sigmoid or 2 x sigmoid."""
        if self.norms is not None:
            z = self.norms[branch](z)
        g = torch.sigmoid(z)
        return g * 2.0 if self.gate == "2sigmoid" else g

    def _plane_gate(self, branch: str, conv: nn.Conv2d, maps: list[Tensor], dims: tuple[int, ...]) -> Tensor:
        """Gate of the k x k conv over the pooled plane taken as a (L, C) image, permuted by
        ``dims`` into a gate; made contiguous (a small copy) because strided gates slow the
        full-size multiply several times over."""
        return self._activate(branch, conv(self._stack(maps).transpose(2, 3))).permute(dims).contiguous()

    def _conv_weights(self) -> list[Optional[Tensor]]:
        """Weights of conv_h, conv_w, conv_c (None where absent), read from the registries:
        nn.Module attribute lookup would cost more than the kernel itself on small maps."""
        modules = self._modules
        return [
            None if (module := modules.get(name)) is None else module._parameters["weight"]
            for name in ("conv_h", "conv_w", "conv_c")
        ]

    def forward(self, x: Tensor) -> Tensor:
        if not (self.fused and self.kernel_ok):
            return self.forward_eager(x)
        weights = self._conv_weights()
        if sca_kernel.applies(x, weights):
            return sca_kernel.forward(x, self.kernel_size, self.branches, self.pool, self.fuse, weights, self.inplace)
        return self.forward_eager(x)

    def forward_eager(self, x: Tensor) -> Tensor:
        """SCA by PyTorch ops (differentiable, any device and dtype)."""
        n, c = x.shape[:2]
        gates: list[Tensor] = []
        maps: list[Tensor] = []
        if self.conv_h is not None:
            maps = self._pool(x, 3)
            gates.append(self._plane_gate("h", self.conv_h, maps, (0, 3, 2, 1)))
        if self.conv_w is not None:
            along_h = self._pool(x, 2)
            maps = maps or along_h
            gates.append(self._plane_gate("w", self.conv_w, along_h, (0, 3, 1, 2)))
        if self.conv_s is not None:
            gates.append(self._activate("s", self.conv_s(self._stack(self._pool(x, 1)))))  # (N, 1, H, W)
        if self.conv_c is not None:
            pooled = self._global(maps) if maps else self._pool(x, (2, 3))
            gates.append(self._activate("c", self.conv_c(self._stack(pooled))).view(n, c, 1, 1))
        return self._gate(x, gates)

    def _gate(self, x: Tensor, gates: list[Tensor]) -> Tensor:
        """Fuse the gates and gate ``x`` in as few full-size passes as the gates allow: the small
        channel gate (last) is folded into another gate first, and further gates are applied in
        place (a fresh full-size temporary costs more than the multiply on CPU)."""
        mul = self.fuse == "mul"
        count = len(gates)
        if self.conv_c is not None and count > 1:
            gc = gates.pop()
            gates[0] = gates[0] * gc if mul else gates[0] + gc
        if not mul:
            gates = [g * (1.0 / count) for g in gates]
        if len(gates) == 1:
            return x * gates[0]
        if mul:
            out = x * gates[0]
            for g in gates[1:]:
                out = out.mul_(g)
            return out
        total = gates[0] + gates[1]
        for g in gates[2:]:
            total = total.add_(g)
        return total.mul_(x)
