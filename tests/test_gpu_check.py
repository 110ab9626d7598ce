"""The one-command GPU check runs end to end (``--tiny``: small, on the CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_gpu_check_tiny_writes_every_section(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--tiny", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "gpu_check_tiny.md").read_text()
    for heading in (
        "## Training throughput",
        "## Eval latency",
        "## Fractional GPUs",
        "## Trials per GPU",
        "## SCA on CUDA",
        "## Would an ImageNet trial wait for data?",
    ):
        assert heading in report, heading
    assert "{'completed': 4}" in report and "| sca " in report and "| none " in report
    assert "images/s of resnet20 training" in report
    packed = report.split("## Trials per GPU")[1].split("##")[0]
    assert packed.count("eager: fp32, NCHW") == 2  # 1 and 2 trials per GPU (--tiny), each with its setup
