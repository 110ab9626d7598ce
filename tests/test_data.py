"""Data sets build from files in each format (written here), augment, subset and fail clearly."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ablation.data import DATASETS, build_data, check_dataset
from ablation.data import digits as digits_module
from ablation.data.memory import MemoryLoader
from ablation.data.sources import load_digits_arrays, read_idx
from ablation.errors import ConfigError, DataError

SHARED_FASHION = Path(__file__).parents[2] / "shared/data/fashion-mnist"


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("ABLATION_DATA_DIR", raising=False)
    monkeypatch.setattr("ablation.data.sources.SYSTEM_DATA_DIR", tmp_path / "system-datasets")


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def write_fashion(folder: Path, n_train: int = 40, n_val: int = 12, compress: bool = True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_val, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_val) % 10,
    }
    for stem, arr in arrays.items():
        write_idx(folder / (stem + (".gz" if compress else "")), arr, compress)
    return arrays


def write_cifar(root: Path, name: str, n_per_batch: int = 6) -> dict:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    key = b"labels" if name == "cifar10" else b"fine_labels"
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for fname, _ in cls.train_list + cls.test_list:
        batch = {
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            key: list(rng.integers(0, 10 if name == "cifar10" else 100, n_per_batch)),
        }
        with open(folder / fname, "wb") as f:
            pickle.dump(batch, f)
    return batch  # the test batch (written last)


def first_batch(loader):
    return next(iter(loader))


def test_dataset_names_cover_the_spec():
    assert set(DATASETS) == {"digits", "fashion-mnist", "cifar10", "cifar100", "imagefolder", "synthetic"}
    with pytest.raises(ConfigError, match="allowed: digits"):
        check_dataset("mnist")
    with pytest.raises(ConfigError, match="size"):
        check_dataset("synthetic:sise=3")


def test_digits_is_real_upsampled_and_split_fixed():
    a = build_data("digits", batch_size=64, seed=0)
    b = build_data("digits", batch_size=64, seed=5)
    assert (a.num_classes, a.in_channels, a.input_size) == (10, 1, 32)
    assert a.train.num_images + a.val.num_images == 1797
    assert torch.equal(a.val.images, b.val.images)  # same validation images for every seed
    x, y = first_batch(a.train)
    assert x.shape == (64, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 0.3 and 0.7 < x.std().item() < 1.3  # normalised


#: sha256 of the digits arrays (train x, train y, test x, test y) as scikit-learn's load_digits and
#: train_test_split(test_size=0.2, random_state=0, stratify=y) made them before they were read here.
DIGITS_SHA256 = "c3266c7740f2b357dfdb313683279f7a5438d1f1b172518655e4dc0a8b643a33"


def _digits_sha256(arrays) -> str:
    h = hashlib.sha256()
    for arr in (arrays.train_x, arrays.train_y, arrays.test_x, arrays.test_y):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def test_digits_arrays_are_pinned_without_scikit_learn():
    """The images, labels and split trials have always used, checked where scikit-learn is absent too."""
    arrays = load_digits_arrays()
    assert (arrays.train_x.shape, arrays.test_x.shape) == ((1437, 1, 32, 32), (360, 1, 32, 32))
    assert arrays.train_x.dtype == np.uint8 and arrays.train_y.dtype == np.int64
    assert _digits_sha256(arrays) == DIGITS_SHA256


def test_digits_match_scikit_learn():
    """Same file, same images and labels, same stratified split as scikit-learn's, for several
    fractions and seeds (not only the one the data set uses)."""
    sklearn_datasets = pytest.importorskip(
        "sklearn.datasets", reason="scikit-learn is not installed: the digits are checked against the pinned hash only"
    )
    from sklearn.model_selection import train_test_split

    shipped = Path(sklearn_datasets.__file__).parent / "data" / "digits.csv.gz"
    ours = Path(digits_module.__file__).parent / digits_module.DIGITS_FILE
    assert ours.read_bytes() == shipped.read_bytes()
    reference = sklearn_datasets.load_digits()
    images, labels = digits_module.load_digits_raw()
    assert images.dtype == reference.images.dtype and np.array_equal(images, reference.images)
    assert np.array_equal(labels, reference.target)
    index = np.arange(len(labels))
    for fraction in (0.2, 0.1, 0.25, 1 / 3, 0.5):
        for seed in (0, 1, 42):
            train, test = digits_module.stratified_split(labels, fraction, seed)
            want_train, want_test = train_test_split(index, test_size=fraction, random_state=seed, stratify=labels)
            assert np.array_equal(train, want_train) and np.array_equal(test, want_test), (fraction, seed)


def test_digits_are_not_flipped_but_cifar_style_sets_are():
    from ablation.data import AUGMENT

    assert AUGMENT["digits"][1] is False
    assert AUGMENT["cifar10"] == (4, True)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, compress):
    arrays = write_fashion(tmp_path / "fm", compress=compress)
    bundle = build_data("fashion-mnist", str(tmp_path / "fm"), batch_size=8)
    assert (bundle.num_classes, bundle.in_channels, bundle.input_size) == (10, 1, 28)
    assert bundle.train.num_images == 40 and bundle.val.num_images == 12
    assert torch.equal(bundle.val.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"].astype(np.uint8)))
    assert torch.equal(bundle.val.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]))


def test_fashion_mnist_lookup_order(tmp_path, monkeypatch):
    write_fashion(tmp_path / "env" / "fashion-mnist", n_train=20)
    monkeypatch.setenv("ABLATION_DATA_DIR", str(tmp_path / "env"))
    assert build_data("fashion-mnist", batch_size=4).train.num_images == 20
    write_fashion(tmp_path / "explicit", n_train=30)
    assert build_data("fashion-mnist", str(tmp_path / "explicit"), batch_size=4).train.num_images == 30
    monkeypatch.delenv("ABLATION_DATA_DIR")
    write_fashion(tmp_path / "system-datasets" / "fashion-mnist", n_train=10)
    assert build_data("fashion-mnist", batch_size=4).train.num_images == 10


def test_fashion_mnist_missing_names_the_folders(tmp_path):
    with pytest.raises(DataError) as err:
        build_data("fashion-mnist", str(tmp_path / "nowhere"), batch_size=4)
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "train-images-idx3-ubyte" in msg
    assert str(tmp_path / "system-datasets" / "fashion-mnist") in msg


def test_bad_idx_file_is_a_data_error(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(DataError, match="magic"):
        read_idx(path)


@pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason=f"real Fashion-MNIST not at {SHARED_FASHION}")
def test_real_fashion_mnist():
    bundle = build_data("fashion-mnist", str(SHARED_FASHION), batch_size=256)
    assert bundle.train.num_images == 60000 and bundle.val.num_images == 10000
    assert sorted(bundle.train.labels.unique().tolist()) == list(range(10))


@pytest.mark.parametrize("name,classes,train_batches", [("cifar10", 10, 5), ("cifar100", 100, 1)])
def test_cifar_reads_pickled_batches(tmp_path, name, classes, train_batches):
    test_batch = write_cifar(tmp_path, name)
    bundle = build_data(name, str(tmp_path), batch_size=4)
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    # rows are 1024 red, then green, then blue values, each row-major 32x32
    assert torch.equal(bundle.val.images, torch.from_numpy(test_batch[b"data"].reshape(-1, 3, 32, 32)))
    assert bundle.val.labels.tolist() == [int(v) for v in test_batch[label_key]]
    assert (bundle.num_classes, bundle.in_channels, bundle.input_size) == (classes, 3, 32)
    assert bundle.train.num_images == 6 * train_batches and bundle.val.num_images == 6
    x, _ = first_batch(bundle.train)
    assert x.shape == (4, 3, 32, 32)


def test_cifar_missing_says_where_to_put_files(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        build_data("cifar10", str(tmp_path), batch_size=4)


def test_imagefolder_reads_class_folders(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    bundle = build_data("imagefolder", str(tmp_path), batch_size=2)
    assert (bundle.num_classes, bundle.in_channels, bundle.input_size) == (2, 3, 224)
    x, y = first_batch(bundle.train)
    assert x.shape == (2, 3, 224, 224)
    assert bundle.val.num_images == 4 and sum(len(y) for _, y in bundle.val) == 4
    again = build_data("imagefolder", str(tmp_path), batch_size=2)
    batches = []
    for loader in (bundle.train, again.train):  # shuffle from (seed, epoch); crops (workers=0) from torch's RNG
        loader.set_epoch(2)
        torch.manual_seed(0)
        batches.append(first_batch(loader))
    assert torch.equal(batches[0][0], batches[1][0]) and torch.equal(batches[0][1], batches[1][1])


def test_imagefolder_missing_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="train/ and val/"):
        build_data("imagefolder", str(tmp_path), batch_size=2)


def test_synthetic_any_shape_and_learnable():
    bundle = build_data("synthetic:size=12,channels=2,classes=3,train=300,val=90", batch_size=50)
    assert (bundle.num_classes, bundle.in_channels, bundle.input_size) == (3, 2, 12)
    assert bundle.train.num_images == 300 and bundle.val.num_images == 90
    # a nearest-class-mean classifier on raw pixels beats chance: the signal is real, not noise
    from sklearn.linear_model import LogisticRegression

    tx, ty = bundle.train.images.flatten(1).float(), bundle.train.labels
    vx, vy = bundle.val.images.flatten(1).float(), bundle.val.labels

    def feats(x):  # phase-free
        return torch.fft.rfft2(x.view(len(x), 2, 12, 12)).abs().flatten(1)

    acc = LogisticRegression(max_iter=2000).fit(feats(tx), ty).score(feats(vx), vy)
    assert acc > 0.6


def test_subset_fraction_and_count_are_seeded():
    a = build_data("digits", batch_size=16, subset=0.25, seed=1)
    b = build_data("digits", batch_size=16, subset=0.25, seed=1)
    c = build_data("digits", batch_size=16, subset=0.25, seed=2)
    assert a.train.num_images == round(0.25 * 1437)
    assert torch.equal(a.train.labels, b.train.labels) and torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, c.train.images)
    assert torch.equal(a.val.images, c.val.images)
    assert build_data("digits", batch_size=16, subset=100).train.num_images == 100
    assert build_data("digits", batch_size=16, subset=100.0).train.num_images == 100  # a whole float is a count
    for bad in (-1, 0, 2.5, 1.5, float("nan"), True, "100"):
        with pytest.raises(ConfigError, match=r"subset must be a fraction in \(0, 1\) .* or a whole count >= 1"):
            build_data("digits", batch_size=16, subset=bad)


@pytest.mark.parametrize("key", ["subset", "eval_subset"])
def test_a_subset_that_is_neither_fraction_nor_count_is_one_line_exit_2(capsys, key):
    from ablation.cli import main

    assert main(["train", f"{key}=2.5", "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and f" {key} must be" in err and "(0, 1)" in err and "whole count" in err and "2.5" in err
    )


def test_subset_shrinks_only_the_training_images():
    full = build_data("digits", batch_size=16, seed=3, val_split=0.2)
    sub = build_data("digits", batch_size=16, subset=100, seed=3, val_split=0.2)
    assert (full.train.num_images, full.val.num_images, full.test.num_images) == (1150, 287, 360)
    assert (sub.train.num_images, sub.val.num_images, sub.test.num_images) == (100, 287, 360)
    assert torch.equal(sub.val.images, full.val.images) and torch.equal(sub.test.images, full.test.images)
    assert _rows(sub.train.images) <= _rows(full.train.images)
    frac = build_data("digits", batch_size=16, subset=0.5, seed=3, val_split=0.2)
    assert (frac.train.num_images, frac.val.num_images, frac.test.num_images) == (575, 287, 360)


def test_eval_subset_caps_validation_and_test_with_a_fixed_seed():
    full = build_data("digits", batch_size=16, seed=3, val_split=0.2)
    a = build_data("digits", batch_size=16, eval_subset=50, seed=3, val_split=0.2)
    b = build_data("digits", batch_size=16, subset=100, eval_subset=50, seed=4, val_split=0.2)
    assert (a.train.num_images, a.val.num_images, a.test.num_images) == (1150, 50, 50)
    assert (b.train.num_images, b.val.num_images, b.test.num_images) == (100, 50, 50)
    assert torch.equal(a.train.images, full.train.images)  # training untouched
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.test.images, b.test.images)  # whatever the seed
    assert _rows(a.val.images) <= _rows(full.val.images) and _rows(a.test.images) <= _rows(full.test.images)
    frac = build_data("digits", batch_size=16, eval_subset=0.5, val_split=0.2)
    assert (frac.train.num_images, frac.val.num_images, frac.test.num_images) == (1150, round(0.5 * 287), 180)
    paper = build_data("digits", batch_size=16, eval_subset=40)  # val_split 0: val is the capped test split
    assert paper.val is paper.test and paper.test.num_images == 40
    assert build_data("digits", batch_size=16, eval_subset=10_000).test.num_images == 360  # a cap, not a draw
    for bad in (-1, 0, 2.5, float("inf"), False, "100"):
        with pytest.raises(ConfigError, match=r"^eval_subset must be a fraction in \(0, 1\) .* or a whole count >= 1"):
            build_data("digits", batch_size=16, eval_subset=bad)


def _loader(pad=0, flip=False, n=8, size=6, seed=0):
    images = torch.arange(n * size * size, dtype=torch.int64).remainder(251).to(torch.uint8).view(n, 1, size, size)
    return MemoryLoader(
        images,
        torch.arange(n),
        torch.zeros(1),
        torch.ones(1) / 255,
        batch_size=n,
        train=True,
        seed=seed,
        pad=pad,
        flip=flip,
    )


def test_augmentation_crops_and_flips_per_image():
    plain = _loader()
    flipped = _loader(flip=True)
    cropped = _loader(pad=2)
    (x0, y0), (x1, y1), (x2, y2) = first_batch(plain), first_batch(flipped), first_batch(cropped)
    assert torch.equal(y0, y1) and torch.equal(y0, y2)  # same shuffle from the same (seed, epoch)
    is_flip = [torch.equal(a, b.flip(-1)) for a, b in zip(x0, x1)]
    is_same = [torch.equal(a, b) for a, b in zip(x0, x1)]
    assert all(f or s for f, s in zip(is_flip, is_same)) and any(is_flip)
    assert x2.shape == x0.shape and not torch.equal(x2, x0)
    # every crop is a shifted window of the zero-padded image
    for a, b in zip(x0, x2):
        padded = torch.nn.functional.pad(a, (2, 2, 2, 2))
        assert any(torch.equal(padded[:, i : i + 6, j : j + 6], b) for i in range(5) for j in range(5))


def test_epochs_are_seeded_and_independent_of_history():
    a, b = _loader(pad=1, flip=True), _loader(pad=1, flip=True)
    a.set_epoch(1), list(a)
    a.set_epoch(3)
    b.set_epoch(3)
    assert all(torch.equal(p, q) for (p, _), (q, _) in zip(a, b))
    b.set_epoch(4)
    assert not torch.equal(first_batch(a)[0], first_batch(b)[0])


def test_validation_is_not_augmented_and_keeps_every_image():
    bundle = build_data("synthetic:train=10,val=7", batch_size=3)
    assert len(bundle.val) == 3 and sum(len(y) for _, y in bundle.val) == 7
    assert len(bundle.train) == 3  # last partial training batch dropped


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(x.flatten().tolist()) for x in images}


def test_validation_split_is_carved_from_training_fixed_and_disjoint():
    a = build_data("digits", batch_size=64, seed=0, val_split=0.1)
    b = build_data("digits", batch_size=64, seed=7, val_split=0.1)
    plain = build_data("digits", batch_size=64, seed=0)
    assert a.val is not a.test and plain.val is plain.test  # val_split 0: select on the test split
    assert a.train.num_images + a.val.num_images == plain.train.num_images == 1437
    assert a.val.num_images == round(0.1 * 1437) and a.test.num_images == 360
    assert torch.equal(a.val.images, b.val.images)  # the same validation images whatever the trial seed
    assert torch.equal(a.test.images, plain.test.images)  # the test split is untouched
    assert not _rows(a.val.images) & _rows(a.train.images)  # never trained on
    x, _ = first_batch(a.val)
    assert torch.equal(x, first_batch(a.val)[0])  # not augmented


def test_validation_split_with_subset_and_imagefolder(tmp_path):
    from PIL import Image

    sub = build_data("digits", batch_size=16, subset=100, eval_subset=50, seed=3, val_split=0.2)
    assert (sub.train.num_images, sub.val.num_images, sub.test.num_images) == (100, 50, 50)
    for split, n in (("train", 10), ("val", 4)):
        for cls in ("a", "b"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (40, 30), (i * 20, 0, 0)).save(folder / f"{i}.png")
    bundle = build_data("imagefolder", str(tmp_path), batch_size=4, val_split=0.25)
    assert (bundle.train.num_images, bundle.val.num_images, bundle.test.num_images) == (15, 5, 8)
    capped = build_data("imagefolder", str(tmp_path), batch_size=4, val_split=0.25, subset=6, eval_subset=3)
    assert (capped.train.num_images, capped.val.num_images, capped.test.num_images) == (6, 3, 3)
    assert build_data("imagefolder", str(tmp_path), batch_size=4, val_split=0.25, subset=6).val.num_images == 5
    val_tf, train_tf = (str(loader.loader.dataset.dataset.transform) for loader in (bundle.val, bundle.train))
    assert "RandomResizedCrop" in train_tf and "RandomResizedCrop" not in val_tf  # val images: eval transforms
    with pytest.raises(ConfigError, match="val_split"):
        build_data("digits", batch_size=4, val_split=1.0)
