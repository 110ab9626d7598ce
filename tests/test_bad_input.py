"""Bad input through the `ablate sweep` command line: one clear line on stderr naming the bad key
or file (and the allowed values), exit status 2, no traceback, and nothing trained (no sweep was
started in the run directory).

One case of each kind runs the real command in its own Python process (``python -m ablation.cli``);
the variants of a kind call ``ablation.cli.main`` in this process, which is what that command runs
(its start-up, ~4 s of importing torch, is what makes processes dear). Each process has 120 s: an
address that hangs (Ray retries for minutes) fails the test instead of stalling the suite.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import socket
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from ablation.cli import main

# Every case in one module-scoped fixture that starts a Python process per kind (194 s here at load 17).
pytestmark = pytest.mark.slow

TINY_BASE = {
    "dataset": "synthetic:size=8,channels=1,classes=2,train=64,val=32",
    "batch_size": 32,
    "latency_runs": 1,
    "device": "cpu",
    "threads": 1,
}
ROOT = os.geteuid() == 0
GOOD = {"name": "bad", "base": TINY_BASE, "grid": {"seed": [0]}, "budget": {"epochs": 1}}


def with_(**parts):
    return {**GOOD, **parts}


#: id -> (space file: a mapping, or raw text; extra arguments; fragments the message must hold;
#: run as its own process?). ``{tmp}`` is the case's folder; ``{port}`` a port that accepts
#: connections but is not Ray.
CASES: dict[str, tuple] = {
    "malformed_yaml": ("name: bad\ngrid: [attention: [se\n", [], ["s.yaml", "not valid YAML", "line 2"], True),
    "not_a_mapping": ("- attention\n- se\n", [], ["s.yaml", "expected a mapping", "budget"], False),
    "wrong_type_base": (with_(base={**TINY_BASE, "lr": "fast"}), [], ["base.lr", "valid number", "'fast'"], False),
    "wrong_type_budget": (with_(budget={"epochs": "ten"}), [], ["budget.epochs", "valid integer", "'ten'"], False),
    "wrong_type_grid": (with_(grid={"seed": "0, 1"}), [], ["grid.seed", "list of values"], False),
    "unknown_attention": (
        with_(grid={"attention": ["se", "sab"]}),
        [],
        ["grid.attention[1]", "unknown attention 'sab'", "'sca'", "'cbam'"],
        True,
    ),
    "unknown_backbone": (
        with_(grid={"backbone": ["resnet21"]}),
        [],
        ["grid.backbone[0]", "resnet21", "resnet20"],
        False,
    ),
    "unknown_option": (
        with_(grid={"attention": ["sca"], "kernal_size": [3]}),
        [],
        ["grid.kernal_size", "unknown key", "kernel_size"],
        False,
    ),
    "bad_option_value": (
        with_(grid={"attention": ["sca"], "branches": ["hw", "xy"]}),
        [],
        ["grid.branches[1]", "'xy'", "hw"],
        False,
    ),
    "option_not_applicable": (
        with_(base={**TINY_BASE, "attention": "se", "kernel_size": 5}),
        [],
        ["base.kernel_size", "'se'", "sca"],
        False,
    ),
    "empty_grid": (with_(grid={}), [], ["grid", "non-empty"], True),
    "empty_grid_list": (with_(grid=[]), [], ["grid", "empty"], False),
    "empty_axis": (with_(grid={"seed": []}), [], ["grid.seed", "empty list"], False),
    "missing_data_dir": (
        with_(base={**TINY_BASE, "dataset": "fashion-mnist", "data_dir": "{tmp}/nowhere"}),
        [],
        ["fashion-mnist", "{tmp}/nowhere", "train-images-idx3-ubyte"],
        False,
    ),
    "truncated_fashion": (
        with_(base={**TINY_BASE, "dataset": "fashion-mnist", "data_dir": "{tmp}/fashion"}),
        [],
        ["{tmp}/fashion/train-images-idx3-ubyte.gz", "cannot read idx file"],
        False,
    ),
    "corrupt_cifar": (
        with_(base={**TINY_BASE, "dataset": "cifar10", "data_dir": "{tmp}/cifar"}),
        [],
        ["{tmp}/cifar/cifar-10-batches-py/data_batch_3", "damaged"],
        True,
    ),
    "bad_latency_path": (
        with_(latency={"path": "fast"}),
        [],
        ["latency.path", "'eager'", "'fused-sca'", "'fast'"],
        False,
    ),
    "bad_train_path": (with_(train={"path": "turbo"}), [], ["train.path", "'eager'", "'fast'", "turbo"], False),
    "latency_path_in_base": (
        with_(base={**TINY_BASE, "latency_path": "compiled"}),
        [],
        ["base.latency_path", "set it in latency.path"],
        False,
    ),
    "bad_val_split": (with_(base={**TINY_BASE, "val_split": 1.5}), [], ["base.val_split", "less than 1", "1.5"], False),
    "refused_address": (
        GOOD,
        ["--address", "127.0.0.1:1"],
        ["--address 127.0.0.1:1", "no Ray cluster reachable"],
        False,
    ),
    "silent_address": (
        GOOD,
        ["--address", "127.0.0.1:{port}"],
        ["--address 127.0.0.1:{port}", "no Ray head answered"],
        True,
    ),
    "storage_under_a_file": (
        GOOD,
        ["--storage", "{tmp}/file.txt/runs"],
        ["{tmp}/file.txt/runs/bad", "not writable"],
        True,
    ),
    "missing_carry": (GOOD, ["--carry", "{tmp}/nowhere"], ["--carry {tmp}/nowhere", "no such run directory"], False),
    "carry_from_no_run": (GOOD, ["--carry", "{tmp}"], ["--carry {tmp}", "no results.csv there"], False),
    "read_only_storage": (GOOD, ["--storage", "{tmp}/readonly"], ["{tmp}/readonly/bad", "not writable"], False),
}


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _fashion_with_truncated_file(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 255, (20, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(20) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 255, (10, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(10),
    }
    for name, array in files.items():
        data = gzip.compress(_idx(array))
        (folder / f"{name}.gz").write_bytes(data[: len(data) // 2] if name.startswith("train-images") else data)


def _cifar_with_corrupt_batch(folder: Path) -> None:
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
        (batches / name).write_bytes(pickle.dumps(entry)[:40] if name == "data_batch_3" else pickle.dumps(entry))


def _argv(case: str, folder: Path, port: int) -> list[str]:
    """Write the case's space file into ``folder``; the ``ablate`` arguments that run it."""
    content, extra, *_ = CASES[case]
    text = content if isinstance(content, str) else yaml.safe_dump(content)
    (folder / "s.yaml").write_text(_fill(text, folder, port))
    args = [_fill(a, folder, port) for a in extra]
    return [
        "sweep",
        str(folder / "s.yaml"),
        *args,
        *([] if "--storage" in args else ["--storage", str(folder / "runs")]),
    ]


