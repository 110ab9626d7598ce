"""A data set's splits in loaders: ``build_data(name, ...) -> DataBundle`` with train, val and test loaders.

In-memory sets (digits, fashion-mnist, cifar10, cifar100, synthetic) are held as uint8 tensors
and augmented per batch (see :mod:`ablation.data.memory`); ``imagefolder`` streams images through
a ``DataLoader`` with workers. The images come from :mod:`ablation.data.sources`. Augmentation per set:

- ``digits`` (8x8 upsampled to 32 px): random crop, padding 4 (one original pixel). No flip:
  a mirrored digit is a different glyph (or none), which a researcher would not expect.
- ``fashion-mnist`` (28 px): random crop, padding 2, horizontal flip (garments are left/right
  symmetric; flipping is the usual practice).
- ``cifar10`` / ``cifar100`` (32 px): random crop, padding 4, horizontal flip.
- ``synthetic``: none (its signal is already randomly shifted).
- ``imagefolder``: random resized crop 224 + flip; evaluation resize 256 + centre crop 224.

Normalisation uses each set's training mean and std per channel (ImageNet's for imagefolder).

Splits: ``val`` is what training selects on (ASHA, Optuna sampling, the best epoch), ``test``
what a report's accuracy columns show. With ``val_split`` > 0, ``val`` is that fraction of the
training images, carved with a fixed seed (:data:`VAL_SEED`), the same for every trial of a sweep
and never trained on; ``test`` is the set's test split. With ``val_split`` = 0 (paper style, as
CIFAR papers do), ``val`` is the test split itself.

Sizes: ``subset`` keeps that many (or that fraction) of the training images left after the
validation carve-out, drawn with the trial's seed; ``eval_subset`` caps the validation and the
test split each (fixed seed: every trial is evaluated on the same images). Neither given: all.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol, Union

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .memory import MemoryLoader
from .sources import Arrays, check_dataset, imagefolder_root, load_arrays

#: Augmentation of the in-memory sets: (crop padding in px, horizontal flip).
AUGMENT: dict[str, tuple[int, bool]] = {
    "digits": (4, False),
    "fashion-mnist": (2, True),
    "cifar10": (4, True),
    "cifar100": (4, True),
    "synthetic": (0, False),
}

#: Seed of the validation carve-out: the same images for every trial, whatever its seed.
VAL_SEED = 0

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Loader(Protocol):
    """What a trial reads of a split: batches of ``(images, labels)``, their number, the number
    of images, and reseeding for each epoch (``MemoryLoader``, ``EpochLoader``)."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    @property
    def num_images(self) -> int: ...


@dataclass
class DataBundle:
    """Train, val (selection) and test loaders (iterables of ``(images, labels)`` with
    ``set_epoch``) and the shape of the task; ``test is val`` when there is no validation split."""

    train: Loader
    val: Loader
    test: Loader
    num_classes: int
    in_channels: int
    input_size: int


def build_data(
    name: str,
    data_dir: Optional[str] = None,
    *,
    batch_size: int,
    workers: int = 0,
    subset: Optional[Union[int, float]] = None,
    seed: int = 0,
    download: bool = False,
    val_split: float = 0.0,
    eval_subset: Optional[Union[int, float]] = None,
) -> DataBundle:
    """Load data set ``name`` and wrap it in loaders.

    ``val_split`` carves that fraction of the training images into the validation split (fixed
    seed). ``subset`` then keeps a fraction (0 < f < 1) or a whole count of the remaining training
    images, drawn with ``seed``; ``eval_subset`` (the same forms) keeps that much of the
    validation and of the test split each, drawn with a fixed seed (every trial seed is
    evaluated on the same images). Missing files raise ``DataError`` naming the folders searched.
    """
    check_dataset(name)
    if not 0 <= val_split < 1:
        raise ConfigError(f"val_split must be a fraction in [0, 1), got {val_split!r}")
    sizes = _Sizes(check_subset(subset), check_subset(eval_subset, "eval_subset"))
    base = name.split(":", 1)[0]
    if base == "imagefolder":
        return _imagefolder(data_dir, batch_size, workers, sizes, seed, val_split)
    return _memory_bundle(base, load_arrays(name, data_dir, download), batch_size, sizes, seed, val_split)


