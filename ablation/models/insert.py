"""Helpers that put an attention module into an existing block without rewriting it."""

from __future__ import annotations

from typing import Any, Callable, Optional, cast

from torch import nn

#: Builds an attention module for a given channel count.
MakeAttention = Callable[[int], nn.Module]


def after(module: nn.Module, attention: nn.Module) -> nn.Sequential:
    """``module`` then ``attention``. The attention's input is ``module``'s fresh output, read by
    nothing else, so an attention that can gate in place may (see ``allow_inplace``)."""
    return nn.Sequential(module, allow_inplace(attention))


def allow_inplace(attention: nn.Module) -> nn.Module:
    """Let ``attention`` overwrite its input in inference (modules with an ``inplace`` attribute,
    such as SCA); only for inputs that nothing reads afterwards."""
    if hasattr(attention, "inplace"):
        cast(Any, attention).inplace = True  # a plain attribute, not a parameter or submodule
    return attention


def before(module: nn.Module, attention: nn.Module) -> nn.Sequential:
    """``attention`` then ``module``."""
    return nn.Sequential(attention, module)


def on_shortcut(downsample: Optional[nn.Module], attention: nn.Module) -> nn.Module:
    """A shortcut (``None`` for identity) followed by ``attention``."""
    return attention if downsample is None else after(downsample, attention)
