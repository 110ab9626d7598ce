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

Backbones: the callable is called with keyword arguments: ``num_classes``, ``attention`` (a factory
``(channels) -> nn.Module`` that builds the attention under study; call it wherever the
network should have attention) and, where its signature declares them, ``in_channels``,
``small_input``, ``width_mult``, ``position`` and ``stages`` from the trial config: position and
stages mean what the callable says they mean. A trial that sets one the callable does not take
is refused, naming what it takes (``small_input``, which the harness sets from the image size,
is only passed where declared). It returns the ``nn.Module``.

On a Ray cluster, a module that lives in a local directory (not an installed package) is shipped
to every Ray worker with Ray's runtime environment (``py_modules``: its package directory, or its
file for a single-file module; :func:`local_modules`). An installed package is expected to be
installed on every node, like this package itself.
"""

from __future__ import annotations

import importlib
import inspect
import site
import sys
import sysconfig
import types
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from torch import nn

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
        raise ConfigError(
            f"{kind} {path!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = sorted(n for n in dir(target) if not n.startswith("_"))
            raise ConfigError(
                f"{kind} {path!r}: {module_name!r} has no attribute {attribute!r}; "
                f"it has: {', '.join(names[:30]) or 'nothing public'}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(
            f"{kind} {path!r}: {type(target).__name__} object is not callable; give a class or a function"
        )
    return target


def signature_options(factory: Callable[..., Any], skip: int = 1) -> frozenset[str]:
    """Keyword options of ``factory`` after its first ``skip`` parameters (``channels``)."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return frozenset()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    positional = [
        p for p in params if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) < skip and not any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params):
        raise ConfigError(
            f"{getattr(factory, '__qualname__', factory)!r} takes no channels argument; an attention "
            f"module is called as (channels, **options)"
        )
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
        raise ConfigError(
            f"{kind} {name!r} (entry point {point.value!r} of "
            f"{point.dist.name if point.dist else 'an installed package'}): cannot load it "
            f"({type(exc).__name__}: {exc})"
        ) from None
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
    return (
        isinstance(name, str) and name not in shipped and (is_import_path(name) or name in entry_points(BACKBONE_GROUP))
    )


def load_backbone(name: str) -> Callable[..., Any]:
    """A user's backbone callable: by import path, or by entry point in ``ablation.backbones``."""
    return (
        load_callable(name, "backbone") if is_import_path(name) else load_entry_point(name, BACKBONE_GROUP, "backbone")
    )


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
    return frozenset(
        p.name
        for p in _parameters(factory)[skip:]
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


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
    raise ConfigError(
        f"attention {owner!r}: option {key} wants {wanted.__name__}, got {value!r} "
        f"({type(value).__name__})" + (" (quote it to pass text)" if wanted is str else "")
    )


# Backbones: how a user's backbone is called (formerly models/external.py).

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
        raise ConfigError(
            f"backbone {path!r} does not take {unused}; of the trial-config keys it takes "
            f"{takes or 'none'} (besides {list(REQUIRED)})"
        )
    return params


def build_external(
    path: str,
    make: Callable[[int], nn.Module],
    num_classes: int,
    in_channels: int,
    small_input: bool,
    width_mult: float,
    position: str,
    stages: Optional[Sequence[int]],
) -> nn.Module:
    """The user's backbone with the attention factory ``make``."""
    given = {
        "in_channels": in_channels,
        "small_input": small_input,
        "width_mult": width_mult,
        "position": position,
        "stages": list(stages) if stages is not None else None,
    }
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


# Users' modules on a Ray cluster (formerly user_code.py).


def import_paths(space_dump: dict[str, Any]) -> list[str]:
    """Every ``module:attribute`` attention or backbone a space names (base, grid, sample)."""
    found: list[str] = []

    def visit(value: Any) -> None:
        values = value if isinstance(value, list) else [value]
        found.extend(v for v in values if isinstance(v, str) and is_import_path(v) and v not in found)

    base = space_dump.get("base", {})
    for key in ("attention", "backbone"):
        visit(base.get(key))
    grid = space_dump.get("grid") or []
    for block in grid if isinstance(grid, list) else [grid]:
        if isinstance(block, dict):
            for key in ("attention", "backbone"):
                visit(block.get(key))
    params = (space_dump.get("sample") or {}).get("params", {})
    for key in ("attention", "backbone"):
        visit((params.get(key) or {}).get("choice"))
    return found


def _installed_roots() -> list[Path]:
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    roots |= set(site.getsitepackages()) | {site.getusersitepackages()}
    return [Path(r).resolve() for r in roots]


def local_modules(paths: Iterable[str]) -> list[str]:
    """File-system paths of the top-level local (not installed) modules that ``paths`` import from."""
    roots = _installed_roots()
    out: list[str] = []
    for path in paths:
        top = path.partition(":")[0].split(".")[0]
        module = sys.modules.get(top) or importlib.import_module(top)
        origin = module.__path__[0] if hasattr(module, "__path__") else module.__file__
        if origin is None:  # built into the interpreter: nothing to ship
            continue
        location = Path(origin).resolve()
        if any(location.is_relative_to(root) for root in roots):
            continue
        if str(location) not in out:
            out.append(str(location))
    return out
