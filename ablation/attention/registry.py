"""Name -> attention class registry (the one place that knows every module).

Each entry declares the options it accepts, so that configs can be validated and
search-space expansion can drop options that do not apply to a module. Besides the modules
registered here, a name may be an import path (``my_pkg.blocks:MyAttention``) or the name of an
entry point in the group ``ablation.attention``: such modules join the registry the first time
they are named, with the options their signature declares (``external.py``), after one forward
pass on a small tensor has shown that they keep the shape of their input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class AttentionSpec:
    """A registered attention module: its factory and the option names it accepts."""

    name: str
    factory: Callable[..., nn.Module]
    options: frozenset[str]
    external: bool = False  # from an import path or an entry point: the user's own


ATTENTIONS: dict[str, AttentionSpec] = {}


def register(name: str, options: tuple[str, ...] = ()) -> Callable:
    """Class decorator adding a module to the registry under ``name``."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ATTENTIONS[name] = AttentionSpec(name, factory, frozenset(options))
        return factory

    return wrap


def _ensure_loaded() -> None:
    from . import modules  # noqa: F401  (registers every module on import)


def known_names() -> list[str]:
    """Every attention name usable now: registered here or by an installed package."""
    from .external import entry_points

    _ensure_loaded()
    return sorted({n for n in ATTENTIONS if ":" not in n} | set(entry_points()))


def _resolve(name: str) -> AttentionSpec:
    """The spec of ``name``: registered, or loaded from an import path or an entry point."""
    from .external import entry_points, is_import_path, load_callable, load_entry_point, signature_options

    _ensure_loaded()
    if name in ATTENTIONS:
        return ATTENTIONS[name]
    if not isinstance(name, str) or not (is_import_path(name) or name in entry_points()):
        raise ConfigError(f"unknown attention {name!r}; allowed: {known_names()}, or an import path "
                          f"'package.module:Class' of your own module")
    factory = load_callable(name) if is_import_path(name) else load_entry_point(name)
    try:
        spec = AttentionSpec(name, factory, signature_options(factory), external=True)
    except ConfigError as exc:
        raise ConfigError(f"attention {name!r}: {exc}") from None
    check_shape(name, factory)
    ATTENTIONS[name] = spec
    return spec


def check_shape(name: str, factory: Callable[..., nn.Module], options: Optional[dict] = None) -> None:
    """Build ``factory(8, **options)`` and run it once on a (2, 8, 5, 6) tensor: it must be an
    ``nn.Module`` whose output has the input's shape. Skipped where required options are not given."""
    import inspect

    import torch

    try:
        signature = inspect.signature(factory)
        required = [p.name for p in list(signature.parameters.values())[1:] if p.default is inspect.Parameter.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    except (TypeError, ValueError):
        required = []
    if any(r not in (options or {}) for r in required):
        return
    try:
        module = factory(8, **(options or {}))
    except Exception as exc:
        raise ConfigError(f"attention {name!r}: cannot be built as {name}(8{_kw(options)}) "
                          f"({type(exc).__name__}: {exc})") from None
    if not isinstance(module, nn.Module):
        raise ConfigError(f"attention {name!r}: returned {type(module).__name__}, not a torch.nn.Module")
    x = torch.randn(2, 8, 5, 6)
    try:
        with torch.no_grad():
            out = module.eval()(x)
    except Exception as exc:
        raise ConfigError(f"attention {name!r}: a forward pass of {name}(8{_kw(options)}) on a (2, 8, 5, 6) tensor failed "
                          f"({type(exc).__name__}: {exc}); it must map (N, C, H, W) to the same shape") from None
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"attention {name!r}: output {got} for input (2, 8, 5, 6); it must keep the shape "
                          f"(N, C, H, W) of its input")


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


def build_attention(name: str, channels: int, **options: Any) -> nn.Module:
    """Build attention ``name`` for ``channels`` channels; options it does not take are an error."""
    spec = _resolve(name)
    extra = sorted(set(options) - spec.options)
    if extra:
        raise ConfigError(
            f"attention {name!r} does not take option(s) {extra}; allowed: {sorted(spec.options) or 'none'}"
        )
    module = spec.factory(channels, **options)
    module.is_ablation_attention = True
    module.attention_name = name
    return module


def is_attention(module: nn.Module) -> bool:
    """True for modules built by :func:`build_attention` (used to attribute cost)."""
    return getattr(module, "is_ablation_attention", False)


_ensure_loaded()
