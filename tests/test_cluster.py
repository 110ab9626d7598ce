"""Ray beside other Ray: a sweep without ``--address`` starts its own private Ray even where a
cluster that ``ray start`` runs (or left behind) is on the machine; with ``--address`` it joins.

Each test runs its Ray processes under its own ``RAY_TMPDIR`` (so the session's Ray and any
other are untouched) and ends every process it started by their own ids, with bounded waits.
Ray's GCS and raylets listen on 0.0.0.0 whatever the node IP, so every Ray process of a test runs
in a private network namespace whose only interface is loopback: the nodes use 127.0.0.1 and
nothing they open is reachable from another address.
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
from dataclasses import dataclass
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
from ablation.design.space import parse_space
from ablation.run.sweep import run_sweep
ray.cloudpickle.register_pickle_by_value(sweep_fixtures)
address = sys.argv[2] if len(sys.argv) > 2 else None
outcome = run_sweep(parse_space({space!r}), storage=sys.argv[1], address=address,
                    trial_fn=sweep_fixtures.fake_trial, verbose=0)
print("COUNTS", outcome.counts)
"""
SPEC = {
    "name": "beside",
    "base": dict(TINY_BASE),
    "grid": {"seed": [0, 1]},
    "budget": {"epochs": 1},
    "resources": {"cpu": 1},
}

pytestmark = pytest.mark.slow


