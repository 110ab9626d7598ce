"""Execution paths: how a model runs when its latency is measured, the same for every variant.

A latency column compares variants only if all of them ran the same way, so the path is chosen
once per study (a space's ``latency.path``, ``ablate report --calibrate --path``), never per
module:

- ``eager``: PyTorch ops for every module (the default);
- ``compiled``: ``torch.compile`` of the whole model, for every variant;
- ``fused-sca``: eager, except that SCA runs its hand-fused CPU kernel (``sca_kernel``). Only
  on request, and every table that shows such latencies says so: the peers get no such kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast, get_args

if TYPE_CHECKING:  # torch stays out of config validation (the CLI's error paths)
    from torch import nn

ExecutionPath = Literal["eager", "compiled", "fused-sca"]
EXECUTION_PATHS: tuple[str, ...] = get_args(ExecutionPath)
#: What each path means, for report captions.
DESCRIPTIONS: dict[str, str] = {
    "eager": "PyTorch eager ops for every module (no fused kernels)",
    "compiled": "torch.compile of the whole model, for every variant",
    "fused-sca": "PyTorch eager ops, except SCA, which runs its hand-fused C kernel (the peers have none)",
}


def check_path(path: str) -> str:
    """``path`` if it names an execution path, else ``ValueError`` listing them."""
    if path not in EXECUTION_PATHS:
        raise ValueError(f"execution path {path!r} is unknown; allowed: {', '.join(EXECUTION_PATHS)}")
    return path


def prepare(model: "nn.Module", path: str) -> "nn.Module":
    """``model`` set up to run on ``path`` (for ``compiled``: the compiled module; the original
    keeps its parameters). Every SCA module's ``fused`` flag is set for this path."""
    from ..attention.sca import SCA

    check_path(path)
    for module in model.modules():
        if isinstance(module, SCA):
            module.fused = path == "fused-sca"
    if path == "compiled":
        import torch

        # A compiled module is an OptimizedModule (an nn.Module); torch's stubs say only Callable.
        return cast("nn.Module", torch.compile(model))
    return model
