"""Run a search space as a Ray Tune sweep: one Tune trial per trial config, resumable.

Each trial calls ``run_trial`` (or an injected trial function, for tests) and reports every
epoch with ``tune.report`` plus a checkpoint, so an interrupted trial continues from its last
epoch. The run directory (``<storage>/<name>/``) holds Ray's experiment state, the trial
folders, ``results.csv`` (rewritten atomically as trials start and finish) and ``sweep.json``.
A sweep whose driver died continues with ``resume=True`` without re-running finished trials.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ray import tune

from .atomic_storage import atomic_local_fs, remove_partials
from .carry import carried_summary, carry_trials, is_carried, keys_of, load_carried, save_carried
from .epochs import epoch_rows, write_epochs
from ..errors import AblationError, ConfigError
from .results import (
    RESULTS_FILE,
    SWEEP_FILE,
    TrialRecord,
    merge_by_epoch,
    read_results,
    record_from_trial,
    records_from_run_dir,
    write_json,
    write_results,
)
from ..design.space import SearchSpace, trial_config

#: The metric trials are ranked and scheduled by (percent, higher is better).
METRIC, MODE = "top1", "max"
#: Tune writes its experiment state at most this often (s): a killed driver loses at most this much.
STATE_PERIOD_S = "1"

TrialFn = Callable[..., dict]


@dataclass
class SweepOutcome:
    """Where a sweep's results are and how its trials ended."""

    run_dir: Path
    counts: dict[str, int]
    wall_time_s: float


def make_trainable(trial_fn: Optional[TrialFn] = None) -> Callable[[dict], None]:
    """The Tune function trainable: builds the trial config, resumes from Tune's checkpoint,
    and reports every epoch's metrics with the epoch's checkpoint."""

    def ablation_trial(config: dict) -> None:
        fn = trial_fn
        if fn is None:
            from .train import run_trial

            fn = run_trial
        cfg = trial_config(config["point"])

        def report(metrics: dict, checkpoint_dir: str) -> None:
            tune.report(dict(metrics), checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            fn(cfg, report=report, resume_from=None)
        else:
            with checkpoint.as_directory() as resume_from:
                fn(cfg, report=report, resume_from=resume_from)

    return ablation_trial


def param_space(space: SearchSpace, carried: Iterable[TrialRecord] = ()) -> dict[str, Any]:
    """Tune's param space: a grid over full config dicts (less the ``carried`` trials), or the
    base with sampled domains."""

    if space.seed_budget is not None:
        return {}  # the seed searcher suggests every point
    spec = space.spec
    if spec.sample is None:
        columns, done = space.varying_keys(), keys_of(carried)
        return {"point": tune.grid_search([_complete(p, columns) for p in space.points() if not is_carried(p, done)])}
    fixed = {**spec.base, **spec.section_values()}
    return {"point": {**fixed, **{k: d.domain() for k, d in spec.sample.params.items()}}}


def _complete(point: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """``point`` with every key the progress table shows (``columns``): a user's module's option
    is absent where expansion dropped it, and Ray's reporter fails on a missing key (``None`` is
    dropped again when the trial builds its config)."""
    return {**dict.fromkeys(columns), **point}


def _scheduler(space: SearchSpace) -> Any:
    budget = space.spec.budget
    if budget.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=budget.epochs,
        grace_period=budget.grace_period,
        reduction_factor=budget.reduction_factor,
    )


def _search_alg(space: SearchSpace, run_dir: Path, carried: Iterable[TrialRecord] = ()) -> Any:
    seeds = space.seed_budget
    if seeds is not None:
        from .seed_search import SeedSearcher

        return SeedSearcher(
            space.points(),
            seeds.plan(),
            space.spec.budget.epochs,
            run_dir,
            seeds.reference,
            columns=space.varying_keys(),
            carried=carried,
        )
    sample = space.spec.sample
    if sample is None:
        return None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(seed=sample.seed)


def write_tables(run_dir: Path, records: list[TrialRecord]) -> None:
    """Rewrite ``results.csv`` and ``epochs.csv`` from ``records``."""
    write_results(run_dir, records)
    write_epochs(run_dir, [row for r in records for row in epoch_rows(r.trial_id, r.config, r.history)])


class ResultsCallback(tune.Callback):
    """Rewrites ``results.csv`` whenever a trial starts, finishes or fails, and ``epochs.csv``
    whenever a trial reports an epoch (driver side), and the driver's wall time in
    ``sweep.json``, so that a driver killed outright loses none of them."""

    def __init__(self, run_dir: Path, carried: list[TrialRecord]):
        self.run_dir, self.carried = Path(run_dir), carried
        self.start, self.previous_s = time.time(), 0.0
        self.live: dict[str, dict[Any, dict]] = {}  # trial id -> epoch -> reports not yet in Tune's files

    def setup(
        self, stop: Any = None, num_samples: Optional[int] = None, total_num_samples: Optional[int] = None, **info: Any
    ) -> None:
        self.start, self.previous_s = time.time(), float(_sweep_info(self.run_dir).get("wall_time_s") or 0.0)

    def _record(self, t: Any, status: Optional[str]) -> TrialRecord:
        record = record_from_trial(t, status)
        record.history = merge_by_epoch(record.history, self.live.get(t.trial_id, {}).values())
        return record

    def _write(self, trials: list, trial: Any, status: Optional[str]) -> None:
        write_tables(self.run_dir, [*self.carried, *(self._record(t, status if t is trial else None) for t in trials)])
        info = _sweep_info(self.run_dir)
        if info:
            write_json(
                self.run_dir / SWEEP_FILE, {**info, "wall_time_s": round(self.previous_s + time.time() - self.start, 3)}
            )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.live.setdefault(trial.trial_id, {})[result.get("epoch")] = dict(result)
        self._write(trials, trial, None)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trials, trial, "RUNNING")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trials, trial, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trials, trial, "ERROR")


