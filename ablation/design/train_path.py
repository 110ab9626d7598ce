"""Training execution paths: how every trial of a study trains, chosen once per study.

Accuracy and speed compare variants only if all of them trained the same way, so the path is a
space-level key (``train.path``, copied into every trial config as ``train_path``), never a
per-module choice:

- ``eager``: PyTorch eager ops. On the CPU in fp32 and NCHW (the reference); on CUDA with the
  config's ``amp`` (bf16, else fp16) and ``channels_last``, as before this path existed.
- ``fast``: channels_last, low-precision autocast where the hardware has it natively (CUDA: bf16,
  else fp16; the CPU: bf16 only with AVX512-BF16, AMX or Arm BF16, else fp32, and the trial says
  so; under that autocast every attention module runs in fp32, the same for every module: bf16
  attention cost MobileNetV2 with SCA 9-16 points in the parity study, see
  reports/fashion_parity/NOTES.md) and ``torch.compile`` of the model for training (on CUDA with CUDA graphs, mode
  ``reduce-overhead``: small networks are launch-bound there). Evaluation runs the same model eagerly
  with the same precision and memory format (one compiled graph per trial, none for the eval
  mode or a short last batch). Compilation is timed apart (``compile_time_s``): it is not
  training time. Inductor's cache (``TORCHINDUCTOR_CACHE_DIR``, by default one per machine and
  user) lets every trial of an architecture after the first reuse its compiled code.

``amp: false`` or ``channels_last: false`` in a config turn that part off on either path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal, Optional, get_args

from ..errors import ConfigError

if TYPE_CHECKING:  # torch stays out of config validation (the CLI's error paths)
    import torch

TrainPath = Literal["eager", "fast"]
TRAIN_PATHS: tuple[str, ...] = get_args(TrainPath)
#: What each path means, for report captions.
DESCRIPTIONS: dict[str, str] = {
    "eager": "PyTorch eager ops; on the CPU fp32 and NCHW (the reference), on CUDA mixed precision and channels_last",
    "fast": "channels_last, bf16 autocast where the hardware has native bf16 (else fp16 on CUDA, fp32 on the CPU) "
    "and torch.compile of the training step; compile time kept apart from training time",
}
#: CPU flags (``/proc/cpuinfo``) that mean native bf16 arithmetic: x86 AVX512-BF16 or AMX, Arm BF16.
BF16_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def check_train_path(path: str) -> str:
    """``path`` if it names a training path, else ``ValueError`` listing them."""
    if path not in TRAIN_PATHS:
        raise ValueError(f"training path {path!r} is unknown; allowed: {', '.join(TRAIN_PATHS)}")
    return path


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (without it, bf16 autocast is emulated and slow)."""
    return bool(cpu_flags() & BF16_FLAGS)


@dataclass(frozen=True)
class TrainSetup:
    """What a trial's training actually runs: precision, memory format, compilation, and (where
    the path asked for more than the hardware has) what it fell back to."""

    path: str
    dtype: Optional["torch.dtype"]
    channels_last: bool
    compiled: bool
    fallback: str = ""
    cuda_graphs: bool = False
    attention_fp32: bool = False  # every attention module runs in fp32 under the autocast

    def describe(self) -> str:
        """One line for results and reports, e.g. ``fast: bf16 autocast, channels_last, compiled``."""
        precision = "fp32" if self.dtype is None else f"{str(self.dtype).removeprefix('torch.')} autocast"
        if self.dtype is not None and self.attention_fp32:
            precision += " (attention in fp32)"
        compiled = ["compiled, CUDA graphs" if self.cuda_graphs else "compiled"] if self.compiled else []
        parts = [precision, "channels_last" if self.channels_last else "NCHW", *compiled]
        return f"{self.path}: {', '.join(parts)}" + (f" ({self.fallback})" if self.fallback else "")


def train_setup(path: str, device: "torch.device", amp: bool = True, channels_last: bool = True) -> TrainSetup:
    """The setup ``path`` gives on ``device`` with the config's ``amp`` and ``channels_last``."""
    import torch

    check_train_path(path)
    cuda = device.type == "cuda"
    if path == "eager" and not cuda:
        return TrainSetup(path, None, False, False)
    dtype, fallback = None, ""
    if amp and cuda:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif amp and device.type == "cpu":
        if cpu_has_native_bf16():
            dtype = torch.bfloat16
        else:
            fallback = "fell back to fp32: this CPU has no native bf16 (avx512_bf16, amx_bf16 or Arm bf16)"
    fast = path == "fast"
    return TrainSetup(
        path, dtype, channels_last, fast, fallback, cuda_graphs=fast and cuda, attention_fp32=fast and dtype is not None
    )


def check_same_setup(where: str, recorded: Iterable[str], here: Iterable[str]) -> None:
    """``ConfigError`` naming both unless every setup in ``recorded`` (what trials already trained
    with) is one of ``here`` (what this machine gives): a study, and each trial in it, trains one
    way throughout, so work begun on hardware with native bf16 must not go on in an fp32 fallback."""
    recorded, here = sorted(set(recorded)), sorted(set(here))
    if set(recorded) - set(here):
        raise ConfigError(
            f"{where}: trained as {' and '.join(map(repr, recorded))}, but this machine gives "
            f"{' or '.join(map(repr, here))}; every trial of a study trains the same way, "
            f"so continue it on hardware that gives the recorded setup"
        )


#: fp32 subclasses of attention module classes, made once per class by :func:`attention_in_fp32`.
_FP32_CLASSES: dict[type, type] = {}


def _fp32_class(cls: type) -> type:
    """``cls`` with a forward that, under an autocast, runs ``cls.forward`` in fp32 on an fp32
    copy of the input and returns the result in the input's dtype."""
    import torch

    if cls not in _FP32_CLASSES:

        def forward(self, x, *args, **kwargs):
            device = x.device.type
            if not torch.is_autocast_enabled(device):
                return cls.forward(self, x, *args, **kwargs)
            with torch.autocast(device, enabled=False):
                return cls.forward(self, x.float(), *args, **kwargs).to(x.dtype)

        _FP32_CLASSES[cls] = type(
            cls.__name__,
            (cls,),
            {
                "forward": forward,
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "fp32_attention": True,
            },
        )
    return _FP32_CLASSES[cls]


def attention_in_fp32(model: "torch.nn.Module") -> int:
    """Make every attention module of ``model`` (``is_ablation_attention``: built-in and a user's
    alike) run in fp32 under an autocast; the rest of the network keeps the low precision. The
    module's class is swapped for a subclass (parameters, state dict and ``isinstance`` unchanged;
    a copy of the model keeps it). Returns how many modules it changed."""
    count = 0
    for module in model.modules():
        if getattr(module, "is_ablation_attention", False) and not getattr(module, "fp32_attention", False):
            module.__class__ = _fp32_class(type(module))
            count += 1
    return count
