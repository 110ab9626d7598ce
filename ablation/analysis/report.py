"""The report of a sweep, from its run directory alone: ``report.md``, a self-contained
``report.html`` (plots embedded), the plots as PNG, ``tables.tex`` (booktabs) and ``summary.csv``.

It reads ``results.csv``, ``epochs.csv``, ``sweep.json`` and, where a calibration ran,
``latency.csv``, so it can be regenerated at any time, also while the sweep runs (unfinished
trials are counted, not ranked). Those data files are copied into the report folder, so that a
shipped report regenerates from the folder alone (``ablate report reports/<name>``). Every file
is written to a temporary file and renamed.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Union

import pandas as pd

from . import plots
from .aggregate import aggregate, cell_text, collapsed_mask, factors, is_attention_factor, reported_metric
from .convergence import ALPHA, CONVERGENCE_FILE, FLAT, LAST, trial_convergence, variant_flatness
from .path_parity import PARITY_FILE, PathParity, parity_table, path_parity
from .setting_change import AGAINST_FILES, CHANGE_FILE, SettingChange, change_table, setting_change
from ..run.calibrate import LATENCY_FILE, read_latency, with_latency
from ..run.collapse import RULE
from ..run.epochs import EPOCHS_FILE, read_epochs
from ..errors import DataError
from ..design.execution import DESCRIPTIONS
from ..provenance import FINGERPRINT_KEYS, HARDWARE_KEYS, fingerprint_here, gpu_here
from ..design.train_path import DESCRIPTIONS as TRAIN_DESCRIPTIONS
from .rank import HV_REFERENCE, Ranking, rank
from ..run.results import RESULTS_FILE, SWEEP_FILE, atomic_write_bytes, atomic_write_text, read_results
from .tables import factor_tables, flops_note, latex, short_label, variant_table, with_display_names

REPORT_FILES = ("report.md", "report.html", "tables.tex", "summary.csv")
#: The run's data, copied next to the report so that it regenerates from the report folder.
DATA_FILES = (RESULTS_FILE, EPOCHS_FILE, SWEEP_FILE, LATENCY_FILE)
STUDY_FILE = "optuna.db"


@dataclass
class Reading:
    """How to read a report's numbers: which split each accuracy comes from, how latency was
    measured. Column names and captions come from here so they say the same everywhere."""

    accuracy: str  # column name of the reported top-1
    selection: str  # column name of the selection split's top-1, "" where it is the reported one
    splits: str  # sentence naming the split of every accuracy figure
    latency: str  # column name of latency
    latency_note: str  # sentence on how latency was measured
    path: str  # execution path of the latency figures

    @classmethod
    def of(cls, results: pd.DataFrame, calibration: Optional[pd.DataFrame]) -> "Reading":
        val_splits = sorted({float(v) for v in results.get("val_split", pd.Series(dtype=float)).dropna()})
        if reported_metric(results) != "test_top1":
            accuracy, selection = "top-1 %", ""
            splits = (
                "Accuracy figures are on the data set's evaluation split, which this run also selected on "
                "(it was made before the harness kept a validation split apart)."
            )
        elif val_splits and max(val_splits) > 0:
            accuracy, selection = "test top-1 %", "val top-1 %"
            shares = " / ".join(f"{v:.0%}" for v in val_splits)
            splits = (
                f"Accuracy columns (test top-1, Δ, per seed, plots of accuracy against cost) are on the data "
                f"set's test split, evaluated once when each trial ends. Selection never sees it: ASHA, "
                f"Optuna sampling, the best epoch, the ranks, the Pareto front and 'best' use val top-1, on a "
                f"validation split of {shares} of the training images (fixed seed, the same for every trial). "
                f"Training curves show val top-1."
            )
        else:
            accuracy, selection = "test top-1 %", ""
            splits = (
                "Accuracy figures are on the data set's test split, which this study also selected on "
                "(val_split: 0, paper style): ranks, the front and the training curves use the same split."
            )
        paths = sorted(set(results.get("latency_path", pd.Series(dtype=str)).dropna().astype(str))) or ["eager"]
        if calibration is not None:
            c = calibration.iloc[0]
            path = str(c["path"])
            note = (
                f"Latency: one calibration pass after the trials ({c['measured']}): every variant and its plain "
                f"backbone rebuilt and timed on {c['device']} ({_calibration_machine(c)}), "
                f"batch {int(c['batch'])}, {int(c['threads'])} thread(s), {int(c['rounds'])} interleaved rounds "
                f"(order rotating; per round the fastest of {int(c['runs'])} passes, {c['clock']} clock). "
                f"Shown: the median over rounds of the variant's time / its plain backbone's time in the same "
                f"round, [interquartile range of those ratios], and the median ms. Execution path: {path}, "
                f"{DESCRIPTIONS.get(path, path)}."
            )
            latency = f"latency x plain [IQR], ms ({path})"
        else:
            path = paths[0] if len(paths) == 1 else "mixed"
            note = (
                "Latency: no calibration pass ran for this report, so latency figures are per trial, measured "
                "while other trials trained on the same cores: noisy, and not to be compared closely "
                "(`ablate report RUN_DIR --calibrate` measures all variants side by side). Execution path: "
                + ", ".join(f"{p} ({DESCRIPTIONS.get(p, p)})" for p in paths)
                + "."
            )
            latency = "latency ms (per trial, noisy)"
        return cls(accuracy, selection, splits, latency, note, path)


def _calibration_machine(c: pd.Series) -> str:
    """The GPU, or the CPU model with torch's CPU capability where recorded, of a calibration."""
    if c["device"] != "cpu":
        return str(c["gpu"])
    capability = c.get("cpu_capability")
    return str(c["cpu_model"]) + (f", {capability}" if isinstance(capability, str) and capability else "")


