"""Name -> attention class registry (the one place that knows every module).

Each entry declares the options it accepts, so that configs can be validated and
search-space expansion can drop options that do not apply to a module. Besides the modules
registered here, a name may be an import path (``my_pkg.blocks:MyAttention``) or the name of an
entry point in the group ``ablation.attention``: such modules join the registry the first time
they are named, with the options their signature declares (``ablation/external.py``), after one forward
pass on a small tensor has shown that they keep the shape of their input. Their option values
are coerced to the types the signature declares, and an option without a default must be given.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, cast

from torch import nn

from ..errors import ConfigError
from . import modules  # noqa: F401  (registers every shipped module on import)
from .spec import ATTENTIONS, AttentionSpec


def known_names() -> list[str]:
    """Every attention name usable now: registered here or by an installed package."""
    from ..external import entry_points

    return sorted({n for n in ATTENTIONS if ":" not in n} | set(entry_points()))


def _resolve(name: str) -> AttentionSpec:
    """The spec of ``name``: registered, or loaded from an import path or an entry point."""
    from ..external import (
        display_name,
        entry_points,
        is_import_path,
        load_callable,
        load_entry_point,
        option_types,
        required_options,
        signature_options,
    )

    if name in ATTENTIONS:
        return ATTENTIONS[name]
    if not isinstance(name, str) or not (is_import_path(name) or name in entry_points()):
        raise ConfigError(
            f"unknown attention {name!r}; allowed: {known_names()}, or an import path "
            f"'package.module:Class' of your own module"
        )
    factory = load_callable(name) if is_import_path(name) else load_entry_point(name)
    try:
        spec = AttentionSpec(
            name,
            factory,
            signature_options(factory),
            external=True,
            required=required_options(factory),
            types=option_types(factory),
            display=display_name(factory, name),
        )
    except ConfigError as exc:
        raise ConfigError(f"attention {name!r}: {exc}") from None
    check_shape(name, factory)
    ATTENTIONS[name] = spec
    return spec


def check_shape(name: str, factory: Callable[..., nn.Module], options: Optional[dict] = None) -> None:
    """Build ``factory(8, **options)`` and run it once on a (2, 8, 5, 6) tensor: it must be an
    ``nn.Module`` whose output has the input's shape. Skipped where required options are not given."""
    import torch

    from ..external import required_options

    if any(r not in (options or {}) for r in required_options(factory)):
        return
    try:
        module = factory(8, **(options or {}))
    except Exception as exc:
        raise ConfigError(
            f"attention {name!r}: cannot be built as {name}(8{_kw(options)}) ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"attention {name!r}: returned {type(module).__name__}, not a torch.nn.Module")
    x = torch.randn(2, 8, 5, 6)
    try:
        with torch.no_grad():
            out = module.eval()(x)
    except Exception as exc:
        raise ConfigError(
            f"attention {name!r}: a forward pass of {name}(8{_kw(options)}) on a (2, 8, 5, 6) tensor failed "
            f"({type(exc).__name__}: {exc}); it must map (N, C, H, W) to the same shape"
        ) from None
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"attention {name!r}: output {got} for input (2, 8, 5, 6); it must keep the shape (N, C, H, W) of its input"
        )


def _kw(options: Optional[dict]) -> str:
    return "".join(f", {k}={v!r}" for k, v in (options or {}).items())


def attention_options(name: str) -> frozenset[str]:
    """Option names accepted by attention ``name``."""
    return _resolve(name).options


def option_defaults(name: str) -> dict[str, Any]:
    """The value each option of attention ``name`` takes when not given (from its signature),
    so that a results table can say which reading of a module every trial used."""
    import inspect

    spec = _resolve(name)
    try:
        params = inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):
        return {}
    return {k: p.default for k, p in params.items() if k in spec.options and p.default is not inspect.Parameter.empty}


def display(name: str) -> str:
    """The short name of attention ``name`` for tables and plots (a user's module's
    ``display_name``, see ``ablation.external.display_name``; else the name itself)."""
    return _resolve(name).display or name


def missing_options(name: str, options: dict[str, Any]) -> list[str]:
    """Options of attention ``name`` without a default in its signature that ``options`` lacks."""
    return sorted(_resolve(name).required - {k for k, v in options.items() if v is not None})


def missing_message(name: str, missing: list[str]) -> str:
    """One line naming the options a module needs and how to give them."""
    return (
        f"attention {name!r} needs option(s) {missing}: its signature gives no default; give "
        f"{missing[0]}=VALUE (ablate profile: --option {missing[0]}=VALUE; a space: a base key or a grid axis)"
    )


def coerce_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with a user's module's values coerced to the types its signature declares
    (``ConfigError`` naming the option and the type it wants where a value cannot be)."""
    from ..external import coerce_option

    spec = _resolve(name)
    if not spec.external:
        return dict(options)
    return {k: coerce_option(name, k, v, spec.types.get(k)) for k, v in options.items()}


def build_attention(name: str, channels: int, **options: Any) -> nn.Module:
    """Build attention ``name`` for ``channels`` channels; options it does not take, options it
    needs and values of a type it does not declare are errors."""
    spec = _resolve(name)
    extra = sorted(set(options) - spec.options)
    if extra:
        raise ConfigError(
            f"attention {name!r} does not take option(s) {extra}; allowed: {sorted(spec.options) or 'none'}"
        )
    missing = missing_options(name, options)
    if missing:
        raise ConfigError(missing_message(name, missing))
    options = coerce_options(name, options)
    if spec.external:  # the user's code: whatever it raises is one line naming the call
        try:
            module = spec.factory(channels, **options)
        except Exception as exc:
            raise ConfigError(
                f"attention {name!r}: building {name}({channels}{_kw(options)}) failed ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(module, nn.Module):
            raise ConfigError(f"attention {name!r}: returned {type(module).__name__}, not a torch.nn.Module")
    else:
        module = spec.factory(channels, **options)
    tagged = cast(Any, module)  # plain attributes, not parameters or submodules
    tagged.is_ablation_attention = True
    tagged.attention_name = name
    return module


def is_attention(module: nn.Module) -> bool:
    """True for modules built by :func:`build_attention` (used to attribute cost)."""
    return getattr(module, "is_ablation_attention", False)
