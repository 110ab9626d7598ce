"""Checks shared by the attention modules: each bad option raises ``ConfigError`` naming it."""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import ConfigError


def check_kernel(module: str, kernel_size: Any) -> int:
    """An odd kernel size >= 1."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"{module}: kernel_size must be an odd integer >= 1 (1, 3, 5, ...), got {kernel_size!r}")
    return kernel_size


def check_reduction(module: str, reduction: Any) -> int:
    """A channel reduction ratio, an integer >= 1."""
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
        raise ConfigError(f"{module}: reduction must be an integer >= 1, got {reduction!r}")
    return reduction


def check_choice(module: str, option: str, value: Any, allowed: Iterable[str]) -> str:
    """One of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{module}: {option} must be one of {list(allowed)}, got {value!r}")
    return value


def reduced_channels(channels: int, reduction: int) -> int:
    """Hidden width of a squeeze-excite style bottleneck: ``channels // reduction``, at least 1."""
    return max(1, channels // reduction)