def training_note(results: pd.DataFrame) -> str:
    """How the trials trained: the study's training path(s) and what each trial actually ran
    (precision, memory format, compilation, and any fallback the hardware forced)."""
    paths = sorted(set(results.get("train_path", pd.Series(dtype=str)).dropna().astype(str)))
    if not paths:
        return (
            "Training path: eager (this run was made before training paths were recorded): "
            f"{TRAIN_DESCRIPTIONS['eager']}."
        )
    if len(paths) == 1:
        text = f"Training path: {paths[0]}, {TRAIN_DESCRIPTIONS.get(paths[0], paths[0])}; every variant trained on it."
    else:
        text = (
            "Parity study: every variant trained on each of the training paths "
            + ", ".join(f"{p} ({TRAIN_DESCRIPTIONS.get(p, p)})" for p in paths)
            + "; labels carry the path, and each path's variants are compared with its own baseline."
        )
    ran = results.dropna(subset=["train_setup"]) if "train_setup" in results else results.iloc[:0]
    setups = ran.get("train_setup", pd.Series(dtype=str)).astype(str).value_counts()
    if len(setups):
        text += " As run: " + "; ".join(f"{s} ({n} trials)" for s, n in sorted(setups.items())) + "."
    for path, group in ran.groupby(ran["train_path"].astype(str)):  # paths were recorded: see above
        counts = group["train_setup"].astype(str).value_counts()
        if len(counts) > 1:
            text += (
                f" Warning: the {path}-path trials did not all train the same way ("
                + "; ".join(f"{n} as {s}" for s, n in sorted(counts.items()))
                + "): the study mixes setups (e.g. resumed on other hardware), so its variants' "
                "differences are partly the setup's, not the modules'."
            )
    compile_s = pd.to_numeric(results.get("compile_time_s", pd.Series(dtype=float)), errors="coerce").dropna()
    if len(compile_s) and compile_s.sum() > 0:
        text += (
            f" Compilation took {compile_s.median():.0f} s per trial (median), {compile_s.sum() / 60:.1f} min "
            f"in all, kept out of training time and images/s."
        )
    return text


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    frame: pd.DataFrame


@dataclass
class Figure:
    file: str
    caption: str
    png: bytes


Block = Union[Heading, Para, Bullets, Table, Figure]


def default_storage(run_dir: Path) -> str:
    """The Optuna study's storage: SQLite ``optuna.db`` in the run directory."""
    return f"sqlite:///{run_dir / STUDY_FILE}"


def portable_storage(storage: str, out: Path) -> str:
    """``storage`` as a report may name it: a SQLite file relative to the report folder ``out``
    (a report names no absolute path of the machine that wrote it), other URLs without password."""
    if storage.startswith("sqlite:///"):
        path = storage.removeprefix("sqlite:///")
        return "sqlite:///" + (
            os.path.relpath(path, out.resolve())
            if os.path.isabs(path)
            else os.path.relpath(Path(path).resolve(), out.resolve())
        )
    from sqlalchemy.engine import make_url

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: Optuna refused it already
        return storage


def _rank_into_study_file(
    variants: pd.DataFrame, results: pd.DataFrame, varying: list[str], run_dir: Path, name: str, **family
) -> Ranking:
    """Rank into a private SQLite file, then rename it over ``optuna.db``: reports run side by
    side (say, two ``ablate report`` calls during a sweep) never share a half-built study."""
    fd, tmp = tempfile.mkstemp(prefix=f".{STUDY_FILE}.", suffix=".tmp", dir=run_dir)
    os.close(fd)
    try:
        ranking = rank(variants, results, varying, storage=f"sqlite:///{tmp}", study_name=name, **family)
        os.replace(tmp, run_dir / STUDY_FILE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    ranking.storage = default_storage(run_dir)
    return ranking


def write_report(run_dir: str | Path, out: Optional[str | Path] = None, storage: Optional[str] = None) -> Path:
    """Write every report file of the sweep in ``run_dir`` into ``out`` (default
    ``reports/<name>``); returns ``out``."""
    run_dir = Path(run_dir)
    if not (run_dir / RESULTS_FILE).is_file():
        raise DataError(
            f"{run_dir / RESULTS_FILE}: not found; give the run directory of a sweep "
            f"(runs/<name>/, the folder holding {RESULTS_FILE})"
        )
    info = _sweep_info(run_dir)
    name = info.get("name") or run_dir.name
    out = Path(out) if out is not None else Path("reports") / name
    out.mkdir(parents=True, exist_ok=True)
    info, results, epochs = with_display_names(info, read_results(run_dir), read_epochs(run_dir))
    calibration = read_latency(run_dir)
    reading = Reading.of(results, calibration)
    varying = factors(results)
    variants = with_latency(aggregate(results), calibration)
    family = _statistics(info)
    ranking = (
        rank(variants, results, varying, storage=storage, study_name=name, **family)
        if storage
        else _rank_into_study_file(variants, results, varying, run_dir, name, **family)
    )
    ranking.storage = portable_storage(storage, out) if storage else f"sqlite:///{STUDY_FILE}"
    has_epochs = (run_dir / EPOCHS_FILE).is_file()
    convergence = _convergence_trials(results, epochs, ranking.variants) if has_epochs else None
    parity = path_parity(results, **family)
    change = setting_change(run_dir, results, **family)
    blocks = _blocks(name, info, results, epochs, ranking, varying, reading, has_epochs, convergence, parity, change)
    for block in blocks:
        if isinstance(block, Figure):
            atomic_write_bytes(out / block.file, block.png)
    tables = {"variants": _variant_table(ranking, reading)} if not ranking.variants.empty else {}
    tables.update(
        factor_tables(ranking.variants, ranking.deltas, varying, reading.accuracy) if not ranking.variants.empty else {}
    )
    if convergence is not None and len(convergence):
        tables["convergence"] = convergence_table(convergence)
        atomic_write_text(out / CONVERGENCE_FILE, convergence.to_csv(index=False))
    if parity is not None:
        tables["path parity"] = parity_table(parity)
        atomic_write_text(out / PARITY_FILE, parity.pairs.to_csv(index=False))
    if change is not None:
        tables["setting change"] = change_table(change)
        atomic_write_text(out / CHANGE_FILE, change.pairs.to_csv(index=False))
    atomic_write_text(out / "tables.tex", latex(tables, name))
    atomic_write_text(out / "summary.csv", _summary(ranking).to_csv(index=False))
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, f"Ablation report: {name}"))
    _copy_data(run_dir, out, ((STUDY_FILE,) if not storage else ()) + AGAINST_FILES)
    return out


