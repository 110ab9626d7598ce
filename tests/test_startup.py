"""Start-up: `ablate --help` and each command's parser load no heavy library, and `validate` loads
only what it uses (torch and fvcore for its FLOPs estimate; no Ray, Optuna, MLflow, matplotlib;
torchvision and timm only where a model of theirs is built; never scikit-learn, the digits being
read without it). `ablate list` and `validate --no-cost` build no model: torch only.

Each check runs in a fresh interpreter, since this test process has imported them all by now.
The times themselves are measured by ``bench/startup.py``, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
#: Libraries that only the commands that use them may import.
HEAVY = ("ray", "optuna", "mlflow", "matplotlib", "fvcore")

PROBE = """
import contextlib, io, json, sys
from ablation.cli import build_parser, main
command = json.loads(sys.argv[1])
with contextlib.redirect_stdout(io.StringIO()):
    try:
        if command:
            code = main(command)
        else:
            build_parser(None)  # what `ablate` builds before it knows of a command
            code = 0
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules if "." not in m)}))
"""


def _loaded(argv: list[str]) -> set[str]:
    """Top-level modules that ``ablate argv`` loaded, run in a fresh interpreter (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["code"] == 0, done.stderr
    return set(out["modules"])


@pytest.mark.parametrize("argv", [[], ["--help"]], ids=["build_parser", "help"])
def test_top_level_help_loads_no_torch(argv):
    modules = _loaded(argv)
    assert not modules & {*HEAVY, "torch", "torchvision", "timm", "pandas", "sklearn"}


@pytest.mark.parametrize("command", ["profile", "train", "validate", "sweep", "report", "plan", "list"])
def test_command_help_loads_no_heavy_library(command):
    modules = _loaded([command, "--help"])
    assert not modules & set(HEAVY)


@pytest.mark.slow
def test_validate_loads_only_what_it_uses(tmp_path):
    space = {
        "name": "tiny",
        "base": {"dataset": "synthetic:size=8,channels=1,classes=2,train=16,val=8", "backbone": "resnet20"},
        "grid": {"attention": ["none", "se"]},
        "budget": {"epochs": 1},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(space))
    modules = _loaded(["validate", "--no-cost", str(path)])
    assert not modules & set(HEAVY)
    modules = _loaded(["validate", str(path)])
    assert "fvcore" in modules  # the FLOPs estimate ran
    assert not modules & (set(HEAVY) - {"fvcore"})


def _space(tmp_path, name: str, **grid) -> Path:
    space = {"name": name, "base": {"dataset": "digits", "backbone": "resnet20"}, "grid": grid, "budget": {"epochs": 1}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def test_validate_of_digits_without_timm_modules_loads_neither_sklearn_nor_timm(tmp_path):
    """The digits are read without scikit-learn; timm is imported only where SE, ECA or CBAM is built."""
    modules = _loaded(["validate", str(_space(tmp_path, "plain", attention=["none", "sca", "coord"]))])
    assert {"torch", "fvcore", "torchvision"} <= modules  # the data were loaded and the models counted
    assert not modules & {"sklearn", "timm", *(set(HEAVY) - {"fvcore"})}
    modules = _loaded(["validate", str(_space(tmp_path, "se", attention=["none", "se"]))])
    assert "timm" in modules and "sklearn" not in modules


def test_list_and_validate_without_cost_load_no_torchvision_nor_timm():
    """Neither builds a model: the registries and the space's checks need torch alone."""
    for argv in (["list"], ["validate", "--no-cost", str(ROOT / "search_spaces" / "quick.yaml")]):
        modules = _loaded(argv)
        assert not modules & {"torchvision", "timm", "sklearn", "pandas", *HEAVY}, argv


def test_results_and_provenance_keys_load_no_torch():
    """``provenance`` imports torch only in the functions that ask it, so that reading results does not."""
    code = "import sys, ablation.run.results, ablation.run.calibrate; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"


@pytest.mark.slow
def test_train_loads_no_ray(tmp_path):
    """A trial outside a sweep records where it ran without importing Ray to ask for its node."""
    out = tmp_path / "metrics.json"
    modules = _loaded(
        [
            "train",
            "backbone=resnet20",
            "attention=none",
            "epochs=1",
            "latency_runs=1",
            "dataset=synthetic:size=8,channels=1,classes=2,train=16,val=8",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert json.loads(out.read_text())["ray_node"] == ""
    assert not modules & (set(HEAVY) - {"fvcore"})