def _reporter(space: SearchSpace) -> Any:
    return tune.CLIReporter(
        parameter_columns={f"point/{k}": k for k in space.varying_keys()},
        metric_columns={"training_iteration": "epoch", "top1": "top1", "val_loss": "val_loss", "images_per_s": "img/s"},
        sort_by_metric=True,
        max_report_frequency=30,
        max_progress_rows=40,
    )


def prepare_run_dir(storage: str | Path, name: str) -> Path:
    """``<storage>/<name>`` created and proven writable, or a clear error."""
    run_dir = Path(storage).expanduser().resolve() / name
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"run directory {run_dir} is not writable ({exc.strerror or exc}); "
            f"pass --storage DIR with a writable folder"
        ) from None
    return run_dir


def _absolute_data_dir(space: SearchSpace) -> SearchSpace:
    """Make a relative ``data_dir`` absolute: trials run in their own folders, maybe elsewhere."""
    data_dir = space.spec.base.get("data_dir")
    if data_dir and not Path(data_dir).expanduser().is_absolute():
        return space.with_base(data_dir=str(Path(data_dir).expanduser().resolve()))
    return space


def check_data(space: SearchSpace) -> None:
    """Load each data set the space uses once, so missing or corrupt files fail before any trial."""
    from ..data import build_data

    seen = set()
    for cfg in space.configs():
        key = (cfg.dataset, cfg.data_dir)
        if key not in seen:
            seen.add(key)
            build_data(cfg.dataset, cfg.data_dir, batch_size=cfg.batch_size, subset=cfg.subset, seed=cfg.seed)


def check_train_setups(run_dir: Path, space: SearchSpace) -> None:
    """Before a resume: ``ConfigError`` unless, for each training path of ``space``, the setup
    this machine gives is the one the trials in ``run_dir`` already trained with (a study made
    with native bf16 must not go on in an fp32 fallback); reads only."""
    from .train import resolve_device
    from ..design.train_path import check_same_setup, train_setup

    if not (run_dir / RESULTS_FILE).is_file():
        return
    results = read_results(run_dir)
    if "train_setup" not in results:
        return
    ran = results.dropna(subset=["train_setup"])
    for path in sorted({c.train_path for c in space.configs()}):
        here = {
            train_setup(path, resolve_device(c.device), c.amp, c.channels_last).describe()
            for c in space.configs()
            if c.train_path == path
        }
        recorded = ran["train_setup"][ran["train_path"] == path] if "train_path" in ran else ran["train_setup"]
        check_same_setup(f"{run_dir}: train path {path}", recorded.astype(str), here)


