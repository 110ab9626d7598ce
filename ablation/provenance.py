"""Where a trial ran: host, Ray node, CPU model, what decides its CPU numerics, GPU, torch and
CUDA versions, threads.

Recorded with every trial so that a report can list the hardware behind its numbers, warn when
trials of one study ran on different machines, and say when it is regenerated on a machine
other than theirs. A CPU model name alone (``AMD EPYC``) does not decide numerics: which kernels
torch, MKL and oneDNN pick does, and that follows the CPU's instruction sets and the libraries'
versions, so those are recorded too (:func:`cpu_fingerprint`). torch is imported by the functions
that ask it, not here: the keys alone (``results.py``) need no torch.
"""

from __future__ import annotations

import platform
import re
import socket
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: What decides CPU numerics besides torch's version: see :func:`cpu_fingerprint`.
CPU_NUMERICS_KEYS: tuple[str, ...] = ("cpu_capability", "cpu_isa", "mkl_version", "onednn_version")
#: Keys of :func:`environment`, in ``results.csv`` order.
PROVENANCE_KEYS: tuple[str, ...] = (
    "host",
    "ray_node",
    "cpu_model",
    *CPU_NUMERICS_KEYS,
    "gpu",
    "torch_version",
    "cuda_version",
    "torch_threads",
)
#: The keys that say which hardware and software produced a number (host and node may differ freely).
HARDWARE_KEYS: tuple[str, ...] = (
    "cpu_model",
    *CPU_NUMERICS_KEYS,
    "gpu",
    "torch_version",
    "cuda_version",
    "torch_threads",
)
#: The keys a machine is told apart by (its fingerprint): the same values, the same CPU numerics.
FINGERPRINT_KEYS: tuple[str, ...] = ("cpu_model", *CPU_NUMERICS_KEYS, "torch_version")
#: CPU flags (``/proc/cpuinfo``; x86 and Arm) that select different float kernels in torch,
#: MKL or oneDNN: vector width, fused multiply-add, bf16/fp16 and matrix units.
NUMERICS_FLAGS: tuple[str, ...] = (
    "fma",
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
    "amx_int8",
    "asimd",
    "asimdhp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa(cpuinfo: str | None = None) -> str:
    """The :data:`NUMERICS_FLAGS` this CPU has, space-separated in that order, from the first
    ``flags`` (x86) or ``Features`` (Arm) line of ``/proc/cpuinfo`` (or of ``cpuinfo`` given);
    ``unknown`` where there is none to read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "unknown"
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("flags", "features")) and ":" in line:
            have = set(line.split(":", 1)[1].split())
            return " ".join(f for f in NUMERICS_FLAGS if f in have) or "none"
    return "unknown"


def library_versions(config: str | None = None) -> dict[str, str]:
    """MKL's and oneDNN's versions as torch was built with them (``none`` where absent), read from
    ``torch.__config__.show()`` (or ``config`` given): torch has no other API naming them."""
    if config is None:
        import torch

        config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)(?:\S*\s+Build (\d+))?", config)
    onednn = re.search(r"(?:MKL-DNN|oneDNN) v([\d.]+)", config)
    return {
        "mkl_version": (mkl.group(1) + (f" build {mkl.group(2)}" if mkl.group(2) else "")) if mkl else "none",
        "onednn_version": onednn.group(1) if onednn else "none",
    }


@lru_cache(maxsize=1)
def cpu_fingerprint() -> dict[str, str]:
    """What decides this machine's CPU numerics: the CPU model, torch's CPU capability (the
    vector kernels ATen dispatches to, ``torch.backends.cpu.get_cpu_capability()``; lowered by
    ``ATEN_CPU_CAPABILITY``), the CPU's :data:`NUMERICS_FLAGS`, and MKL's and oneDNN's versions."""
    import torch

    return {
        "cpu_model": cpu_model(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "cpu_isa": cpu_isa(),
        **library_versions(),
    }


def fingerprint_here() -> dict[str, str]:
    """This machine's values of :data:`FINGERPRINT_KEYS` (to compare a run's with)."""
    import torch

    return {**cpu_fingerprint(), "torch_version": str(torch.__version__)}


def ray_node() -> str:
    """The Ray node id (shortened) when running inside Ray, else ``""``."""
    try:
        ray = sys.modules["ray"]  # imported in every Ray worker; importing it here would take seconds

        if ray.is_initialized():
            return str(ray.get_runtime_context().get_node_id())[:12]
    except Exception:  # Ray absent or not usable here: not a Ray worker
        pass
    return ""


def environment(device: torch.device) -> dict[str, Any]:
    """Where this process runs, for a trial on ``device``."""
    import torch

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return {
        "host": socket.gethostname(),
        "ray_node": ray_node(),
        **cpu_fingerprint(),
        "gpu": gpu,
        "torch_version": str(torch.__version__),
        "cuda_version": str(torch.version.cuda or "none"),
        "torch_threads": torch.get_num_threads(),
    }


def gpu_here() -> str:
    """The name of this machine's first CUDA GPU, ``none`` without one."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