def _copy_data(run_dir: Path, out: Path, also: tuple[str, ...] = ()) -> None:
    """Copy the run's data files (and the files in ``also``) into the report folder (atomically;
    skipped where they are the same)."""
    for file in (*DATA_FILES, *also):
        source = run_dir / file
        if source.is_file() and source.resolve() != (out / file).resolve():
            (out / file).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out / file, source.read_bytes())


def _variant_table(ranking: Ranking, reading: Reading) -> pd.DataFrame:
    return variant_table(
        ranking.variants, ranking.deltas, reading.accuracy, reading.latency, reading.path, reading.selection
    )


def _sweep_info(run_dir: Path) -> dict:
    path = run_dir / SWEEP_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def _summary(ranking: Ranking) -> pd.DataFrame:
    """Per-variant figures as numbers, with the ranking and the delta to the baseline."""
    table = ranking.variants
    if not ranking.deltas.empty:
        table = table.merge(ranking.deltas.drop(columns=["label"]), on="variant", how="left")
    return table


def _blocks(
    name: str,
    info: dict,
    results: pd.DataFrame,
    epochs: pd.DataFrame,
    ranking: Ranking,
    varying: list[str],
    reading: Reading,
    has_epochs: bool = True,
    convergence: Optional[pd.DataFrame] = None,
    parity: Optional[PathParity] = None,
    change: Optional[SettingChange] = None,
) -> list[Block]:
    variants = ranking.variants
    status = results["status"].value_counts()
    blocks: list[Block] = [Heading(f"Ablation report: {name}", 1)]
    if info.get("description"):
        blocks.append(Para(" ".join(str(info["description"]).split())))
    unfinished = int(status.get("running", 0) + status.get("pending", 0))
    blocks.append(
        Para(
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from results.csv: {len(results)} trials, "
            + ", ".join(f"{n} {s}" for s, n in status.items())
            + "."
            + (
                f" The sweep is still running: {unfinished} trials have not finished and are not ranked."
                if unfinished
                else ""
            )
        )
    )
    if variants.empty:
        blocks.append(Para("No trial has completed yet, so there is nothing to rank."))
        return blocks + _failures(results) + _sweep_figures(info, results)
    blocks += [
        Heading("How to read this report"),
        Bullets(
            [
                reading.splits,
                reading.latency_note,
                flops_note(variants),
                training_note(results),
                f"Collapsed trials: {RULE}.",
            ]
        ),
    ]
    blocks += _summary_blocks(ranking, reading, info, results)
    acc = reading.accuracy
    blocks += [
        Heading("Accuracy against cost"),
        Figure(
            "accuracy_vs_flops.png",
            f"{acc} (mean ± std over seeds) against FLOPs",
            plots.to_png(plots.accuracy_vs_cost(variants, "flops", acc)),
        ),
        Figure(
            "accuracy_vs_params.png",
            f"{acc} (mean ± std over seeds) against parameters",
            plots.to_png(plots.accuracy_vs_cost(variants, "params", acc)),
        ),
    ]
    completed = set(results.loc[results["status"] == "completed", "trial_id"])
    blocks += _curve_blocks(epochs[epochs["trial_id"].isin(completed)], variants, has_epochs)
    blocks += _convergence_blocks(convergence)
    blocks += [
        Heading("All variants"),
        Para(
            f"{acc}: mean ± std over seeds, the median, and every seed's value (seed order as in the seeds "
            "column of summary.csv; † marks a collapsed seed and a variant with one). Δ is the difference to the "
            "same setting without attention with its interval at the level its comparison was tested at "
            "(familywise over the study: see 'Difference to no attention'; * where it excludes 0, i.e. beyond "
            "seed noise); rank 0 is the Pareto front of "
            + ", ".join(ranking.objectives)
            + "."
            + (BUDGET_CAVEAT if _budget(info).get("seeds") else "")
        ),
        Table(_variant_table(ranking, reading)),
    ]
    blocks += _uncounted_blocks(results, variants)
    effect_factors = [f for f in varying if is_attention_factor(f)]
    for factor, table in factor_tables(variants, ranking.deltas, varying, acc).items():
        blocks += [Heading(f"Ablation: {factor}"), Table(table)]
    if effect_factors:
        blocks.append(
            Figure(
                "factor_effects.png",
                f"{acc} by factor value (mean ± std over seeds)",
                plots.to_png(plots.factor_effects(variants, effect_factors, acc)),
            )
        )
    blocks += _delta_blocks(ranking, info) + _parity_blocks(parity) + _change_blocks(change)
    blocks += _robust_blocks(ranking, results)
    blocks += _seed_budget_blocks(info, results, variants) + _importance_blocks(ranking)
    return (
        blocks
        + _collapsed(results, variants)
        + _failures(results)
        + _sweep_figures(info, results)
        + _files_blocks(
            ranking, convergence is not None and len(convergence) > 0, parity is not None, change is not None
        )
    )


