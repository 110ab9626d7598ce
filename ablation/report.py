"""The report of a sweep, from its run directory alone: ``report.md``, a self-contained
``report.html`` (plots embedded), the plots as PNG, ``tables.tex`` (booktabs) and ``summary.csv``.

It reads ``results.csv`` and ``sweep.json`` only, so it can be regenerated at any time, also
while the sweep runs (unfinished trials are counted, not ranked). Every file is written to a
temporary file and renamed.
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
from .aggregate import ATTENTION_FACTORS, aggregate, factors
from .errors import DataError
from .rank import HV_REFERENCE, Ranking, rank
from .results import RESULTS_FILE, SWEEP_FILE, atomic_write_bytes, atomic_write_text, read_results
from .tables import count, factor_tables, latex, short_label, variant_table

REPORT_FILES = ("report.md", "report.html", "tables.tex", "summary.csv")
STUDY_FILE = "optuna.db"


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


def _rank_into_study_file(variants: pd.DataFrame, results: pd.DataFrame, varying: list[str], run_dir: Path,
                          name: str) -> Ranking:
    """Rank into a private SQLite file, then rename it over ``optuna.db``: reports run side by
    side (say, two ``ablate report`` calls during a sweep) never share a half-built study."""
    fd, tmp = tempfile.mkstemp(prefix=f".{STUDY_FILE}.", suffix=".tmp", dir=run_dir)
    os.close(fd)
    try:
        ranking = rank(variants, results, varying, storage=f"sqlite:///{tmp}", study_name=name)
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
        raise DataError(f"{run_dir / RESULTS_FILE}: not found; give the run directory of a sweep "
                        f"(runs/<name>/, the folder holding {RESULTS_FILE})")
    info = _sweep_info(run_dir)
    name = info.get("name") or run_dir.name
    out = Path(out) if out is not None else Path("reports") / name
    out.mkdir(parents=True, exist_ok=True)
    results = read_results(run_dir)
    varying = factors(results)
    variants = aggregate(results)
    ranking = (rank(variants, results, varying, storage=storage, study_name=name) if storage
               else _rank_into_study_file(variants, results, varying, run_dir, name))
    blocks = _blocks(name, info, results, ranking, varying)
    for block in blocks:
        if isinstance(block, Figure):
            atomic_write_bytes(out / block.file, block.png)
    tables = {"variants": variant_table(ranking.variants, ranking.deltas)} if not ranking.variants.empty else {}
    tables.update(factor_tables(ranking.variants, ranking.deltas, varying) if not ranking.variants.empty else {})
    atomic_write_text(out / "tables.tex", latex(tables, name))
    atomic_write_text(out / "summary.csv", _summary(ranking).to_csv(index=False))
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, f"Ablation report: {name}"))
    return out


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


def _blocks(name: str, info: dict, results: pd.DataFrame, ranking: Ranking, varying: list[str]) -> list[Block]:
    variants = ranking.variants
    status = results["status"].value_counts()
    blocks: list[Block] = [Heading(f"Ablation report: {name}", 1)]
    if info.get("description"):
        blocks.append(Para(" ".join(str(info["description"]).split())))
    unfinished = int(status.get("running", 0) + status.get("pending", 0))
    blocks.append(Para(
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from results.csv: {len(results)} trials, "
        + ", ".join(f"{n} {s}" for s, n in status.items()) + "."
        + (f" The sweep is still running: {unfinished} trials have not finished and are not ranked." if unfinished else "")
    ))
    if variants.empty:
        blocks.append(Para("No trial has completed yet, so there is nothing to rank."))
        return blocks + _failures(results) + _sweep_figures(info, results)
    blocks += _summary_blocks(ranking)
    blocks += [
        Heading("Accuracy against cost"),
        Figure("accuracy_vs_flops.png", "Top-1 (mean ± std over seeds) against FLOPs", plots.accuracy_vs_cost(variants, "flops")),
        Figure("accuracy_vs_params.png", "Top-1 (mean ± std over seeds) against parameters", plots.accuracy_vs_cost(variants, "params")),
        Heading("All variants"),
        Para("Top-1 is the final validation top-1 over seeds (mean ± std); Δ is the difference to the same "
             "setting without attention with its 95% CI (* where the CI excludes 0, i.e. distinguishable "
             "from seed noise); rank 0 is the Pareto front of " + ", ".join(ranking.objectives) + "."),
        Table(variant_table(variants, ranking.deltas)),
    ]
    effect_factors = [f for f in varying if f in ATTENTION_FACTORS]
    for factor, table in factor_tables(variants, ranking.deltas, varying).items():
        blocks += [Heading(f"Ablation: {factor}"), Table(table)]
    if effect_factors:
        blocks.append(Figure("factor_effects.png", "Top-1 by factor value (mean ± std over seeds)",
                             plots.factor_effects(variants, effect_factors)))
    blocks += _delta_blocks(ranking) + _importance_blocks(ranking)
    return blocks + _failures(results) + _sweep_figures(info, results) + _files_blocks(ranking)


def _summary_blocks(ranking: Ranking) -> list[Block]:
    variants = ranking.variants
    best = variants.sort_values(["top1_mean", "flops"], ascending=[False, True]).groupby("backbone").head(1)
    items = [f"best top-1 on {r['backbone']}: {short_label(r['label'], r['backbone'])}, "
             f"{r['top1_mean']:.2f}% (n={int(r['n'])}), {count(r['flops'])} FLOPs, {count(r['params'])} params"
             for _, r in best.iterrows()]
    front = variants[variants["pareto"]]
    items.append("Pareto front (" + ", ".join(ranking.objectives) + "): " + "; ".join(front["label"]))
    items.append(f"hypervolume of the front: {ranking.hypervolume:.4f} (objectives min-max normalised over the "
                 f"ranked variants and all minimised; reference point {HV_REFERENCE} in each)")
    return [Heading("Summary"), Bullets(items)]


def _delta_blocks(ranking: Ranking) -> list[Block]:
    if ranking.deltas.empty:
        return []
    d = ranking.deltas
    frame = pd.DataFrame({
        "variant": d["label"], "baseline": d["baseline"], "Δ top-1": d["delta_top1"].map("{:+.2f}".format),
        "95% CI": [("-" if math.isnan(lo) else f"[{lo:+.2f}, {hi:+.2f}]") for lo, hi in zip(d["ci_low"], d["ci_high"])],
        "p": d["p_value"].map(lambda p: "-" if math.isnan(p) else f"{p:.3f}"), "test": d["test"],
        "beyond seed noise": d["significant"].map({True: "yes", False: "no", None: "-"}),
    })
    return [Heading("Difference to no attention"),
            Para("Seeds are paired where both variants ran the same seeds (paired t-test), else Welch's t-test."),
            Table(frame)]


def _importance_blocks(ranking: Ranking) -> list[Block]:
    if not ranking.importance:
        return []
    frame = pd.DataFrame(ranking.importance).fillna(0.0).map("{:.3f}".format)
    frame.insert(0, "factor", frame.index)
    return [Heading("Factor importance"),
            Para(f"Evaluator: {ranking.evaluator}, on the Optuna study of the variants (one trial per variant)."),
            Table(frame.reset_index(drop=True)),
            Figure("importance.png", "Importance of each factor", plots.importance_plot(ranking.importance, ranking.evaluator))]


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
    wall = info.get("wall_time_s")
    items = [
        f"trials: {len(results)} ({info.get('n_trials', len(results))} in the space)",
        _wall_time(info),
        f"trial-epochs trained: {int(done['epochs_done'].sum())}; training time summed over trials: "
        f"{done['train_time_s'].sum() / 60:.1f} min",
        f"training compute (estimate: FLOPs x 3 x images trained): {train_flops:.3g} multiply-adds",
    ]
    if info.get("started"):
        items.append(f"started {info['started']}" + (f", finished {info['finished']}" if info.get("finished") else ""))
    return [Heading("The sweep"), Bullets(items)]


def _wall_time(info: dict) -> str:
    """The driver's wall time; with the span from start to finish where they differ (a resumed
    sweep, whose driver did not run in between)."""
    wall = info.get("wall_time_s")
    if not isinstance(wall, (int, float)):
        return "wall time: not recorded"
    text = f"wall time: {wall / 60:.1f} min" + ("" if info.get("finished") else " so far (the sweep has not finished)")
    try:
        span = (datetime.strptime(info["finished"], "%Y-%m-%dT%H:%M:%S%z")
                - datetime.strptime(info["started"], "%Y-%m-%dT%H:%M:%S%z")).total_seconds()
    except (KeyError, TypeError, ValueError):
        return text
    return text + (f" of driver time; {span / 60:.1f} min from start to finish (resumed)" if span > wall + 60 else "")


def _files_blocks(ranking: Ranking) -> list[Block]:
    return [Heading("Files"), Bullets([
        "tables.tex: the tables above for LaTeX (booktabs); summary.csv: every figure per variant",
        f"Optuna study {ranking.study_name!r} in {ranking.storage} (open with `optuna-dashboard {ranking.storage}`)",
    ])]


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
            parts.append(block.frame.to_markdown(index=False))
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
            parts.append(f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
