"""A trial's checkpoint: everything needed to resume it at the next epoch, in one file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch

from ..errors import ConfigError

CHECKPOINT_FILE = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    """Torch's CPU (and CUDA, where present) random states."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: Union[str, Path], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``directory/checkpoint.pt`` atomically (temp file + rename)."""
    path = Path(directory) / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(directory: Union[str, Path]) -> dict[str, Any]:
    """Read the state saved by :func:`save_checkpoint` (tensors land on the CPU)."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise ConfigError(f"resume_from: no {CHECKPOINT_FILE} in {directory}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError(f"resume_from: cannot read checkpoint {path}: {exc}") from exc
