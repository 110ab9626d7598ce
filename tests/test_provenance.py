"""What a trial records about its machine: the CPU fingerprint that decides its numerics."""

import torch

from ablation.provenance import (
    CPU_NUMERICS_KEYS,
    PROVENANCE_KEYS,
    cpu_fingerprint,
    cpu_isa,
    environment,
    fingerprint_here,
    library_versions,
)

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 avx f16c avx2 avx512f avx512dq avx512_bf16 avx512_vnni amx_tile
"""
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve sve2 bf16 i8mm\nCPU implementer\t: 0x41\n"
CONFIG = """PyTorch built with:
  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for Intel(R) 64 architecture
  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71049cd69a3df32adcccb623b12cd7baa22)
  - CPU capability usage: AVX512
"""


def test_every_trial_records_what_decides_its_cpu_numerics():
    env = environment(torch.device("cpu"))
    assert tuple(env) == PROVENANCE_KEYS and set(CPU_NUMERICS_KEYS) <= set(env)
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() != ""
    assert (env["mkl_version"] != "none") == torch.backends.mkl.is_available()
    assert (env["onednn_version"] != "none") == torch.backends.mkldnn.is_available()
    assert env["cpu_isa"] and all(env[k] for k in CPU_NUMERICS_KEYS)
    assert fingerprint_here() == {**cpu_fingerprint(), "torch_version": str(torch.__version__)}


def test_the_instruction_sets_that_select_float_kernels_are_read_from_cpuinfo():
    assert cpu_isa(X86) == "fma avx2 avx512f avx512_vnni avx512_bf16 amx_tile"  # not sse, f16c: no float kernels
    assert cpu_isa(ARM) == "asimd sve sve2 bf16 i8mm"
    assert cpu_isa("processor\t: 0\n") == "unknown" and cpu_isa("flags\t: fpu sse\n") == "none"


def test_mkl_and_onednn_versions_are_read_from_torchs_build_config():
    assert library_versions(CONFIG) == {"mkl_version": "2024.2 build 20240605", "onednn_version": "3.12.0"}
    assert library_versions("  - oneDNN v3.7.1 (Git Hash abc)\n") == {"mkl_version": "none", "onednn_version": "3.7.1"}
    assert library_versions("PyTorch built with:\n  - GCC 13.3\n") == {"mkl_version": "none", "onednn_version": "none"}
