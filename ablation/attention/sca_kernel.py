"""Fused CPU kernel for SCA inference (``sca_kernel.c``), built on first use.

Eager SCA reads the feature map four times (two directional pools, two gate multiplies); the
kernel streams channels in cache-sized blocks and reads the map once, and can write its result
over its input, which brings SCA's latency to or below that of a channel-only module such as
ECA (``bench/attention_cost.py``).

It is compiled with the system C compiler into a per-user cache and called through ctypes
(which releases the GIL, so a batch is split across torch's intra-op threads). It serves
inference only: float32, contiguous NCHW tensors on the CPU with autograd off, and not while
tracing or compiling, so that fvcore still counts the eager ops. Everything else, and any
machine without a C compiler, runs the eager module; the two agree to float rounding.
Set ``ABLATION_SCA_KERNEL=0`` to turn the kernel off.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

SOURCE = Path(__file__).with_name("sca_kernel.c")
FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros", "-shared", "-fPIC")
ENV_SWITCH = "ABLATION_SCA_KERNEL"
POOLS = {"avg": 0, "max": 1, "avgmax": 2}
FUSES = {"mul": 0, "mean": 1}


def enabled() -> bool:
    """False when ``ABLATION_SCA_KERNEL=0`` turns the kernel off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _cpu_signature() -> str:
    """What the compiled code may depend on: architecture and CPU features (-march=native)."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()} {flags}"


def _cache_dir() -> Path:
    """``$ABLATION_CACHE_DIR`` or ``~/.cache/ablation``, else the temp dir (read-only homes)."""
    base = os.environ.get("ABLATION_CACHE_DIR") or Path.home() / ".cache" / "ablation"
    for folder in (Path(base) / "kernels", Path(tempfile.gettempdir()) / f"ablation-kernels-{os.getuid()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    raise OSError(f"no writable cache folder for the SCA kernel (tried {base} and the temp dir)")


def _compile(cc: str, target: Path) -> None:
    """Compile SOURCE into ``target`` atomically (safe when several Ray workers build at once)."""
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        errors = ""
        for arch in (["-march=native"], []):  # some compilers or CPUs have no -march=native
            run = subprocess.run(
                [cc, *FLAGS, *arch, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=300
            )
            if run.returncode == 0:
                os.replace(tmp, target)
                return
            errors = run.stderr.strip()
        raise RuntimeError(f"{cc} failed on {SOURCE.name}: {errors[-500:]}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.lru_cache(maxsize=None)
def library() -> Optional[ctypes.CDLL]:
    """The compiled kernel, building it if needed; None (with one warning) if it cannot be had."""
    if not enabled():
        return None
    try:
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise RuntimeError("no C compiler (cc or gcc, or $CC) on PATH")
        source = SOURCE.read_bytes()
        key = hashlib.sha256(
            b"\0".join([source, " ".join(FLAGS).encode(), cc.encode(), _cpu_signature().encode()])
        ).hexdigest()[:16]
        target = _cache_dir() / f"sca_kernel_{key}.so"
        if not target.exists():
            _compile(cc, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        warnings.warn(f"SCA kernel unavailable, using the eager module (slower on CPU): {exc}", stacklevel=2)
        return None
    lib.sca_forward.restype = ctypes.c_int
    lib.sca_forward.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 8 + [ctypes.c_void_p] * 3
    return lib


def applies(x: Tensor, weights: list[Optional[Tensor]]) -> bool:
    """Whether the kernel may compute SCA on ``x`` (see the module docstring). Called on every
    forward pass, so the cheap checks come first."""
    if not x.is_cpu or x.dtype != torch.float32 or x.dim() != 4 or not x.is_contiguous() or x.numel() == 0:
        return False
    for w in weights:
        if w is not None and (not w.is_cpu or w.dtype != torch.float32 or not w.is_contiguous()):
            return False
    if torch.is_grad_enabled() and (x.requires_grad or any(w is not None and w.requires_grad for w in weights)):
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    return library() is not None


@functools.lru_cache(maxsize=None)
def _branch_mask(branches: str) -> int:
    return sum(1 << i for i, b in enumerate("hwc") if b in branches)


@functools.lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sca-kernel")


def forward(
    x: Tensor,
    kernel_size: int,
    branches: str,
    pool: str,
    fuse: str,
    weights: list[Optional[Tensor]],
    inplace: bool = False,
) -> Tensor:
    """SCA of ``x`` by the kernel; ``weights`` are the h, w, c conv weights (None where absent).
    ``inplace`` writes the result over ``x`` and returns it: the kernel pools a channel block
    before it gates it, so reading and writing one buffer gives the same result, without a new
    full-size output (a third of the module's time at batch 1)."""
    lib = library()
    assert lib is not None, "call applies() first"
    out = x if inplace else torch.empty_like(x)
    n, c, h, w = x.shape
    options = (
        c,
        h,
        w,
        kernel_size,
        _branch_mask(branches),
        POOLS[pool],
        FUSES[fuse],
        *[None if wt is None else wt.data_ptr() for wt in weights],
    )
    threads = min(torch.get_num_threads(), n)
    if threads <= 1:
        status = [lib.sca_forward(x.data_ptr(), out.data_ptr(), n, *options)]
    else:  # ctypes drops the GIL: one slice of the batch per intra-op thread
        step = c * h * w * x.element_size()
        bounds = [n * i // threads for i in range(threads + 1)]
        jobs = [(x.data_ptr() + a * step, out.data_ptr() + a * step, b - a) for a, b in zip(bounds, bounds[1:])]
        pending = [_pool(threads - 1).submit(lib.sca_forward, *job, *options) for job in jobs[1:]]
        status = [lib.sca_forward(*jobs[0], *options)] + [p.result() for p in pending]
    if any(status):
        raise MemoryError("SCA kernel could not allocate its scratch memory")
    return out