def _check_reachable(address: str) -> None:
    """Fail fast on an address nobody answers (``ray.init`` would retry for minutes)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.1:6379), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise AblationError(
            f"--address {address}: no Ray cluster reachable there ({exc.strerror or exc}); "
            f"start one with `ray start --head` and pass its address"
        ) from None
    if not address.startswith("ray://"):
        _probe_gcs(address)


#: How long a Ray head has to answer (s; ``$ABLATION_CONNECT_TIMEOUT_S`` overrides it): against an
#: open port that is not Ray's, ``ray.init`` would retry for many minutes.
CONNECT_TIMEOUT_S = 20.0
_PROBE = (
    "import sys; from ray._private.services import canonicalize_bootstrap_address_or_die as c; "
    "from ray._raylet import GcsClient; GcsClient(address=c(sys.argv[1]))"
)


def _probe_gcs(address: str) -> None:
    """Ask the Ray head at ``address`` for its cluster id, in a child process killed after
    ``CONNECT_TIMEOUT_S`` (Ray's own client would block far longer)."""
    timeout = float(os.environ.get("ABLATION_CONNECT_TIMEOUT_S", CONNECT_TIMEOUT_S))
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AblationError(
            f"--address {address}: something listens there, but no Ray head answered within "
            f"{timeout:g} s; pass the address `ray start --head` printed (its GCS port, "
            f"6379 by default)"
        ) from None
    if probe.returncode != 0:
        lines = [ln for ln in probe.stderr.splitlines() if ln.strip()]
        hint = (
            " (it uses token authentication: set RAY_AUTH_MODE=token and the cluster's token, RAY_AUTH_TOKEN "
            "or ~/.ray/auth_token)"
            if any("InvalidAuthToken" in ln for ln in lines)
            else ""
        )
        raise AblationError(
            f"--address {address}: cannot join the Ray head there ({lines[-1] if lines else 'no answer'}){hint}"
        ) from None


def connect(address: Optional[str], runtime_env: Optional[dict[str, Any]] = None) -> bool:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``; ``auto`` finds one started on this
    machine), or else start a private local Ray sized to the machine, whatever other Ray runs
    here. Returns True when this call started or joined Ray (the caller shuts it down)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    runtime_env = runtime_env or None
    if address:
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise AblationError(
                f"--address {address}: cannot join the Ray cluster ({exc}). If it uses token "
                f"authentication (`ray start --head` turns it on), set RAY_AUTH_MODE=token and "
                f"the cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            ) from None
        return True
    import torch

    # address="local": a private Ray, even beside a cluster that `ray start` runs (or left behind
    # in /tmp/ray/ray_current_cluster) on this machine; joining one happens only when asked
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        num_gpus=torch.cuda.device_count(),
        include_dashboard=False,
        log_to_driver=False,
        runtime_env=runtime_env,
    )
    return True


def _runtime_env(space: SearchSpace) -> dict[str, Any]:
    """What every Ray worker needs from the driver: ``$ABLATION_DATA_DIR``, and users' modules
    that live in local directories (``ablation.external``)."""
    from ..external import import_paths, local_modules

    env: dict[str, Any] = {}
    env_vars = {k: os.environ[k] for k in ("ABLATION_DATA_DIR",) if os.environ.get(k)}
    if env_vars:
        env["env_vars"] = env_vars
    modules = local_modules(import_paths(space.dump()))
    if modules:
        env["py_modules"] = modules
    return env


