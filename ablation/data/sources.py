"""The data sets by name (:data:`DATASETS`, :func:`check_dataset`) and the readers of their files
(:func:`load_arrays`): they return uint8 (N, C, H, W) arrays and int labels.

Nothing here downloads unless asked: where files are missing a ``DataError`` says where they
were looked for and where to put them.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ConfigError, DataError

SYSTEM_DATA_DIR = Path("/usr/share/datasets")


#: Data set names; ``synthetic`` also takes options, e.g. ``synthetic:size=16,channels=1,classes=4``.
DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "cifar10", "cifar100", "imagefolder", "synthetic")


@dataclass
class Arrays:
    """A data set in memory: uint8 images (N, C, H, W) and int64 labels of its training and
    test splits (the validation split, when there is one, is carved from training by ``build_data``)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


def candidate_dirs(name: str, data_dir: Optional[str]) -> list[Path]:
    """Where data set ``name`` is looked for, in order: ``data_dir`` (itself or its ``name``
    sub-folder), ``$ABLATION_DATA_DIR/name``, then ``/usr/share/datasets/name``."""
    dirs: list[Path] = []
    if data_dir:
        dirs += [Path(data_dir).expanduser(), Path(data_dir).expanduser() / name]
    if os.environ.get("ABLATION_DATA_DIR"):
        dirs.append(Path(os.environ["ABLATION_DATA_DIR"]).expanduser() / name)
    dirs.append(SYSTEM_DATA_DIR / name)
    return dirs


def missing_error(name: str, dirs: list[Path], wanted: str) -> DataError:
    looked = ", ".join(str(d) for d in dirs)
    return DataError(
        f"data set {name!r}: {wanted} not found; looked in {looked}. Put the files in one of "
        f"these folders (or pass data_dir=DIR / set $ABLATION_DATA_DIR)"
    )


# --- digits -----------------------------------------------------------------------------------


def load_digits_arrays(size: int = 32, test_fraction: float = 0.2) -> Arrays:
    """scikit-learn's bundled 8x8 digits (a copy embedded here, read without scikit-learn:
    ``digits.py``), upsampled (bilinear) to ``size`` px; the split is fixed (stratified, seed 0, as
    scikit-learn's ``train_test_split`` makes it) so that every trial seed is evaluated on the same images."""
    import torch

    from .digits import load_digits_raw, stratified_split

    images, y = load_digits_raw()
    x = torch.from_numpy(images).float().div(16).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    pixels = x.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    train, test = stratified_split(y, test_fraction, seed=0)
    return Arrays(pixels[train], y[train], pixels[test], y[test], 10)


# --- Fashion-MNIST (idx files) ----------------------------------------------------------------

FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (``.gz`` or plain) of unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read idx file {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says shape {shape} but holds {body.size} bytes")
    return body.reshape(shape)


def _find_idx(folder: Path, stem: str) -> Optional[Path]:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def load_fashion_arrays(data_dir: Optional[str]) -> Arrays:
    """Fashion-MNIST from its four idx files (train 60k, test 10k)."""
    dirs = candidate_dirs("fashion-mnist", data_dir)
    for folder in dirs:
        found = {k: _find_idx(folder, stem) for k, stem in FASHION_FILES.items()}
        paths = {k: p for k, p in found.items() if p is not None}
        if len(paths) == len(found):
            arr = {k: read_idx(p) for k, p in paths.items()}
            for split in ("train", "test"):
                if len(arr[f"{split}_x"]) != len(arr[f"{split}_y"]):
                    raise DataError(f"fashion-mnist in {folder}: {split} images and labels differ in count")
            return Arrays(
                arr["train_x"][:, None],
                arr["train_y"].astype(np.int64),
                arr["test_x"][:, None],
                arr["test_y"].astype(np.int64),
                10,
            )
    names = ", ".join(f"{s}[.gz]" for s in FASHION_FILES.values())
    raise missing_error("fashion-mnist", dirs, names)


# --- CIFAR-10/100 (torchvision's pickled batches) -----------------------------------------------


def _cifar_layout(name: str):
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    train = [f for f, _ in cls.train_list]
    test = [f for f, _ in cls.test_list]
    return cls, cls.base_folder, train, test, label_key


def _read_cifar_batches(folder: Path, files: list[str], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the pickled batches ``files``; any unreadable batch is a ``DataError``
    (unpickling a damaged file can raise almost any exception, hence the broad catch)."""
    xs, ys = [], []
    for fname in files:
        try:
            with open(folder / fname, "rb") as f:
                entry = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry[label_key], dtype=np.int64).reshape(-1))
        except Exception as exc:
            raise DataError(
                f"cannot read CIFAR batch {folder / fname} (damaged or not a CIFAR batch; replace it): {exc!r}"
            ) from None
        if len(xs[-1]) != len(ys[-1]):
            raise DataError(f"CIFAR batch {folder / fname}: {len(xs[-1])} images but {len(ys[-1])} labels")
    return np.concatenate(xs), np.concatenate(ys)


def load_cifar_arrays(name: str, data_dir: Optional[str], download: bool = False) -> Arrays:
    """CIFAR-10/100 in torchvision's layout (``cifar-10-batches-py/`` or ``cifar-100-python/``
    under the data folder); ``download`` asks torchvision to fetch them first (needs network)."""
    cls, base, train_files, test_files, label_key = _cifar_layout(name)
    dirs = candidate_dirs(name, data_dir)
    if download:
        root = dirs[0] if len(dirs) > 1 else Path.home() / ".cache" / "ablation" / name
        try:
            cls(str(root), train=True, download=True)
        except Exception as exc:  # network or disk failure: say what was attempted
            raise DataError(f"data set {name!r}: download to {root} failed: {exc}") from exc
        dirs.insert(0, root)
    for parent in dirs:
        folder = parent / base
        if all((folder / f).is_file() for f in train_files + test_files):
            tx, ty = _read_cifar_batches(folder, train_files, label_key)
            vx, vy = _read_cifar_batches(folder, test_files, label_key)
            return Arrays(tx, ty, vx, vy, 10 if name == "cifar10" else 100)
    raise missing_error(name, dirs, f"{base}/ with {', '.join(train_files + test_files)}")


# --- synthetic ----------------------------------------------------------------------------------

SYNTHETIC_DEFAULTS = {"size": 32, "channels": 3, "classes": 10, "train": 1000, "val": 500, "noise": 0.5}


def parse_synthetic(name: str) -> dict:
    """Options of ``synthetic[:key=value,...]`` (keys: size, channels, classes, train, val, noise)."""
    opts = dict(SYNTHETIC_DEFAULTS)
    _, _, spec = name.partition(":")
    for item in filter(None, spec.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in opts:
            raise ConfigError(
                f"dataset {name!r}: bad synthetic option {item!r}; use synthetic:key=value,... with keys {sorted(opts)}"
            )
        try:
            opts[key] = type(opts[key])(value)
        except ValueError:
            raise ConfigError(f"dataset {name!r}: option {key} must be a number, got {value!r}") from None
        if opts[key] < 0 or (opts[key] == 0 and key != "noise"):
            raise ConfigError(f"dataset {name!r}: option {key} must be positive, got {value!r}")
    return opts


def make_synthetic_arrays(size: int, channels: int, classes: int, train: int, val: int, noise: float) -> Arrays:
    """Images whose class sets a smooth pattern (a plane wave of class-specific orientation,
    frequency and colour), randomly shifted in phase and buried in noise: learnable, not trivial.
    The content is fixed (seed 0); trial seeds change only the training order."""
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, np.pi, classes)
    freq = rng.uniform(1.0, 3.0, classes)
    colour = rng.uniform(-1, 1, (classes, channels))
    yy, xx = np.meshgrid(np.linspace(0, 2 * np.pi, size), np.linspace(0, 2 * np.pi, size), indexing="ij")

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, n)
        phase = rng.uniform(0, 2 * np.pi, n)
        proj = np.cos(angle[y])[:, None, None] * xx + np.sin(angle[y])[:, None, None] * yy
        wave = np.sin(freq[y][:, None, None] * proj + phase[:, None, None])
        x = colour[y][:, :, None, None] * wave[:, None] + noise * rng.standard_normal((n, channels, size, size))
        x = np.clip(127.5 + 60 * x, 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)

    tx, ty = sample(train)
    vx, vy = sample(val)
    return Arrays(tx, ty, vx, vy, classes)


def check_dataset(name: str) -> str:
    """Return ``name`` if it names a data set (with valid options), else raise ``ConfigError``."""
    base = name.split(":", 1)[0]
    if base not in DATASETS:
        raise ConfigError(f"dataset {name!r} is unknown; allowed: {', '.join(DATASETS)}")
    if base == "synthetic":
        parse_synthetic(name)
    elif ":" in name:
        raise ConfigError(f"dataset {name!r}: only 'synthetic' takes options after ':'")
    return name


def load_arrays(name: str, data_dir: Optional[str], download: bool = False) -> Arrays:
    """The images and labels of the in-memory data set ``name`` (any of :data:`DATASETS` but
    ``imagefolder``, checked by :func:`check_dataset`)."""
    base = name.split(":", 1)[0]
    if base == "digits":
        return load_digits_arrays()
    if base == "fashion-mnist":
        return load_fashion_arrays(data_dir)
    if base in ("cifar10", "cifar100"):
        return load_cifar_arrays(base, data_dir, download)
    return make_synthetic_arrays(**parse_synthetic(name))


def imagefolder_root(data_dir: Optional[str]) -> Path:
    """The first folder searched for ``imagefolder`` that has ``train/`` and ``val/`` class folders;
    ``DataError`` naming the folders searched where none has."""
    dirs = candidate_dirs("imagefolder", data_dir)
    root = next((d for d in dirs if (d / "train").is_dir() and (d / "val").is_dir()), None)
    if root is None:
        raise missing_error("imagefolder", dirs, "train/ and val/ class folders")
    return root
