"""Backbones from outside this package, by import path (``backbone: my_pkg.nets:build``) or by
the name an installed package registers in the entry-point group ``ablation.backbones``.

The callable is called with keyword arguments: ``num_classes``, ``attention`` (a factory
``(channels) -> nn.Module`` that builds the attention under study; call it wherever the
network should have attention) and, where its signature declares them, ``in_channels``,
``small_input``, ``width_mult``, ``position`` and ``stages`` from the trial config: position and
stages mean what the callable says they mean. A trial that sets one the callable does not take
is refused, naming what it takes (``small_input``, which the harness sets from the image size,
is only passed where declared). It returns the ``nn.Module``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from torch import nn

from ..external import load_backbone
from ..errors import ConfigError

#: Arguments always passed (the callable must take them).
REQUIRED = ("num_classes", "attention")
#: Trial-config keys passed where the callable declares them, with the value that means "not set".
OPTIONAL = {"in_channels": 3, "small_input": False, "width_mult": 1.0, "position": "standard", "stages": None}


def backbone_parameters(path: str) -> frozenset[str]:
    """The keyword parameters of the backbone at ``path`` (it must take num_classes and attention)."""
    import inspect

    factory = load_backbone(path)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        raise ConfigError(f"backbone {path!r}: cannot read its signature") from None
    missing = [name for name in REQUIRED if name not in params]
    if missing and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise ConfigError(f"backbone {path!r} must take {list(REQUIRED)} as keyword arguments; it lacks {missing}")
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return frozenset((*params, *REQUIRED, *OPTIONAL))
    return frozenset(params)


def check_arguments(path: str, given: dict[str, Any]) -> frozenset[str]:
    """Refuse trial-config values the backbone at ``path`` does not take; returns its parameters."""
    params = backbone_parameters(path)
    # small_input is the harness's guess from the image size: passed where declared, never refused
    unused = [k for k, v in given.items() if k not in params and v != OPTIONAL[k] and k != "small_input"]
    if unused:
        takes = sorted(p for p in params if p in OPTIONAL)
        raise ConfigError(f"backbone {path!r} does not take {unused}; of the trial-config keys it takes "
                          f"{takes or 'none'} (besides {list(REQUIRED)})")
    return params


def build_external(path: str, make: Callable[[int], nn.Module], num_classes: int, in_channels: int,
                   small_input: bool, width_mult: float, position: str, stages: Optional[Sequence[int]]) -> nn.Module:
    """The user's backbone with the attention factory ``make``."""
    given = {"in_channels": in_channels, "small_input": small_input, "width_mult": width_mult,
             "position": position, "stages": list(stages) if stages is not None else None}
    params = check_arguments(path, given)
    kwargs = {k: v for k, v in given.items() if k in params}
    try:
        model = load_backbone(path)(num_classes=num_classes, attention=make, **kwargs)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"backbone {path!r}: building it failed ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"backbone {path!r}: returned {type(model).__name__}, not a torch.nn.Module")
    return model
