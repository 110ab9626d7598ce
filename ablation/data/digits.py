"""The digits data set without scikit-learn: its file and its stratified split, read here.

``digits.csv.gz`` is a byte-for-byte copy of scikit-learn's ``sklearn/datasets/data/digits.csv.gz``
(1,797 8x8 images of integer pixels 0..16, one row each, the label last; the test set of the UCI
"Optical Recognition of Handwritten Digits" data, E. Alpaydin and C. Kaynak, 1998).
:func:`stratified_split` repeats, step for step, what ``sklearn.model_selection.train_test_split(
..., stratify=y, random_state=seed)`` does (``StratifiedShuffleSplit`` and ``_approximate_mode``,
scikit-learn 1.3-1.9), so that the split is the one trials have used all along without importing
scikit-learn (about 2 s of CPU at start-up); ``tests/test_data.py`` compares both against
scikit-learn where it is installed. Both are scikit-learn's work under its BSD 3-clause licence:
see ``DIGITS_NOTICE`` beside this file.
"""

from __future__ import annotations

import gzip
import math
from importlib import resources

import numpy as np

DIGITS_FILE = "digits.csv.gz"


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """Images (1797, 8, 8) as float64 in 0..16 and int64 labels, as ``sklearn.datasets.load_digits``
    gives ``images`` and ``target``."""
    with resources.files(__package__).joinpath(DIGITS_FILE).open("rb") as raw, gzip.open(raw, "rt") as text:
        data = np.loadtxt(text, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Samples per class of ``n_draws`` drawn from ``class_counts``, ties broken by ``rng``
    (scikit-learn's ``sklearn.utils.extmath._approximate_mode``)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices, in the order ``train_test_split(x, y, test_size=test_fraction,
    random_state=seed, stratify=y)`` returns the rows (``0 < test_fraction < 1``)."""
    n_test = math.ceil(test_fraction * len(y))
    n_train = len(y) - n_test
    _, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i, count in enumerate(class_counts):
        order = class_indices[i].take(rng.permutation(count), mode="clip")
        train.extend(order[: n_i[i]])
        test.extend(order[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)