def _curve_blocks(epochs: pd.DataFrame, variants: pd.DataFrame, has_epochs: bool) -> list[Block]:
    """Training curves of the ranked variants from ``epochs.csv``."""
    blocks: list[Block] = [Heading("Training curves")]
    labels = dict(zip(variants["variant"], variants["label"]))
    if not has_epochs or epochs[epochs["variant"].isin(labels)].empty:
        return blocks + [
            Para(
                "No per-epoch metrics for this run (no epochs.csv: the run was made before they "
                "were recorded), so no training curves."
            )
        ]
    blocks.append(
        Para(
            "Validation top-1 and training loss (log scale) against epoch, per variant: the line is the "
            "mean over seeds, the band spans the lowest to the highest seed. Completed trials only "
            "(per-epoch figures of every trial are in epochs.csv)."
        )
    )
    return blocks + [
        Figure(
            "training_curves.png",
            "Val top-1 and training loss by epoch (mean over seeds, band: min-max)",
            plots.to_png(plots.training_curves(epochs, labels)),
        )
    ]


def _convergence_trials(results: pd.DataFrame, epochs: pd.DataFrame, variants: pd.DataFrame) -> pd.DataFrame:
    """``convergence.csv``: each completed trial's gain over its last epochs and whether it is flat
    (:func:`ablation.analysis.convergence.trial_convergence`), its variant named as the tables name it."""
    trials = trial_convergence(results, epochs)
    done = results.set_index("trial_id").loc[trials["trial_id"]].reset_index()
    trials["variant"] = _variant_names(done, variants).to_numpy()
    trials["seed"] = trials["seed"].astype(int)
    return trials.sort_values(["backbone", "variant", "seed"], kind="stable", ignore_index=True)


def _gain_text(gain: float) -> str:
    return "-" if math.isnan(gain) else f"{gain:+.2f}"


def convergence_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: its seeds, how many are flat, each seed's gain, their mean, the mean's
    one-sided upper bound and whether the variant is flat on average."""
    bounds = variant_flatness(trials).set_index(["backbone", "variant"])
    rows = []
    for (backbone, variant), g in trials.groupby(["backbone", "variant"], sort=False):
        gains = g["gain"].astype(float)
        bound = bounds.loc[(backbone, variant)]
        rows.append(
            {
                "backbone": backbone,
                "variant": variant,
                "seeds": len(g),
                "flat / seeds": f"{int(g['flat'].eq(True).sum())} / {len(g)}",
                f"val top-1 gain, last {LAST} epochs": ", ".join(
                    f"s{s} {_gain_text(x)}" for s, x in zip(g["seed"], gains)
                ),
                "mean gain": _gain_text(gains.mean()) if gains.notna().any() else "-",
                f"mean gain, {1 - ALPHA:.0%} upper bound (t)": _gain_text(float(bound["upper"])),
                "flat on average": {True: "yes", False: "no"}.get(bound["flat"], "-"),
            }
        )
    return pd.DataFrame(rows)


def convergence_sentence(trials: pd.DataFrame) -> str:
    """Whether every seed's curve was flat at the end, or which were still rising."""
    judged = trials[trials["flat"].notna()]
    rising = judged[judged["flat"].eq(False)]
    short = len(trials) - len(judged)
    if judged.empty:
        return (
            f"No completed trial has a validation curve of more than {LAST} epochs in epochs.csv, so "
            f"convergence is not judged."
        )
    not_judged = f" {short} of {len(trials)} seeds trained {LAST} epochs or fewer: not judged." if short else ""
    if rising.empty:
        if short:
            return (
                f"Every seed with more than {LAST} epochs gained less than {FLAT:g} points of validation top-1 "
                f"over its last {LAST} epochs (flat)." + not_judged
            )
        return f"Every seed's validation top-1 gained less than {FLAT:g} points over its last {LAST} epochs (flat)."
    named = "; ".join(
        f"{backbone} {variant} ({', '.join(f's{s}' for s in g['seed'])})"
        for (backbone, variant), g in rising.groupby(["backbone", "variant"], sort=False)
    )
    return (
        f"{len(rising)} of {len(judged)} seeds gained {FLAT:g} points or more over their last {LAST} epochs "
        f"(still rising): {named}." + not_judged
    )


def variant_flatness_sentence(trials: pd.DataFrame) -> str:
    """Whether every variant was flat on average (its mean gain's one-sided upper bound below the
    rule), or which were not shown flat."""
    variants = variant_flatness(trials)
    judged = variants[variants["flat"].notna()]
    if judged.empty:
        return "No variant has 2 or more seeds with a gain, so none is judged on average."
    unshown = judged[judged["flat"].eq(False)]
    short = len(variants) - len(judged)
    not_judged = (
        f" {short} of {len(variants)} variants had fewer than 2 seeds with a gain: not judged." if short else ""
    )
    rule = (
        f"On average over seeds (the mean gain's one-sided {1 - ALPHA:.0%} Student t upper bound below {FLAT:g} points)"
    )
    if unshown.empty:
        return (
            f"{rule}, every variant judged is flat; as an intersection-union test, the claim that all "
            f"{len(judged)} are flat errs with probability at most {ALPHA:g}." + not_judged
        )
    named = "; ".join(
        f"{b} {v} (mean {_gain_text(m)}, bound {_gain_text(u)})"
        for b, v, m, u in unshown[["backbone", "variant", "mean_gain", "upper"]].itertuples(index=False)
    )
    return f"{rule}: {len(judged) - len(unshown)} of {len(judged)} variants flat; not shown flat: {named}." + not_judged


