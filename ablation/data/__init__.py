"""Data sets for trials: ``build_data(name, ...) -> DataBundle`` with train, val and test loaders.

``sources.py`` names the data sets and loads their images (files -> arrays); ``loaders.py``
carves the validation split, draws subsets and wraps the splits in loaders (``memory.py`` for
the in-memory sets). See ``loaders.py`` for each set's augmentation and the splits.
"""

from __future__ import annotations

from .loaders import AUGMENT, VAL_SEED, DataBundle, EpochLoader, build_data, carve_val, check_subset
from .memory import MemoryLoader
from .sources import DATASETS, check_dataset

__all__ = [
    "AUGMENT",
    "DATASETS",
    "VAL_SEED",
    "DataBundle",
    "EpochLoader",
    "MemoryLoader",
    "build_data",
    "carve_val",
    "check_dataset",
    "check_subset",
]