def carve_val(n: int, val_split: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (training, validation) of ``n`` training images, the validation share drawn with
    :data:`VAL_SEED`; no validation images for ``val_split`` = 0."""
    if val_split <= 0:
        return np.arange(n), np.arange(0)
    order = np.random.default_rng(VAL_SEED).permutation(n)
    n_val = min(max(1, round(val_split * n)), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def check_subset(subset: Any, key: str = "subset") -> Optional[Union[int, float]]:
    """``subset`` (or ``eval_subset``: ``key`` names it) as a fraction in (0, 1) or a whole count
    >= 1 (a whole float becomes an int: a count); anything else raises ``ConfigError`` naming
    ``key`` and the allowed values."""
    if subset is None:
        return None
    if isinstance(subset, numbers.Real) and not isinstance(subset, bool) and math.isfinite(value := float(subset)):
        if 0 < value < 1:
            return value
        if value >= 1 and value.is_integer():
            return int(value)
    raise ConfigError(
        f"{key} must be a fraction in (0, 1) (e.g. 0.1) or a whole count >= 1 of images (e.g. 5000), got {subset!r}"
    )


@dataclass(frozen=True)
class _Sizes:
    """How many images to keep: ``train`` of the training split, ``eval`` of validation and test
    each (checked by :func:`check_subset`; None: all)."""

    train: Optional[Union[int, float]]
    eval: Optional[Union[int, float]]


def _subset_indices(n: int, subset: Optional[Union[int, float]], seed: int) -> Optional[np.ndarray]:
    if subset is None:
        return None
    keep = max(1, round(subset * n)) if isinstance(subset, float) else subset
    if keep >= n:
        return None
    return np.sort(np.random.default_rng(seed).permutation(n)[:keep])


def _pick(idx: np.ndarray, subset: Any, seed: int) -> np.ndarray:
    """``idx`` reduced by ``subset`` (drawn with ``seed``)."""
    keep = _subset_indices(len(idx), subset, seed)
    return idx if keep is None else idx[keep]


def _split_indices(
    n_train: int, n_test: int, sizes: _Sizes, seed: int, val_split: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (training, validation, test): the validation carve-out, then ``sizes``."""
    train_pool, val_pool = carve_val(n_train, val_split)
    return (
        _pick(train_pool, sizes.train, seed),
        _pick(val_pool, sizes.eval, VAL_SEED),
        _pick(np.arange(n_test), sizes.eval, VAL_SEED),
    )


def _memory_bundle(base: str, a: Arrays, batch_size: int, sizes: _Sizes, seed: int, val_split: float) -> DataBundle:
    train_idx, val_idx, test_idx = _split_indices(len(a.train_y), len(a.test_y), sizes, seed, val_split)
    tensors = [
        torch.from_numpy(np.ascontiguousarray(v))
        for v in (
            a.train_x[train_idx],
            a.train_y[train_idx],
            a.train_x[val_idx],
            a.train_y[val_idx],
            a.test_x[test_idx],
            a.test_y[test_idx],
        )
    ]
    tx, ty, vx, vy, sx, sy = tensors
    pixels = tx.transpose(0, 1).reshape(tx.shape[1], -1).float().div_(255)
    mean, std = pixels.mean(1), pixels.std(1).clamp_min(1e-3)
    pad, flip = AUGMENT[base]
    common: dict[str, Any] = dict(mean=mean, std=std, batch_size=batch_size, seed=seed)
    test = MemoryLoader(sx, sy, train=False, **common)
    return DataBundle(
        train=MemoryLoader(tx, ty, train=True, pad=pad, flip=flip, **common),
        val=MemoryLoader(vx, vy, train=False, **common) if len(val_idx) else test,
        test=test,
        num_classes=a.num_classes,
        in_channels=tx.shape[1],
        input_size=tx.shape[2],
    )


class EpochLoader:
    """A ``DataLoader`` whose shuffle and worker seeds follow ``(seed, epoch)``; workers restart
    each epoch (not persistent) so that their augmentation is reseeded too."""

    def __init__(self, dataset: Any, *, batch_size: int, workers: int, train: bool, seed: int) -> None:
        from torch.utils.data import DataLoader

        self.seed, self.generator, self.images = seed, torch.Generator(), len(dataset)
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            drop_last=train and len(dataset) >= batch_size,
            num_workers=workers,
            generator=self.generator,
            pin_memory=torch.cuda.is_available(),
        )
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed * 100_003 + epoch)

    @property
    def num_images(self) -> int:
        return self.images

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


def _imagefolder(
    data_dir: Optional[str], batch_size: int, workers: int, sizes: _Sizes, seed: int, val_split: float
) -> DataBundle:
    from torch.utils.data import Subset
    from torchvision import datasets, transforms

    root = imagefolder_root(data_dir)
    norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose(
        [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm]
    )
    val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), norm])
    try:
        train = datasets.ImageFolder(str(root / "train"), train_tf)
        train_eval = datasets.ImageFolder(str(root / "train"), val_tf)  # the carved val split, unaugmented
        test = datasets.ImageFolder(str(root / "val"), val_tf)  # ImageNet's "val" is the test split here
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"imagefolder {root}: {exc}") from exc
    if train.classes != test.classes:
        raise DataError(f"imagefolder {root}: train/ and val/ have different class folders")
    train_idx, val_idx, test_idx = _split_indices(len(train), len(test), sizes, seed, val_split)
    common = dict(batch_size=batch_size, workers=workers, seed=seed)
    test_loader = EpochLoader(Subset(test, test_idx.tolist()), train=False, **common)
    return DataBundle(
        train=EpochLoader(Subset(train, train_idx.tolist()), train=True, **common),
        val=EpochLoader(Subset(train_eval, val_idx.tolist()), train=False, **common) if len(val_idx) else test_loader,
        test=test_loader,
        num_classes=len(train.classes),
        in_channels=3,
        input_size=224,
    )