def _convergence_blocks(trials: Optional[pd.DataFrame]) -> list[Block]:
    """Whether training had flattened at the end, per seed and per variant
    (``ablation.analysis.convergence``)."""
    head: list[Block] = [Heading("Convergence")]
    if trials is None:
        return head + [Para("No per-epoch metrics for this run (no epochs.csv), so convergence is not judged.")]
    return head + [
        Para(
            f"Whether training had flattened at the end: each completed trial's validation top-1 at its last "
            f"epoch minus its top-1 {LAST} epochs before (the gain), flat when below {FLAT:g} points; per trial "
            f"in {CONVERGENCE_FILE}. A seed still rising was stopped before it converged, and its variant's "
            f"figures may change with more epochs. " + convergence_sentence(trials)
        ),
        Para(
            "A seed's gain also moves by chance from epoch to epoch, so a variant is judged on its seeds' mean "
            "gain as well. " + variant_flatness_sentence(trials)
        ),
        Table(convergence_table(trials)),
    ]


def _variant_names(rows: pd.DataFrame, variants: pd.DataFrame) -> pd.Series:
    """Each row's variant as the other tables name it (its label without the backbone), so that
    two variants of one module (say, a user's module with two option values) can be told apart."""
    labels = dict(zip(variants["variant"], variants["label"])) if not variants.empty else {}
    return pd.Series(
        [
            short_label(labels[v], b) if v in labels else str(a)
            for v, b, a in zip(rows["variant"], rows["backbone"], rows["attention"])
        ],
        index=rows.index,
    )


def _uncounted_blocks(results: pd.DataFrame, variants: pd.DataFrame) -> list[Block]:
    """Variants whose FLOPs miss ops fvcore has no handle for (a user's module may use them)."""
    if "uncounted_ops" not in results:
        return []
    done = results[
        (results["status"] == "completed") & results["uncounted_ops"].map(lambda v: "" if pd.isna(v) else str(v)).ne("")
    ]
    if done.empty:
        return []
    done = done.drop_duplicates("variant")
    table = pd.DataFrame(
        {
            "backbone": done["backbone"],
            "variant": _variant_names(done, variants),
            "ops counted as 0 FLOPs (times run)": done["uncounted_ops"],
        }
    )
    return [
        Heading("FLOPs not counted"),
        Para(
            "Warning: fvcore has no FLOP handle for these operations, so the FLOPs of these variants leave "
            "them out (counted 0): their FLOP figures are lower bounds."
        ),
        Table(table.reset_index(drop=True)),
    ]


def _collapsed(results: pd.DataFrame, variants: pd.DataFrame) -> list[Block]:
    """The collapsed trials, listed (they stay in every mean)."""
    flagged = results[(results["status"] == "completed") & collapsed_mask(results)]
    head: list[Block] = [
        Heading("Collapsed trials"),
        Para(f"Rule: {RULE}. They stay in every mean and are marked † in the tables."),
    ]
    if flagged.empty:
        return head + [Para("None.")]
    names = {
        "trial_id": "trial",
        "backbone": "backbone",
        "variant": "variant",
        "seed": "seed",
        "top1": "final val top-1 %",
        "test_top1": "test top-1 %",
        "train_loss": "final training loss",
        "num_classes": "classes",
    }
    table = flagged.assign(variant=_variant_names(flagged, variants))[[c for c in names if c in flagged]]
    table = table.dropna(axis=1, how="all")
    for column in table:
        metric = column in ("top1", "test_top1", "train_loss")
        table[column] = table[column].map(
            lambda v, metric=metric: f"{float(v):.2f}" if metric and pd.notna(v) else cell_text(v)
        )
    return head + [Table(table.rename(columns=names).reset_index(drop=True))]


def _summary_blocks(ranking: Ranking, reading: Reading, info: dict, results: pd.DataFrame) -> list[Block]:
    """Best only where decided, what was decided, the rest with its detectable effect, the front."""
    from .verdicts import best_lines, budget_mde, decided_lines, fixed_rows

    variants = ranking.variants
    chosen = ("by val top-1; " if reading.selection else "") + f"{reading.accuracy} shown"
    stats_ = _statistics(info)
    items = best_lines(variants, results, reported_metric(results), reading.accuracy, chosen, **stats_)
    budget = _budget(info)
    if budget.get("seeds"):
        found, seeds = _budget_decisions(info, results)
        labels = dict(zip(variants["variant"], variants["label"]))
        items += (
            [
                f"{line} (seed budget, see 'Seeds until decided')"
                for line in decided_lines(found.assign(mde=budget_mde(found)), labels)
            ]
            if not found.empty
            else []
        )
    elif ranking.family is not None and ranking.family.size:
        items += [
            f"{line} (against no attention; {ranking.family.size} comparisons, "
            f"{'familywise' if ranking.family.family == 'study' else 'per-comparison'} alpha "
            f"{ranking.family.alpha:g})"
            for line in decided_lines(fixed_rows(ranking.deltas), {})
        ]
    front = variants[variants["pareto"]]
    items.append("Pareto front (" + ", ".join(ranking.objectives) + "): " + "; ".join(front["label"]))
    items.append(
        f"hypervolume of the front: {ranking.hypervolume:.4f} (objectives min-max normalised over the "
        f"ranked variants and all minimised; reference point {HV_REFERENCE} in each)"
    )
    return [Heading("Summary"), Bullets(items)]


