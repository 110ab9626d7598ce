"""The run directory's file system: a driver killed while Tune copies its files into the run
directory leaves every file whole (as it was, or as it is now), and the trial records still
say what the experiment state says when ``result.json`` lags it."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs as pafs

from ablation.run.atomic_storage import PARTIAL_PREFIX, atomic_local_fs, remove_partials
from ablation.run.results import record_from_trial

KILLED_MID_COPY = """
import os, signal, sys
from ablation.run.atomic_storage import atomic_local_fs
stream = atomic_local_fs().open_output_stream(sys.argv[1])
stream.write(b"new content, half written")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_file_is_replaced_only_when_complete(tmp_path):
    target = tmp_path / "experiment_state.json"
    target.write_text("old")
    stream = atomic_local_fs().open_output_stream(str(target))
    stream.write(b"new")
    assert target.read_text() == "old"  # nothing of the new file shows before it is complete
    stream.close()
    assert target.read_text() == "new" and not list(tmp_path.glob(f"{PARTIAL_PREFIX}*"))
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()  # as open() would have made it


def test_a_writer_killed_mid_file_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "trial" / "result.json"
    target.parent.mkdir()
    target.write_text('{"epoch": 1}\n')
    done = subprocess.run([sys.executable, "-c", KILLED_MID_COPY, str(target)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    assert target.read_text() == '{"epoch": 1}\n'  # the plain local file system would leave it cut
    assert len(list(target.parent.glob(f"{PARTIAL_PREFIX}*"))) == 1
    assert remove_partials(tmp_path) == 1 and sorted(os.listdir(target.parent)) == ["result.json"]


def test_tune_can_copy_folders_through_it_and_ship_it_to_workers(tmp_path):
    source = tmp_path / "staging"
    (source / "trial_a").mkdir(parents=True)
    (source / "experiment_state.json").write_text("{}")
    (source / "trial_a" / "result.json").write_text('{"epoch": 2}\n')
    fs = atomic_local_fs()
    pafs.copy_files(str(source), str(tmp_path / "run"), destination_filesystem=fs)  # as Tune syncs
    assert (tmp_path / "run" / "trial_a" / "result.json").read_text() == '{"epoch": 2}\n'
    fs.copy_file(str(source / "experiment_state.json"), str(tmp_path / "run" / "copy.json"))
    assert (tmp_path / "run" / "copy.json").read_text() == "{}"
    assert pickle.loads(pickle.dumps(fs)) == fs  # workers persist checkpoints through it


def _trial(tmp_path: Path, lines: list[str], last_result: dict) -> SimpleNamespace:
    path = tmp_path / "trial_x"
    path.mkdir(exist_ok=True)
    (path / "result.json").write_text("".join(f"{line}\n" for line in lines))
    return SimpleNamespace(
        trial_id="x",
        config={"point": {"seed": 0, "epochs": 3}},
        status="TERMINATED",
        last_result=last_result,
        local_path=None,
        path=str(path),
    )


def test_a_result_file_behind_the_experiment_state_gets_the_states_last_result(tmp_path):
    last = {"epoch": 3, "top1": 81.0, "test_top1": 80.0}
    cut = record_from_trial(_trial(tmp_path, [], last))  # emptied by a kill mid-copy
    assert cut.status == "completed" and cut.history == [last]
    behind = record_from_trial(_trial(tmp_path, ['{"epoch": 1, "top1": 70.0}', '{"epoch": 2, "top1": 75.0}'], last))
    assert [r["epoch"] for r in behind.history] == [1, 2, 3] and behind.history[-1]["test_top1"] == 80.0
    whole = record_from_trial(_trial(tmp_path, ['{"epoch": 3, "top1": 81.0, "test_top1": 80.0, "x": 1}'], last))
    assert whole.history == [{"epoch": 3, "top1": 81.0, "test_top1": 80.0, "x": 1}]  # result.json wins
    fresh = record_from_trial(_trial(tmp_path, [], {}))
    assert fresh.status == "stopped" and fresh.history == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
