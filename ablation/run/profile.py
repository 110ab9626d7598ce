"""Cost of a model: parameters, FLOPs (fvcore) and latency, with attention's share.

FLOP convention: fvcore's, one multiply-add = one FLOP (the figure papers quote as "FLOPs"),
counted for one image in eval mode. fvcore's own handles count conv/linear/matmul as
multiply-adds and eval-mode batch norm as 2 per element (scale and shift). The handles
added here count elementwise ops (activations, gates, add, mul, div) one per output
element, and reductions and pooling (mean, amax, sum, adaptive pooling) one per input
element; windowed pooling (max and average) counts one per window element of each output, and
adaptive pooling one per element of each output's window (one per input element where the
windows tile the input, as in global pooling; more where they overlap); ``matmul`` counts its
multiply-adds for any operand ranks. Ops on 0-dim tensors (size arithmetic the tracer
records) count zero. Ops in ``ZERO_COST_OPS`` move, reshape or allocate data and count zero,
each with its reason; any other op without a handle shows up in :func:`unsupported_ops`
(the tests require none for our models).

Papers (ResNet, SENet, ECA, CBAM, torchvision's model tables) count only convolutions and fully
connected layers: ``flops_convfc`` is that subtotal (multiply-adds of ``conv`` and
``linear``/``addmm``), reported beside ``flops`` so that a figure can be placed against a
paper's. ResNet-50 at 224 px: 4.089 G (torchvision's 4.09), against 4.128 G in full.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Optional, Union

import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # fvcore scripts its focal loss on import
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape
from torch import nn

from ..attention import is_attention

#: Ops counted as zero, with the reason.
ZERO_COST_OPS: dict[str, str] = {
    **{
        op: "shape or view change, no arithmetic"
        for op in (
            "aten::view",
            "aten::reshape",
            "aten::flatten",
            "aten::unsqueeze",
            "aten::squeeze",
            "aten::transpose",
            "aten::permute",
            "aten::expand",
            "aten::expand_as",
            "aten::t",
            "aten::size",
            "aten::Int",
            "aten::ScalarImplicit",
            "aten::numel",
        )
    },
    **{
        op: "copies or splits data, no arithmetic"
        for op in (
            "aten::cat",
            "aten::stack",
            "aten::split",
            "aten::split_with_sizes",
            "aten::chunk",
            "aten::slice",
            "aten::select",
            "aten::contiguous",
            "aten::clone",
            "aten::to",
            "aten::detach",
            "aten::copy_",
        )
    },
    **{
        op: "allocates a tensor, no arithmetic"
        for op in (
            "aten::new_full",
            "aten::full",
            "aten::zeros",
            "aten::ones",
            "aten::empty",
            "aten::zeros_like",
        )
    },
    "aten::dropout": "identity in eval mode",
    "aten::dropout_": "identity in eval mode",
}


def _numel(shape: Optional[list[int]]) -> int:
    """Elements of a tensor; 0-dim tensors (size arithmetic recorded by the tracer) count zero."""
    return math.prod(shape) if shape else 0


def _per_output(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(get_shape(outputs[0]))


def _per_input(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(get_shape(inputs[0]))


def _window_pool(inputs: list[Any], outputs: list[Any]) -> int:
    """``max_pool2d``/``avg_pool2d``: every output reads its kernel window (overlapping or not)."""
    kernel = [int(v.toIValue()) for v in inputs[1].node().inputs()]
    return _numel(get_shape(outputs[0])) * math.prod(kernel if len(kernel) == 2 else kernel * 2)


def _adaptive_pool(dims: int) -> Callable[[list[Any], list[Any]], int]:
    """Handle of adaptive pooling over the last ``dims`` dimensions: output ``i`` of a dimension
    reads inputs ``floor(i*n/m)`` to ``ceil((i+1)*n/m)`` (PyTorch's windows), so windows overlap
    where ``m`` does not divide ``n``; where they tile the input (global pooling) it is one per
    input element."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        shape_in, shape_out = get_shape(inputs[0]), get_shape(outputs[0])
        reads = 1
        for n, m in zip(shape_in[-dims:], shape_out[-dims:]):
            reads *= sum(-(-(i + 1) * n // m) - i * n // m for i in range(m))
        return math.prod(shape_out[:-dims]) * reads

    return handle


def _matmul(inputs: list[Any], outputs: list[Any]) -> int:
    """Multiply-adds of any ``matmul`` (fvcore's handle rejects matrix-vector products)."""
    return _numel(get_shape(outputs[0])) * get_shape(inputs[0])[-1]


ELEMENTWISE_OPS = (
    "aten::add",
    "aten::add_",
    "aten::sub",
    "aten::rsub",
    "aten::mul",
    "aten::mul_",
    "aten::div",
    "aten::div_",
    "aten::reciprocal",
    "aten::sigmoid",
    "aten::sigmoid_",
    "aten::relu",
    "aten::relu_",
    "aten::hardtanh",
    "aten::hardtanh_",
    "aten::hardswish",
    "aten::hardswish_",
    "aten::hardsigmoid",
    "aten::hardsigmoid_",
    "aten::clamp",
    "aten::clamp_",
    "aten::silu",
    "aten::silu_",
    "aten::gelu",
    "aten::tanh",
)
REDUCTION_OPS = ("aten::mean", "aten::sum", "aten::amax", "aten::amin", "aten::max", "aten::min")
#: Operators (as fvcore's ``by_operator`` names them) of the papers' count: convolutions and
#: fully connected layers (``nn.Linear`` traces as ``linear``, or ``addmm`` in older exports).
CONVFC_OPERATORS: tuple[str, ...] = ("conv", "linear", "addmm")

#: Handles added to fvcore's defaults.
OP_HANDLES = {
    **{op: _per_output for op in ELEMENTWISE_OPS},
    **{op: _per_input for op in REDUCTION_OPS},
    "aten::max_pool2d": _window_pool,
    "aten::avg_pool2d": _window_pool,
    "aten::adaptive_avg_pool1d": _adaptive_pool(1),
    "aten::adaptive_avg_pool2d": _adaptive_pool(2),
    "aten::adaptive_max_pool2d": _adaptive_pool(2),
    "aten::matmul": _matmul,
}


def flop_analysis(model: nn.Module, inputs: torch.Tensor) -> FlopCountAnalysis:
    """fvcore analysis with our handles; only ``ZERO_COST_OPS`` are ignored.

    fvcore's built-in ignore list silently drops ops that do arithmetic (e.g. ``aten::relu``,
    ``aten::max``), so it is replaced by ``ZERO_COST_OPS``.
    """
    analysis = FlopCountAnalysis(model, inputs).set_op_handle(**OP_HANDLES)
    analysis._ignored_ops = set(ZERO_COST_OPS)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return analysis


def convfc_flops(analysis: FlopCountAnalysis) -> int:
    """Multiply-adds of convolutions and fully connected layers only (the papers' count)."""
    by_operator = analysis.by_operator()
    return int(sum(by_operator.get(op, 0) for op in CONVFC_OPERATORS))


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Outermost attention modules by qualified name."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if is_attention(module) and not any(name.startswith(f"{outer}.") for outer in found):
            found[name] = module
    return found


@dataclass
class CostReport:
    """Cost figures of one model; FLOPs are multiply-adds for one image. ``flops_convfc``: the
    papers' convention, conv and fully connected multiply-adds only (a subtotal of ``flops``)."""

    params: int
    flops: int
    flops_convfc: int
    attention_params: int
    attention_flops: int
    latency_ms: Optional[float]
    latency_batch: int
    latency_threads: int
    latency_device: str
    attention_flops_by_module: dict[str, int] = field(default_factory=dict)
    #: ops fvcore has no handle for (counted zero), by name, with how often they ran: a user's
    #: module may use ops ours do not; a reader must see that part of the count is missing
    uncounted: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The flat figures of the contract (no per-module breakdown); ``uncounted_ops`` as text
        (``op xN, ...``, empty when every op was counted)."""
        out = asdict(self)
        out.pop("attention_flops_by_module")
        out["uncounted_ops"] = uncounted_text(out.pop("uncounted"))
        return out


def uncounted_text(ops: dict[str, int]) -> str:
    """``aten::erf x4, aten::cumsum x2`` (empty for none)."""
    return ", ".join(f"{op} x{n}" for op, n in sorted(ops.items()))


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@contextmanager
def _threads(threads: Optional[int]) -> Iterator[int]:
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _size(input_size: Union[int, tuple[int, int]]) -> tuple[int, int]:
    return (input_size, input_size) if isinstance(input_size, int) else (input_size[0], input_size[1])


def measure_latency(model: nn.Module, inputs: torch.Tensor, runs: int = 20, warmup: int = 5) -> float:
    """Median wall time in ms of ``runs`` forward passes after ``warmup`` untimed ones (no grad)."""
    sync = torch.cuda.synchronize if inputs.device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            sync()
            start = time.perf_counter()
            model(inputs)
            sync()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def profile_model(
    model: nn.Module,
    input_size: Union[int, tuple[int, int]],
    in_channels: int = 3,
    *,
    batch_size: int = 1,
    runs: int = 20,
    warmup: int = 5,
    device: str = "cpu",
    threads: Optional[int] = None,
    latency: bool = True,
    path: str = "eager",
) -> CostReport:
    """Parameters, FLOPs (one image) and median latency (``batch_size`` images on ``device``,
    run on execution ``path``, see :mod:`ablation.design.execution`).

    The model is left in the mode and on the device it came in; latency on another device or
    another path than eager runs on a copy.
    """
    from ..design.execution import check_path, prepare

    check_path(path)
    h, w = _size(input_size)
    param_device = next(model.parameters()).device
    attention = attention_modules(model)
    with _eval_mode(model), _threads(threads) as n_threads:
        analysis = flop_analysis(model, torch.zeros(1, in_channels, h, w, device=param_device))
        by_module = analysis.by_module()
        flops_by_attention = {name: int(by_module[name]) for name in attention}
        report = CostReport(
            params=sum(p.numel() for p in model.parameters()),
            flops=int(analysis.total()),
            flops_convfc=convfc_flops(analysis),
            attention_params=sum(p.numel() for m in attention.values() for p in m.parameters()),
            attention_flops=sum(flops_by_attention.values()),
            latency_ms=None,
            latency_batch=batch_size,
            latency_threads=n_threads,
            latency_device=str(torch.device(device)),
            attention_flops_by_module=flops_by_attention,
            uncounted=dict(analysis.unsupported_ops()),
        )
        if latency:
            target = torch.device(device)
            timed = model if param_device == target and path == "eager" else copy.deepcopy(model).to(target)
            with _eval_mode(timed):
                timed = prepare(timed, path)
                x = torch.randn(batch_size, in_channels, h, w, device=target)
                report.latency_ms = measure_latency(timed, x, runs, warmup)
    return report


def unsupported_ops(model: nn.Module, input_size: Union[int, tuple[int, int]], in_channels: int = 3) -> dict[str, int]:
    """Ops of ``model`` that neither have a FLOP handle nor appear in ``ZERO_COST_OPS``."""
    h, w = _size(input_size)
    with _eval_mode(model):
        analysis = flop_analysis(model, torch.zeros(1, in_channels, h, w))
        analysis.total()
        return dict(analysis.unsupported_ops())