def _delta_blocks(ranking: Ranking, info: dict) -> list[Block]:
    """Each variant against no attention, Holm over the study; with seeds as a budget its tests
    are nominal (they ignore the looks that chose the seeds), and the section says so."""
    from .verdicts import delta_frame, delta_note

    if ranking.deltas.empty:
        return []
    assert ranking.family is not None, "rank() sets the family with the deltas"
    return [
        Heading("Difference to no attention"),
        Para(delta_note(ranking.family.describe()) + (BUDGET_CAVEAT if _budget(info).get("seeds") else "")),
        Table(delta_frame(ranking.deltas)),
    ]


def _parity_blocks(parity: Optional[PathParity]) -> list[Block]:
    """A parity study's paths against its reference path (``ablation.analysis.path_parity``)."""
    if parity is None:
        return []
    return [
        Heading("Training paths"),
        Para(
            f"Each variant trained on every path with the same seeds: {parity.accuracy} on each path minus "
            f"{parity.reference}'s on the same variant and seed, a paired t-test per variant (cell) and pooled per "
            "backbone over its cells (which assumes a path's effect does not depend on the module), each "
            "interval at the level its comparison was tested at (Holm over the cells, and over the backbones); "
            f"MDE (80%): the smallest difference the test would most likely have detected; the {parity.reference} "
            f"seed sd is the seed noise it is judged against; † marks a pair with a collapsed trial. Pairs in "
            f"{PARITY_FILE}. " + parity.sentence()
        ),
        Table(parity_table(parity)),
    ]


def _change_blocks(change: Optional[SettingChange]) -> list[Block]:
    """This run against an earlier run of the same variants and seeds (``ablation.analysis.setting_change``)."""
    if change is None:
        return []
    return [
        Heading(f"Against {change.earlier}"),
        Para(
            f"This run repeats variants and seeds of {change.earlier} (its data in against/) with "
            f"{change.changed_text()}. A pair is one variant and seed completed in both runs (the same initial "
            f"weights and training images where the data settings did not change). Change: {change.accuracy} here "
            "minus there, a paired t-test per variant and pooled over all variants. Δ vs none, change: the "
            "variant's difference to no attention here minus there on the same seeds, i.e. whether the change of "
            "setting moved it against the baseline. All these comparisons form one family (Holm), each interval at "
            "the level it was tested at; MDE (80%): the smallest difference it would most likely have detected. "
            "Earlier and now: the means compared (for Δ vs none, the variant minus no attention). "
            f"Flat: seeds whose validation top-1 gained < {FLAT} points over their last {LAST} epochs, in each run. "
            f"Pairs in {CHANGE_FILE}. " + change.sentence()
        ),
        Table(change_table(change)),
    ]


def _robust_blocks(ranking: Ranking, results: pd.DataFrame) -> list[Block]:
    """IQM and probability of improvement with bootstrap intervals (``ablation.analysis.robust``)."""
    from .robust import METHOD, robust_frame, robust_table

    return [
        Heading("Robust summaries"),
        Para(
            f"Beside the mean, so that one collapsed seed neither hides nor "
            f"dominates a variant: {METHOD}. With fewer than 4 seeds the IQM is "
            f"the mean, and the intervals only describe the seeds at hand."
        ),
        Table(robust_frame(robust_table(ranking.variants, ranking.deltas, results))),
    ]


#: Under a seed budget the number of seeds depends on the results: fixed-sample intervals are nominal.
BUDGET_CAVEAT = (
    " Seeds were a budget, so how many each variant got depended on its results: these fixed-sample "
    "intervals are nominal and ignore the repeated looks; the error-controlled decisions are in "
    "'Seeds until decided'."
)


def _statistics(info: dict) -> dict:
    """The error control of the fixed-seed comparisons (the space's ``statistics``; defaults for
    runs made before it was recorded)."""
    from ..design.space import Statistics

    return Statistics.model_validate((info.get("space") or {}).get("statistics") or {}).model_dump()


def _budget(info: dict) -> dict:
    """The ``budget`` section of the space the sweep ran (from ``sweep.json``)."""
    return (info.get("space") or {}).get("budget") or {}