@dataclass
class Sandbox:
    """Where a test's Ray runs: its RAY_TMPDIR, and the command prefix that enters its loopback-only
    network namespace."""

    folder: str
    enter: list[str]

    def run(self, cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(self.enter + cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _loopback_namespace() -> subprocess.Popen:
    """A process holding a new network namespace with only ``lo``, brought up (needs the rights
    of `unshare --net`, which root in this project's containers has)."""
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        pytest.skip("needs unshare, nsenter and ip (util-linux, iproute2) to keep test clusters on loopback")
    holder = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep 3600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if holder.stdout.readline().strip() != "up":
        holder.wait(timeout=10)
        pytest.skip(f"no private network namespace (unshare --net): {holder.stderr.read().strip()}")
    return holder


@pytest.fixture
def ray_tmp():
    """A short private RAY_TMPDIR (Ray's socket paths must stay under the Unix limit) inside a
    loopback-only network namespace; every process that runs with it is ended at the end, by its id."""
    folder = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    holder = _loopback_namespace()
    yield Sandbox(folder, ["nsenter", f"--net=/proc/{holder.pid}/ns/net", "--"])
    _end_processes(folder)
    holder.kill()
    holder.wait(timeout=10)
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


def _sweep(tmp_path: Path, box: Sandbox, *address: str, spec: dict = SPEC) -> pd.DataFrame:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), space=spec))
    storage = tmp_path / ("joined" if address else "private")
    env = _env(box.folder) | ({"RAY_AUTH_MODE": "token"} if address else {})  # `ray start --head` turned token auth on
    done = box.run([sys.executable, str(script), str(storage), *address], env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"COUNTS {{'completed': {len(spec['grid']['seed'])}}}" in done.stdout
    return pd.read_csv(storage / spec["name"] / "results.csv")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_address_a_dead_clusters_file_is_ignored(tmp_path, ray_tmp):
    """`ray start` leaves /tmp/ray/ray_current_cluster behind when its cluster dies; plain
    ``ray.init()`` would try to join that address."""
    (Path(ray_tmp.folder) / "ray").mkdir()
    (Path(ray_tmp.folder) / "ray" / "ray_current_cluster").write_text("127.0.0.1:1\n")
    table = _sweep(tmp_path, ray_tmp)
    assert set(table["status"]) == {"completed"}


def test_beside_a_running_ray_start_cluster_private_unless_asked(tmp_path, ray_tmp):
    port = _free_port()
    start = ray_tmp.run(
        [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=_env(ray_tmp.folder),
        timeout=120,
    )
    assert start.returncode == 0, start.stderr[-3000:]
    assert (Path(ray_tmp.folder) / "ray" / "ray_current_cluster").is_file()
    private = _sweep(tmp_path, ray_tmp)  # no --address: its own Ray, not the cluster
    joined = _sweep(tmp_path, ray_tmp, f"127.0.0.1:{port}")  # asked: joins it
    head = ray_tmp.run(
        [
            sys.executable,
            "-c",
            "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(ray.get_runtime_context().get_node_id()[:12])",
            f"127.0.0.1:{port}",
        ],
        env=_env(ray_tmp.folder) | {"RAY_AUTH_MODE": "token"},
        timeout=120,
    )
    assert head.returncode == 0, head.stderr[-3000:]
    head_node = head.stdout.strip().splitlines()[-1]
    assert set(joined["ray_node"]) == {head_node}
    assert head_node not in set(private["ray_node"])


def _ray_start(box: Sandbox, *args: str, role: str, **extra: str) -> None:
    """`ray start` on the loopback address; ``extra`` environment reaches the node's workers."""
    env = _env(box.folder) | {"RAY_AUTH_MODE": "token", "ABLATION_TEST_NODE": role, **extra}
    done = box.run(
        [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
            *args,
        ],
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _raylet_of(folder: str, socket_name: str) -> int:
    for pid in _processes_of(folder):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            Path(cmdline[0].decode(errors="ignore")).name == "raylet"
            and f"--raylet_socket_name={socket_name}".encode() in cmdline
        ):
            return pid
    raise AssertionError(f"no raylet with socket {socket_name}")


NODES = (
    "import json, ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
    "print(json.dumps({n['NodeID'][:12]: n['RayletSocketName'] for n in ray.nodes() if n['Alive']}))"
)
PROBE = (
    "import socket, sys; print([name for _, name in socket.if_nameindex()]); "
    "print(socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5) is not None)"
)
MULTI_SPEC = {
    "name": "nodes",
    "base": dict(TINY_BASE),
    "grid": {"seed": [0, 1, 2, 3]},
    "budget": {"epochs": 3, "max_concurrent": 2, "max_failures": 1},
    "resources": {"cpu": 1},
}


def test_node_killed_mid_sweep_resumes_on_the_other_node_to_the_uninterrupted_result(tmp_path, ray_tmp):
    """A head without CPUs and two worker nodes (`ray start`, loopback only, token auth). The raylet
    of the node running seed 2 is SIGKILLed while that trial is paused at epoch 2: the trial is
    retried on the other node from its epoch-1 checkpoint, every epoch runs once, and results.csv
    equals that of the same sweep run again, uninterrupted, on the cluster."""
    port = _free_port()
    pause = tmp_path / "paused"  # workers get their environment from their node, not from the driver
    _ray_start(ray_tmp, "--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=false", role="head")
    for role in ("w1", "w2"):
        _ray_start(ray_tmp, f"--address=127.0.0.1:{port}", "--num-cpus=1", role=role, FAKE_TRIAL_PAUSE=str(pause))
    env = _env(ray_tmp.folder) | {"RAY_AUTH_MODE": "token", "ABLATION_CONNECT_TIMEOUT_S": "120"}
    listed = ray_tmp.run([sys.executable, "-c", NODES, f"127.0.0.1:{port}"], env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr[-3000:]
    import json

    sockets = json.loads(listed.stdout.strip().splitlines()[-1])
    assert len(sockets) == 3
    inside = ray_tmp.run([sys.executable, "-c", PROBE, str(port)], env=env, timeout=30)
    assert inside.stdout.split() == ["['lo']", "True"], inside.stderr  # only loopback; the head answers there
    with pytest.raises(OSError):  # and nowhere else: not even this machine's own loopback reaches it
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), space=MULTI_SPEC))
    driver = subprocess.Popen(
        ray_tmp.enter + [sys.executable, str(script), str(tmp_path / "killed"), f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 240
        while not pause.exists():
            assert driver.poll() is None and time.time() < deadline, driver.stderr.read()[-3000:]
            time.sleep(0.3)
        time.sleep(2)  # seed 2's epoch-1 report, with its node, is in results.csv
        mid = pd.read_csv(tmp_path / "killed" / "nodes" / "results.csv").set_index("seed")
        node = mid.loc[2, "ray_node"]
        os.kill(_raylet_of(ray_tmp.folder, sockets[node]), signal.SIGKILL)
        out, err = driver.communicate(timeout=400)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-3000:]
    assert "COUNTS {'completed': 4}" in out
    killed = pd.read_csv(tmp_path / "killed" / "nodes" / "results.csv").sort_values("seed", ignore_index=True)
    # Seed 2 finished on the other worker node. (Where seeds 0 and 1 ran before the kill is Ray's
    # choice: a fake trial can end before the next one is placed, so both may use one node.)
    other = killed.set_index("seed").loc[2, "ray_node"]
    assert other != node and other in sockets, (node, other, sorted(sockets))
    epochs = [line for line in Path(env["FAKE_TRIAL_LOG"]).read_text().splitlines() if line.startswith("epoch")]
    assert sorted(epochs) == sorted(f"epoch {s} {e}" for s in range(4) for e in range(1, 4))  # each epoch once
    clean = _sweep(tmp_path, ray_tmp, f"127.0.0.1:{port}", spec=MULTI_SPEC)
    compared = ["variant", "seed", "status", "epochs_done", "top1", "best_top1"]
    pd.testing.assert_frame_equal(killed[compared], clean.sort_values("seed", ignore_index=True)[compared])
