"""Name -> attention class registry (the one place that knows every module).

Each entry declares the options it accepts, so that configs can be validated and
search-space expansion can drop options that do not apply to a module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class AttentionSpec:
    """A registered attention module: its factory and the option names it accepts."""

    name: str
    factory: Callable[..., nn.Module]
    options: frozenset[str]


ATTENTIONS: dict[str, AttentionSpec] = {}


def register(name: str, options: tuple[str, ...] = ()) -> Callable:
    """Class decorator adding a module to the registry under ``name``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ATTENTIONS[name] = AttentionSpec(name, factory, frozenset(options))
        return factory

    return wrap


def _ensure_loaded() -> None:
    from . import modules  # noqa: F401  (registers every module on import)


def attention_options(name: str) -> frozenset[str]:
    """Option names accepted by attention ``name``."""
    _ensure_loaded()
    if name not in ATTENTIONS:
        raise ConfigError(f"unknown attention {name!r}; allowed: {sorted(ATTENTIONS)}")
    return ATTENTIONS[name].options


def build_attention(name: str, channels: int, **options: Any) -> nn.Module:
    """Build attention ``name`` for ``channels`` channels; options it does not take are an error."""
    allowed = attention_options(name)
    extra = sorted(set(options) - allowed)
    if extra:
        raise ConfigError(
            f"attention {name!r} does not take option(s) {extra}; allowed: {sorted(allowed) or 'none'}"
        )
    module = ATTENTIONS[name].factory(channels, **options)
    module.is_ablation_attention = True
    module.attention_name = name
    return module


def is_attention(module: nn.Module) -> bool:
    """True for modules built by :func:`build_attention` (used to attribute cost)."""
    return getattr(module, "is_ablation_attention", False)


_ensure_loaded()
