"""Attention modules from outside this package: by import path and by entry point.

``attention: my_pkg.blocks:MyAttention`` names any callable ``(channels, **options) -> nn.Module``
(a class or a factory) by ``module:attribute``; installed packages can also register modules by
name in the entry-point group ``ablation.attention``. A module's options are the keyword
parameters of its signature after ``channels`` (``**kwargs`` is not an option list), so search
spaces, validation and expansion treat them like the options of the modules shipped here.
Every failure is a ``ConfigError`` naming the path and what went wrong.
"""
from __future__ import annotations

import importlib
import inspect
from importlib import metadata
from typing import Any, Callable

from ..errors import ConfigError

#: The entry-point group installed packages register attention modules in.
ENTRY_POINT_GROUP = "ablation.attention"


def is_import_path(name: str) -> bool:
    """``module:attribute`` (a dotted module path, a colon, an attribute path)."""
    module, sep, attribute = name.partition(":")
    return bool(sep and module and attribute)


def load_callable(path: str, kind: str = "attention") -> Callable[..., Any]:
    """The callable at ``module:attribute``, or a ``ConfigError`` saying which part failed."""
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may raise anything while importing
        raise ConfigError(f"{kind} {path!r}: cannot import module {module_name!r} "
                          f"({type(exc).__name__}: {exc})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = sorted(n for n in dir(target) if not n.startswith("_"))
            raise ConfigError(f"{kind} {path!r}: {module_name!r} has no attribute {attribute!r}; "
                              f"it has: {', '.join(names[:30]) or 'nothing public'}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{kind} {path!r}: {type(target).__name__} object is not callable; give a class "
                          f"or a function")
    return target


def signature_options(factory: Callable[..., Any], skip: int = 1) -> frozenset[str]:
    """Keyword options of ``factory`` after its first ``skip`` parameters (``channels``)."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return frozenset()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    positional = [p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                  inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    if len(positional) < skip and not any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
        raise ConfigError(f"{getattr(factory, '__qualname__', factory)!r} takes no channels argument; an attention "
                          f"module is called as (channels, **options)")
    return frozenset(p.name for p in params[skip:] if p.kind in kinds)


def entry_points() -> dict[str, metadata.EntryPoint]:
    """Attention modules installed packages register, by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_entry_point(name: str) -> Callable[..., Any]:
    """The callable an installed package registered as ``name``."""
    point = entry_points()[name]
    try:
        factory = point.load()
    except Exception as exc:
        raise ConfigError(f"attention {name!r} (entry point {point.value!r} of "
                          f"{point.dist.name if point.dist else 'an installed package'}): cannot load it "
                          f"({type(exc).__name__}: {exc})") from None
    if not callable(factory):
        raise ConfigError(f"attention {name!r} (entry point {point.value!r}): not callable")
    return factory