def _sweep_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SWEEP_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def run_sweep(
    space: SearchSpace,
    *,
    storage: str | Path = "runs",
    address: Optional[str] = None,
    resume: bool = False,
    max_concurrent: Optional[int] = None,
    trial_fn: Optional[TrialFn] = None,
    check_files: bool = True,
    verbose: int = 1,
    log: tuple[str, ...] = (),
    carry: tuple[str, ...] = (),
) -> SweepOutcome:
    """Run (or, with ``resume``, continue) the sweep of ``space``; returns where results are.

    Everything the user can get wrong is checked before Ray starts: the run directory, an
    existing sweep there, the trackers in ``log`` (``ablation.run.tracking``), the runs to
    ``carry`` trials from (``ablation.run.carry``), the data set files (``check_files``, on this
    machine) and the address.
    """
    from .tracking import parse_logs

    logs = parse_logs(list(log))

    run_dir = prepare_run_dir(storage, space.name)
    space = _absolute_data_dir(space)
    exists = tune.Tuner.can_restore(str(run_dir))
    previous = _sweep_info(run_dir)
    if exists and not resume:
        raise ConfigError(
            f"{run_dir} already holds sweep {space.name!r}; pass --resume to continue it, "
            f"or --storage DIR for a new one"
        )
    if exists and previous.get("space") is not None and not space.same_as(previous["space"]):
        raise ConfigError(
            f"{run_dir}: the sweep there was started from a different version of "
            f"{space.source or space.name}; restore that file or use --storage DIR"
        )
    on_this_machine = not (address or os.environ.get("RAY_ADDRESS"))
    if resume and on_this_machine:
        check_train_setups(run_dir, space)
    if carry and exists:
        raise ConfigError(
            f"--carry: {run_dir} already holds sweep {space.name!r}; trials are carried when a sweep starts"
        )
    if carry and space.sampled:
        raise ConfigError(f"--carry: {space.name!r} samples its trials; carry into a grid or a seed budget")
    carried = carry_trials(carry, space, check_setup=on_this_machine) if carry else []
    carried = carried or (load_carried(run_dir) if exists else [])
    if carry and space.seed_budget is None and len(carried) == space.num_trials:
        raise ConfigError(f"--carry: every trial of {space.name!r} is carried; nothing is left to train")
    if check_files and on_this_machine:
        check_data(space)
    runtime_env = _runtime_env(space)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", STATE_PERIOD_S)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)  # "no metrics yet" noise
    # Tune snapshots its state after every checkpoint (num_to_keep=1), which is what resume needs.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    started_ray = connect(address, runtime_env)
    start = time.time()
    info = {
        "name": space.name,
        "description": space.spec.description,
        "space": space.dump(),
        "source": space.source,
        "started": previous.get("started", _now()),
        "finished": None,
        "wall_time_s": previous.get("wall_time_s", 0.0),
        "n_trials": space.num_trials,
        "resources": space.spec.resources.model_dump(),
        "display_names": space.display_names(),
    }
    if carry:
        save_carried(run_dir, carry, carried)
    if carried:
        info["carried"] = carried_summary(run_dir)
    write_json(run_dir / SWEEP_FILE, info)  # the results callback keeps wall_time_s current
    try:
        tuner = _tuner(space, run_dir, trial_fn, exists, max_concurrent, verbose, logs, carried)
        grid = tuner.fit()
        # Ray's saved state (interrupted trials are pending), corrected by the in-memory outcome:
        # a trial whose worker died on its last retry can be saved as RUNNING.
        failed = {Path(r.path).name.removeprefix("trial_") for r in grid if r.error is not None}
        records = records_from_run_dir(run_dir, failed)
        records = [*carried, *records]
        write_tables(run_dir, records)
    finally:
        info["wall_time_s"] = round(info["wall_time_s"] + time.time() - start, 3)
        info["finished"] = _now()
        write_json(run_dir / SWEEP_FILE, info)
        if started_ray:
            import ray

            ray.shutdown()
    statuses = [r.status for r in records]
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    return SweepOutcome(run_dir, counts, info["wall_time_s"])


def _tuner(
    space: SearchSpace,
    run_dir: Path,
    trial_fn: Optional[TrialFn],
    restore: bool,
    max_concurrent: Optional[int],
    verbose: int,
    logs: Optional[dict[str, str]] = None,
    carried: Optional[list[TrialRecord]] = None,
) -> Any:
    from .tracking import callbacks as tracking_callbacks

    resources = space.spec.resources
    trainable = tune.with_resources(make_trainable(trial_fn), {"cpu": resources.cpu, "gpu": resources.gpu})
    if restore:
        remove_partials(run_dir)  # what the killed driver was writing; the complete files stay
        return tune.Tuner.restore(
            str(run_dir),
            trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
            storage_filesystem=atomic_local_fs(),
        )
    budget, carried = space.spec.budget, carried or []
    return tune.Tuner(
        trainable,
        param_space=param_space(space, carried),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            scheduler=_scheduler(space),
            search_alg=_search_alg(space, run_dir, carried),
            num_samples=space.num_trials - len(carried) if (space.sampled or space.seed_budget) else 1,
            max_concurrent_trials=max_concurrent or budget.max_concurrent,
            trial_dirname_creator=_trial_dirname,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=space.name,
            storage_path=str(run_dir.parent),
            storage_filesystem=atomic_local_fs(),
            verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=budget.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[ResultsCallback(run_dir, carried), *tracking_callbacks(logs or {}, run_dir, space.name)],
            progress_reporter=_reporter(space),
        ),
    )


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
