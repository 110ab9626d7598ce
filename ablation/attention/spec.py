"""The attention registry's table: each module's factory and the options it accepts.

The modules shipped here add themselves with :func:`register` (``modules.py``); the registry
(``registry.py``) reads this table and adds a user's modules to it the first time they are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class AttentionSpec:
    """A registered attention module: its factory and the option names it accepts."""

    name: str
    factory: Callable[..., nn.Module]
    options: frozenset[str]
    external: bool = False  # from an import path or an entry point: the user's own
    required: frozenset[str] = frozenset()  # options without a default (a user's module)
    types: dict[str, type] = field(default_factory=dict, hash=False, compare=False)  # option -> declared type
    display: str = ""  # short name for tables and plots ("": the name itself)


ATTENTIONS: dict[str, AttentionSpec] = {}


def register(name: str, options: tuple[str, ...] = ()) -> Callable:
    """Class decorator adding a module to the registry under ``name``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ATTENTIONS[name] = AttentionSpec(name, factory, frozenset(options))
        return factory

    return wrap
