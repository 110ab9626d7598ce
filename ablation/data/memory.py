"""Batches from a data set held in memory as uint8 tensors, augmented with batched tensor ops.

Small data sets (digits, Fashion-MNIST, CIFAR, synthetic) fit in memory; cropping and flipping
whole batches with tensor indexing keeps a 2-core machine busy with the model, not with per-image
PIL transforms. Shuffling and augmentation draw from a generator seeded by ``(seed, epoch)``, so
an epoch's batches do not depend on what ran before it (a resumed trial sees the same batches).
An epoch's random draws are made on the CPU up front, in the order a batch-by-batch draw makes
them, and moved to the data's device once: with the data on a GPU, no batch waits on a copy.
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

import torch


class MemoryLoader:
    """Iterate ``(images, labels)`` batches: images normalised float (N, C, H, W), labels int64."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        *,
        batch_size: int,
        train: bool,
        seed: int = 0,
        pad: int = 0,
        flip: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("images must be a uint8 tensor shaped (N, C, H, W)")
        self.images = images
        self.labels = labels.long()
        self.mean = mean.float().view(1, -1, 1, 1)
        self.std = std.float().view(1, -1, 1, 1)
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.pad = pad if train else 0
        self.flip = flip and train
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.train and n >= self.batch_size else -(-n // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation the next iteration uses."""
        self.epoch = epoch

    def to(self, device: Union[str, torch.device]) -> "MemoryLoader":
        """Keep the data on ``device`` so that batches are cut and augmented there."""
        for name in ("images", "labels", "mean", "std"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, device = len(self.labels), self.images.device
        draws: Optional[list[dict[str, torch.Tensor]]] = None
        if self.train:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=gen)
            draws = [
                self._draw(len(order[b * self.batch_size : (b + 1) * self.batch_size]), gen) for b in range(len(self))
            ]
            order = order.to(device)
            if draws and draws[0]:  # one copy of each kind of draw for the whole epoch
                stacked = {k: torch.stack([d[k] for d in draws]).to(device) for k in draws[0]}
                draws = [{k: v[b] for k, v in stacked.items()} for b in range(len(draws))]
        else:
            order = torch.arange(n, device=device)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.images[idx]
            if draws is not None:
                x = self._augment(x, draws[b])
            x = (x.float().div_(255) - self.mean) / self.std
            yield x, self.labels[idx]

    def _draw(self, b: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One batch's random crop offsets and flips (on the CPU, in a fixed order)."""
        out = {}
        if self.pad:
            out["dy"] = torch.randint(0, 2 * self.pad + 1, (b,), generator=gen)
            out["dx"] = torch.randint(0, 2 * self.pad + 1, (b,), generator=gen)
        if self.flip:
            out["flip"] = torch.rand(b, generator=gen) < 0.5
        return out

    def _augment(self, x: torch.Tensor, draw: dict[str, torch.Tensor]) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.pad:
            p = self.pad
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            rows = (draw["dy"][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (draw["dx"][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            x = padded[
                torch.arange(b, device=x.device)[:, None, None, None],
                torch.arange(c, device=x.device)[None, :, None, None],
                rows,
                cols,
            ]
        if self.flip:
            x = torch.where(draw["flip"][:, None, None, None], x.flip(3), x)
        return x