def _fill(text: str, folder: Path, port: int) -> str:
    return text.replace("{tmp}", str(folder)).replace("{port}", str(port))


def _in_process(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException:  # what the interpreter would print, so that the case fails alone
            traceback.print_exc()
            code = 1
    return code, err.getvalue()


def _as_process(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "ablation.cli", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stderr


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Every case run once: (exit status, stderr, folder, port); two processes at a time."""
    listener = socket.create_server(("127.0.0.1", 0))  # accepts connections, never speaks Ray
    port = listener.getsockname()[1]
    folders = {}
    for case in CASES:
        folders[case] = tmp_path_factory.mktemp(case)
        (folders[case] / "file.txt").write_text("a file, not a folder")
    _fashion_with_truncated_file(folders["truncated_fashion"] / "fashion")
    _cifar_with_corrupt_batch(folders["corrupt_cifar"] / "cifar")
    readonly = folders["read_only_storage"] / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    cases = [c for c in CASES if not (c == "read_only_storage" and ROOT)]  # root would run the sweep
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "ABLATION_DATA_DIR")}
    env["ABLATION_CONNECT_TIMEOUT_S"] = "3"
    argvs = {case: _argv(case, folders[case], port) for case in cases}
    with listener, ThreadPoolExecutor(2) as pool, pytest.MonkeyPatch.context() as mp:
        futures = {case: pool.submit(_as_process, argvs[case], env) for case in cases if CASES[case][3]}
        for key in ("RAY_ADDRESS", "ABLATION_DATA_DIR"):
            mp.delenv(key, raising=False)
        results = {case: _in_process(argvs[case]) for case in cases if not CASES[case][3]}
        results.update({case: f.result() for case, f in futures.items()})
    return {case: (*results[case], folders[case], port) for case in cases}


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c}-{'process' if CASES[c][3] else 'main'}") for c in CASES])
def test_bad_input_gives_one_clear_line_and_trains_nothing(outcomes, case):
    if case == "read_only_storage" and ROOT:
        pytest.skip("root writes into read-only folders; storage_under_a_file covers an unwritable run directory")
    code, err, folder, port = outcomes[case]
    err = err.strip()
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-2000:]
    assert err.startswith("ablate sweep: error: ")
    for fragment in CASES[case][2]:
        fragment = fragment.replace("{tmp}", str(folder)).replace("{port}", str(port))
        assert fragment in err, err
    assert not list(folder.rglob("sweep.json")) and not list(folder.rglob("trial_*"))
