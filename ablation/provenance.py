"""Where a trial ran: host, Ray node, CPU model, GPU, torch and CUDA versions, threads.

Recorded with every trial so that a report can list the hardware behind its numbers and warn
when trials of one study ran on different machines.
"""
from __future__ import annotations

import platform
import socket
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

#: Keys of :func:`environment`, in ``results.csv`` order.
PROVENANCE_KEYS: tuple[str, ...] = ("host", "ray_node", "cpu_model", "gpu", "torch_version", "cuda_version",
                                    "torch_threads")
#: The keys that say which hardware and software produced a number (host and node may differ freely).
HARDWARE_KEYS: tuple[str, ...] = ("cpu_model", "gpu", "torch_version", "cuda_version", "torch_threads")


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
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return {
        "host": socket.gethostname(), "ray_node": ray_node(), "cpu_model": cpu_model(), "gpu": gpu,
        "torch_version": str(torch.__version__), "cuda_version": str(torch.version.cuda or "none"),
        "torch_threads": torch.get_num_threads(),
    }