def _budget_decisions(info: dict, results: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """The seed budget's comparisons and compute (``ablation.design.seed_budget.decisions``)."""
    from ..design.seed_budget import decisions
    from ..design.space import SeedBudget

    budget = _budget(info)
    seeds = SeedBudget.model_validate(budget["seeds"])
    return decisions(results, seeds.plan(), seeds.reference, budget.get("epochs"))


def _seed_budget_blocks(info: dict, results: pd.DataFrame, variants: pd.DataFrame) -> list[Block]:
    """Per comparison of a seed-budget sweep: decision, interval, seeds spent; and the compute
    spent against ``max`` seeds for every variant (``ablation.design.seed_budget``)."""
    from ..design.sequential import FUTILITY, METHOD
    from ..design.space import SeedBudget
    from .detectable import METHOD as MDE_METHOD
    from .verdicts import budget_mde

    budget = _budget(info)
    if not budget.get("seeds"):
        return []
    seeds = SeedBudget.model_validate(budget["seeds"])
    found, spent = _budget_decisions(info, results)
    found = found.assign(mde=budget_mde(found)) if not found.empty else found
    labels = dict(zip(variants["variant"], variants["label"]))
    head: list[Block] = [
        Heading("Seeds until decided"),
        Para(
            f"Seeds were a budget: {seeds.min_} of every variant, then one more at a time for both sides of every "
            f"comparison still open, up to {seeds.max_}. A comparison is better/worse when its interval of the mean "
            f"paired difference (variant minus other, test top-1 points, same seeds) excludes 0, equivalent when it "
            f"lies inside ±{seeds.equivalence:g}, undecided when still open at {seeds.max_} seeds; a failed trial or "
            f"one a scheduler stopped ends its comparisons. Error control over all looks: {METHOD}; "
            + (
                f"alpha = {seeds.alpha:g} familywise over the study's {len(found)} comparisons (Bonferroni: each "
                f"comparison's boundary spends {seeds.alpha:g} / {len(found)}; every interval covers its true difference "
                f"at every look, all at once, with probability >= {1 - seeds.alpha:g})."
                if seeds.family == "study"
                else f"alpha = {seeds.alpha:g} per comparison (family: comparison; no "
                f"familywise control over the {len(found)} comparisons)."
            )
            + f" MDE (80%): {MDE_METHOD}, for a fixed test of the paired seeds the comparison got, at its share of "
            f"alpha ({seeds.alpha:g} / {len(found) if seeds.family == 'study' else 1}; the boundary's interim levels are "
            f"stricter, so what it could detect is larger still)."
            + (
                f" Futile: {FUTILITY} ({seeds.futility:g}), from {seeds.plan().futility_start} seeds."
                if seeds.futility
                else ""
            )
            + " Each comparison is reported at the look that decided it."
        ),
    ]
    if found.empty:
        return head + [Para("No comparison yet.")]
    frame = pd.DataFrame(
        {
            "variant": found["variant"].map(lambda v: labels.get(v, v)),
            "against": [f"{labels.get(o, o)} ({k})" for o, k in zip(found["other"], found["kind"])],
            "decision": found["decision"],
            "paired seeds": found["n"],
            "Δ top-1": found["mean"].map(lambda m: "-" if math.isnan(m) else f"{m:+.2f}"),
            "interval": [
                ("-" if not math.isfinite(lo) else f"[{lo:+.2f}, {hi:+.2f}]")
                for lo, hi in zip(found["low"], found["high"])
            ],
            "seeds run (variant, other)": [f"{a}, {b}" for a, b in zip(found["seeds_variant"], found["seeds_other"])],
            "MDE (80%)": found["mde"].map(lambda v: "-" if math.isnan(v) else f"{v:.2f}"),
        }
    )
    cost = f"{int(spent['trials'])} trials of {int(spent['trials_max'])} ({spent['trials'] / spent['trials_max']:.2f})"
    if "epochs" in spent:
        cost += (
            f"; {int(spent['epochs'])} trial-epochs of {int(spent['epochs_max'])} "
            f"({spent['epochs'] / spent['epochs_max']:.2f})"
        )
    return head + [
        Table(frame),
        Para(f"Compute spent against the same space with {seeds.max_} seeds for every variant: {cost}."),
    ]


def _importance_blocks(ranking: Ranking) -> list[Block]:
    if not ranking.importance:
        return []
    frame = pd.DataFrame(ranking.importance).fillna(0.0).map("{:.3f}".format)
    frame.insert(0, "factor", frame.index)
    return [
        Heading("Factor importance"),
        Para(f"Evaluator: {ranking.evaluator}, on the Optuna study of the variants (one trial per variant)."),
        Table(frame.reset_index(drop=True)),
        Figure(
            "importance.png",
            "Importance of each factor",
            plots.to_png(plots.importance_plot(ranking.importance, ranking.evaluator)),
        ),
    ]


def _failures(results: pd.DataFrame) -> list[Block]:
    failed = results[results["status"] == "failed"]
    if failed.empty:
        return [Heading("Failed trials"), Para("None.")]
    frame = failed[["trial_id", "backbone", "attention", "seed", "error"]].copy()
    frame["error"] = frame["error"].fillna("").map(lambda e: " ".join(str(e).split())[:300])
    return [Heading("Failed trials"), Table(frame.reset_index(drop=True))]


def _sweep_figures(info: dict, results: pd.DataFrame) -> list[Block]:
    done = results[results["epochs_done"].fillna(0) > 0]
    images = (done["images_per_s"] * done["train_time_s"]).fillna(0)
    train_flops = float((done["flops"].fillna(0) * 3 * images).sum())
    items = [
        f"trials: {len(results)} ({info.get('n_trials', len(results))} in the space)",
        _wall_time(info),
        f"trial-epochs trained: {int(done['epochs_done'].sum())}; training time summed over trials: "
        f"{done['train_time_s'].sum() / 60:.1f} min",
        f"training compute (estimate: FLOPs x 3 x images trained): {train_flops:.3g} multiply-adds",
    ]
    if info.get("started"):
        items.append(f"started {info['started']}" + (f", finished {info['finished']}" if info.get("finished") else ""))
    carried = info.get("carried") or {}
    if carried.get("trial_ids"):
        items.append(
            f"carried over: {len(carried['trial_ids'])} completed trials from "
            f"{', '.join(carried.get('from') or [])} (`--carry`: the same trial configs and training setup); "
            f"trained there, so the wall time above leaves them out and the training time includes them"
        )
    blocks: list[Block] = [Heading("The sweep"), Bullets(items)]
    return blocks + _hardware_blocks(done)


#: A hardware cell a run did not record (made before that key was recorded).
NOT_RECORDED = "not recorded"


def _hardware_blocks(done: pd.DataFrame) -> list[Block]:
    """Where the trials ran, with a warning when their hardware or software differ, and whether
    this machine (the one writing the report) is the trials' (:func:`_machine_blocks`)."""
    keys = [k for k in HARDWARE_KEYS if k in done]
    if not keys or done[keys].isna().all(axis=None):
        return [Para("Hardware: not recorded for this run (made before trials recorded where they ran).")]
    frame = (
        done.reindex(columns=list(HARDWARE_KEYS))
        .astype(object)
        .map(lambda v: NOT_RECORDED if pd.isna(v) or v == "" else str(v))
    )
    frame["torch_threads"] = frame["torch_threads"].map(lambda v: v.removesuffix(".0"))
    for key in ("host", "ray_node"):
        frame[key] = done[key].astype(object).fillna("").astype(str) if key in done else ""
    rows = []
    for combo, group in frame.groupby(list(HARDWARE_KEYS), sort=True):
        hosts = sorted(h for h in set(group["host"]) if h)
        nodes = sorted(v for v in set(group["ray_node"]) if v)
        rows.append(
            {
                "trials": len(group),
                **dict(zip(HARDWARE_KEYS, combo)),
                "hosts": ", ".join(hosts),
                "Ray nodes": len(nodes),
            }
        )
    blocks: list[Block] = [Heading("Hardware", 3), Table(pd.DataFrame(rows))]
    if len(rows) > 1:
        differ = [k for k in HARDWARE_KEYS if frame[k].nunique() > 1]
        blocks.append(
            Para(
                f"Warning: the trials of this study ran on different hardware or software (they differ "
                f"in {', '.join(differ)}); training time and per-trial latency are not comparable "
                f"across them."
            )
        )
    return blocks + _machine_blocks(frame)


def _machine_blocks(frame: pd.DataFrame) -> list[Block]:
    """Whether the machine writing this report has the trials' fingerprint (``FINGERPRINT_KEYS``,
    and the GPU where the trials ran on one): the figures are the trials' as recorded, but a run
    here may not repeat them."""
    here = fingerprint_here()
    recorded = {k: sorted(set(frame[k]) - {NOT_RECORDED}) for k in FINGERPRINT_KEYS}
    gpus = sorted(set(frame["gpu"]) - {NOT_RECORDED, "none"})
    if gpus:
        recorded["gpu"], here["gpu"] = gpus, gpu_here()
    missing = [k for k, values in recorded.items() if not values]
    differ = {k: values for k, values in recorded.items() if values and values != [here[k]]}
    checked = [k for k in recorded if k not in missing]
    if differ:
        text = (
            "Written on other hardware: the machine that wrote this report differs from the trials' in "
            + "; ".join(f"{k} (trials: {', '.join(v)}; here: {here[k]})" for k, v in differ.items())
            + ". The figures are the trials' as recorded; training the same configs here can give other "
            "numbers (CPU numerics follow the capability, instruction sets, MKL and oneDNN that torch uses)."
        )
    else:
        text = f"The machine that wrote this report has the trials' {', '.join(checked)}." if checked else ""
    if missing:
        text += (
            f" The trials did not record {', '.join(missing)} (they ran before these were recorded), so "
            "whether this machine computes as theirs did cannot be told"
            + (f" from {', '.join(checked)} alone." if checked else ".")
        )
    return [Para(text.strip())]


def _wall_time(info: dict) -> str:
    """The driver's wall time; with the span from start to finish where they differ (a resumed
    sweep, whose driver did not run in between)."""
    wall = info.get("wall_time_s")
    if not isinstance(wall, (int, float)):
        return "wall time: not recorded"
    text = f"wall time: {wall / 60:.1f} min" + ("" if info.get("finished") else " so far (the sweep has not finished)")
    try:
        span = (
            datetime.strptime(info["finished"], "%Y-%m-%dT%H:%M:%S%z")
            - datetime.strptime(info["started"], "%Y-%m-%dT%H:%M:%S%z")
        ).total_seconds()
    except (KeyError, TypeError, ValueError):
        return text
    return text + (f" of driver time; {span / 60:.1f} min from start to finish (resumed)" if span > wall + 60 else "")


def _files_blocks(
    ranking: Ranking, convergence: bool = False, parity: bool = False, change: bool = False
) -> list[Block]:
    """The report folder's files, named relative to it (see :func:`portable_storage`)."""
    if ranking.storage == f"sqlite:///{STUDY_FILE}":
        study = (
            f"Optuna study {ranking.study_name!r} (one trial per variant): {STUDY_FILE} in this folder, "
            f"rebuilt from results.csv by every `ablate report` of it (open with `optuna-dashboard "
            f"{ranking.storage}` from this folder)"
        )
    else:
        study = (
            f"Optuna study {ranking.study_name!r} in {ranking.storage}"
            + (" (a path relative to this folder)" if ranking.storage.startswith("sqlite:///") else "")
            + f" (open with `optuna-dashboard {ranking.storage}`)"
        )
    return [
        Heading("Files"),
        Bullets(
            [
                "tables.tex: the tables above for LaTeX (booktabs); summary.csv: every figure per variant"
                + (
                    f"; {CONVERGENCE_FILE}: every completed trial's validation gain over its last {LAST} epochs "
                    "and whether it is flat"
                    if convergence
                    else ""
                )
                + (
                    f"; {PARITY_FILE}: every pair of trials (same variant and seed) on two training paths"
                    if parity
                    else ""
                )
                + (
                    f"; {CHANGE_FILE}: every pair of trials (same variant and seed) in this run and the earlier one"
                    if change
                    else ""
                ),
                f"{', '.join(DATA_FILES + (AGAINST_FILES if change else ()))}: the run's data (where it has them)"
                + (", and the earlier run's" if change else "")
                + ", so that `ablate report` regenerates this report from this folder alone",
                study,
            ]
        ),
    ]


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Para):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            parts.append(block.frame.to_markdown(index=False, disable_numparse=True))
        else:
            parts.append(f"![{block.caption}]({block.file})")
    return "\n\n".join(parts) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border-bottom:1px solid #ccc;padding:3px 8px;
text-align:left}th{border-bottom:2px solid #444}img{max-width:100%}figcaption{color:#555;font-size:0.9em}"""


def to_html(blocks: list[Block], title: str) -> str:
    """A self-contained page: tables as HTML, figures embedded as base64 PNG."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(block.frame.to_html(index=False, border=0))
        else:
            data = base64.b64encode(block.png).decode()
            parts.append(
                f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
            )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
