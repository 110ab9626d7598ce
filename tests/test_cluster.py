"""Ray beside other Ray: a sweep without ``--address`` starts its own private Ray even where a
cluster that ``ray start`` runs (or left behind) is on the machine; with ``--address`` it joins.

Each test runs its Ray processes under its own ``RAY_TMPDIR`` (so the session's Ray and any
other are untouched), binds to 127.0.0.1 only, and ends every process it started by their own
ids, with bounded waits.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from sweep_fixtures import TINY_BASE

TESTS = Path(__file__).parent
DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import ray.cloudpickle
import sweep_fixtures
from ablation.space import parse_space
from ablation.sweep import run_sweep
ray.cloudpickle.register_pickle_by_value(sweep_fixtures)
address = sys.argv[2] if len(sys.argv) > 2 else None
outcome = run_sweep(parse_space({space!r}), storage=sys.argv[1], address=address,
                    trial_fn=sweep_fixtures.fake_trial, verbose=0)
print("COUNTS", outcome.counts)
"""
SPEC = {"name": "beside", "base": dict(TINY_BASE), "grid": {"seed": [0, 1]}, "budget": {"epochs": 1},
        "resources": {"cpu": 1}}

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_tmp():
    """A short private RAY_TMPDIR (Ray's socket paths must stay under the Unix limit); every
    process that runs with it is ended at the end, by its id."""
    folder = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    yield folder
    _end_processes(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _processes_of(folder: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if f"RAY_TMPDIR={folder}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _end_processes(folder: str, timeout: float = 20) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _processes_of(folder):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + timeout
        while _processes_of(folder) and time.time() < deadline:
            time.sleep(0.3)


def _env(folder: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    env.update(RAY_TMPDIR=folder, FAKE_TRIAL_LOG=str(Path(folder) / "trials.log"))
    return env


def _sweep(tmp_path: Path, folder: str, *address: str) -> pd.DataFrame:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), space=SPEC))
    storage = tmp_path / ("joined" if address else "private")
    env = _env(folder) | ({"RAY_AUTH_MODE": "token"} if address else {})  # `ray start --head` turned token auth on
    done = subprocess.run([sys.executable, str(script), str(storage), *address], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "COUNTS {'completed': 2}" in done.stdout
    return pd.read_csv(storage / SPEC["name"] / "results.csv")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_address_a_dead_clusters_file_is_ignored(tmp_path, ray_tmp):
    """`ray start` leaves /tmp/ray/ray_current_cluster behind when its cluster dies; plain
    ``ray.init()`` would try to join that address."""
    (Path(ray_tmp) / "ray").mkdir()
    (Path(ray_tmp) / "ray" / "ray_current_cluster").write_text("127.0.0.1:1\n")
    table = _sweep(tmp_path, ray_tmp)
    assert set(table["status"]) == {"completed"}


def test_beside_a_running_ray_start_cluster_private_unless_asked(tmp_path, ray_tmp):
    port = _free_port()
    start = subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        env=_env(ray_tmp), capture_output=True, text=True, timeout=120)
    assert start.returncode == 0, start.stderr[-3000:]
    assert (Path(ray_tmp) / "ray" / "ray_current_cluster").is_file()
    private = _sweep(tmp_path, ray_tmp)  # no --address: its own Ray, not the cluster
    joined = _sweep(tmp_path, ray_tmp, f"127.0.0.1:{port}")  # asked: joins it
    head = subprocess.run(
        [sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
                               "print(ray.get_runtime_context().get_node_id()[:12])", f"127.0.0.1:{port}"],
        env=_env(ray_tmp) | {"RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=120)
    assert head.returncode == 0, head.stderr[-3000:]
    head_node = head.stdout.strip().splitlines()[-1]
    assert set(joined["ray_node"]) == {head_node}
    assert head_node not in set(private["ray_node"])
