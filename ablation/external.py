"""Users' code: attention modules and backbones from outside this package, by import path and
by entry point.

``attention: my_pkg.blocks:MyAttention`` names any callable ``(channels, **options) -> nn.Module``
(a class or a factory) by ``module:attribute``; installed packages can also register modules by
name in the entry-point group ``ablation.attention``, and backbones in ``ablation.backbones``.
A module's options are the keyword parameters of its signature after ``channels`` (``**kwargs``
is not an option list), so search spaces, validation and expansion treat them like the options
of the modules shipped here. Option values are coerced to the type the signature declares
(:func:`coerce_option`): YAML 1.1 reads ``1e-5`` as a string. Every failure is a
``ConfigError`` naming the path and what went wrong.

A module or backbone may carry a short name for report tables and plots in an attribute
``display_name`` (:func:`display_name`): the name lives with the code, so it is the same in
every space that uses it, and no second place has to be kept in step with the import path.
"""
from __future__ import annotations

import importlib
import inspect
import types
from importlib import metadata
from typing import Any, Callable, Optional

from .errors import ConfigError

#: The entry-point group installed packages register attention modules in.
ENTRY_POINT_GROUP = "ablation.attention"
#: The entry-point group installed packages register backbones in.
BACKBONE_GROUP = "ablation.backbones"
#: Option types coerced from the signature (annotation, else the default's type).
COERCED = (bool, int, float, str)


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


def entry_points(group: str = ENTRY_POINT_GROUP) -> dict[str, metadata.EntryPoint]:
    """What installed packages register in ``group`` (attention modules by default), by name."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def load_entry_point(name: str, group: str = ENTRY_POINT_GROUP, kind: str = "attention") -> Callable[..., Any]:
    """The callable an installed package registered as ``name`` in ``group``."""
    point = entry_points(group)[name]
    try:
        factory = point.load()
    except Exception as exc:
        raise ConfigError(f"{kind} {name!r} (entry point {point.value!r} of "
                          f"{point.dist.name if point.dist else 'an installed package'}): cannot load it "
                          f"({type(exc).__name__}: {exc})") from None
    if not callable(factory):
        raise ConfigError(f"{kind} {name!r} (entry point {point.value!r}): not callable")
    return factory


def origin(name: str, group: str = ENTRY_POINT_GROUP) -> str:
    """Where ``name`` comes from, for listings: its entry point and package, or its import path."""
    points = entry_points(group)
    if name in points:
        dist = points[name].dist
        return f"entry point {points[name].value} ({dist.name if dist else '?'})"
    return "import path" if is_import_path(name) else "ablation"


def is_user_backbone(name: Any, shipped: tuple[str, ...] = ()) -> bool:
    """A backbone named by import path, or registered by an installed package (``shipped``
    names, this package's own, come first)."""
    return isinstance(name, str) and name not in shipped and (
        is_import_path(name) or name in entry_points(BACKBONE_GROUP))


def load_backbone(name: str) -> Callable[..., Any]:
    """A user's backbone callable: by import path, or by entry point in ``ablation.backbones``."""
    return load_callable(name, "backbone") if is_import_path(name) else load_entry_point(name, BACKBONE_GROUP,
                                                                                        "backbone")


def display_name(factory: Any, name: str) -> str:
    """The short name of a user's module or backbone for tables and plots: its ``display_name``
    attribute (a non-empty string without line breaks), else ``name`` as the user gave it."""
    shown = getattr(factory, "display_name", None)
    if shown is None:
        return name
    if not isinstance(shown, str) or not shown.strip() or "\n" in shown:
        raise ConfigError(f"{name!r}: display_name must be a non-empty one-line string, got {shown!r}")
    return shown.strip()


def _parameters(factory: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return []


def required_options(factory: Callable[..., Any], skip: int = 1) -> frozenset[str]:
    """Options of ``factory`` (after ``channels``) that have no default: a trial must give them."""
    return frozenset(p.name for p in _parameters(factory)[skip:] if p.default is inspect.Parameter.empty
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def option_types(factory: Callable[..., Any], skip: int = 1) -> dict[str, type]:
    """The type each option of ``factory`` declares: its annotation where that is ``bool``, ``int``,
    ``float`` or ``str`` (``Optional[...]`` of one of them included), else its default's type
    where that is one of them; options of any other type are left as given."""
    import typing

    try:
        hints = typing.get_type_hints(getattr(factory, "__init__", factory) if inspect.isclass(factory) else factory)
    except Exception:  # unresolvable string annotations: fall back to the defaults
        hints = {}
    found: dict[str, type] = {}
    for p in _parameters(factory)[skip:]:
        hint = hints.get(p.name, p.annotation)
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
            hint = args[0]
        if hint in COERCED:
            found[p.name] = hint
        elif type(p.default) in COERCED:
            found[p.name] = type(p.default)
    return found


def coerce_option(owner: str, key: str, value: Any, wanted: Optional[type]) -> Any:
    """``value`` as the ``wanted`` type of option ``key`` of ``owner``: ``'1e-5'`` (how YAML 1.1
    reads 1e-5) or 1 as a float, ``'3'`` as an int; ``None`` (not set) and values of an option with
    no declared type are left alone. Anything else is a ``ConfigError`` naming the option and
    the type it wants."""
    if wanted is None or value is None or (type(value) is wanted):
        return value
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if wanted in (int, float) and isinstance(value, str):
        try:
            return wanted(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"attention {owner!r}: option {key} wants {wanted.__name__}, got {value!r} "
                      f"({type(value).__name__})" + (" (quote it to pass text)" if wanted is str else ""))
