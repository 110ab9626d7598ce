"""Search spaces: expansion and de-duplication, shipped spaces, validation errors, results table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ablation.attention import attention_options
from ablation.cli import main
from ablation.errors import ConfigError
from ablation.run.results import TrialRecord, read_results, results_table, write_results
from ablation.design.space import load_space, parse_space

SPACES = sorted((Path(__file__).parent.parent / "search_spaces").glob("*.yaml"))
BASE = {"name": "t", "base": {"dataset": "digits"}, "budget": {"epochs": 1}}


def space(**parts):
    return parse_space({**BASE, **parts})


def error(**parts) -> str:
    with pytest.raises(ConfigError) as info:
        space(**parts)
    return str(info.value)


def test_grid_crosses_axes_and_drops_options_that_do_not_apply():
    s = space(grid={"attention": ["none", "se", "sca"], "kernel_size": [3, 5], "seed": [0, 1]})
    configs = s.configs()
    # none and se take no kernel size: 2 seeds each; sca: 2 kernels x 2 seeds
    assert len(configs) == 2 + 2 + 4 == s.num_trials
    assert {(c.attention, c.kernel_size) for c in configs} == {("none", None), ("se", None), ("sca", 3), ("sca", 5)}
    assert len({c.model_dump_json() for c in configs}) == len(configs)


def test_grid_blocks_are_unioned_without_duplicates():
    s = space(
        grid=[
            {"attention": ["none", "sca"], "seed": [0, 1]},
            {"attention": ["sca"], "kernel_size": [5, 7], "seed": [0, 1]},
            {"attention": ["none"], "seed": [1, 2]},  # (none, 1) already in the first block
        ]
    )
    keys = [(c.attention, c.kernel_size, c.seed) for c in s.configs()]
    assert len(keys) == len(set(keys)) == 4 + 4 + 1
    assert ("none", None, 2) in keys and ("sca", 7, 1) in keys


def test_budget_epochs_and_base_reach_every_trial():
    s = parse_space(
        {**BASE, "base": {"dataset": "digits", "lr": 0.05}, "budget": {"epochs": 3}, "grid": {"seed": [0, 1]}}
    )
    assert all(c.epochs == 3 and c.lr == 0.05 and c.dataset == "digits" for c in s.configs())
    assert s.varying_keys() == ["seed"]


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_every_shipped_space_validates(path):
    s = load_space(path)
    assert s.num_trials >= 1
    assert s.name == path.stem
    configs = s.configs()
    assert len({c.model_dump_json() for c in configs}) == len(configs)


#: Images in each shipped data set's (train, test) files, for the split sizes below.
SET_SIZES = {"fashion-mnist": (60_000, 10_000), "digits": (1437, 360)}


@pytest.mark.parametrize(
    "path", [p for p in SPACES if (p.parents[1] / "reports" / p.stem / "results.csv").is_file()], ids=lambda p: p.stem
)
def test_a_shipped_space_with_a_report_still_builds_the_splits_its_report_used(path):
    """Re-running a shipped study trains and evaluates on as many images as its report shows
    (``subset`` is training images only; ``eval_subset`` keeps the old evaluation sizes)."""
    import pandas as pd

    from ablation.data.loaders import _Sizes, _split_indices

    shipped = pd.read_csv(path.parents[1] / "reports" / path.stem / "results.csv")
    recorded = {tuple(int(v) for v in row) for row in shipped[["train_images", "val_images", "test_images"]].values}
    built = set()
    for cfg in load_space(path).configs():
        idx = _split_indices(*SET_SIZES[cfg.dataset], _Sizes(cfg.subset, cfg.eval_subset), cfg.seed, cfg.val_split)
        built.add(tuple(len(i) for i in idx))
    assert built == recorded


def test_shipped_spaces_cover_the_issue():
    names = {p.stem for p in SPACES}
    assert {
        "quick",
        "fashion_kernel",
        "fashion_branches",
        "fashion_position",
        "fashion_peers",
        "imagenet_paper",
    } <= names
    quick = load_space(SPACES[[p.stem for p in SPACES].index("quick")])
    assert {c.attention for c in quick.configs()} == {"none", "se", "eca", "sca"}
    assert len({c.kernel_size for c in quick.configs() if c.attention == "sca"}) > 1
    assert {c.seed for c in quick.configs()} == {0, 1}
    imagenet = load_space(SPACES[[p.stem for p in SPACES].index("imagenet_paper")])
    assert imagenet.spec.resources.gpu == 1
    assert {c.backbone for c in imagenet.configs()} == {"resnet50", "mobilenet_v2"}
    assert {c.dataset for c in imagenet.configs()} == {"imagefolder"}
    peers = load_space(SPACES[[p.stem for p in SPACES].index("fashion_peers")])
    assert {c.attention for c in peers.configs()} == {"none", "se", "eca", "cbam", "coord", "triplet", "sca"}


@pytest.mark.parametrize(
    "parts, expected",
    [
        ({"grid": {"attention": ["none", "se", "foo"]}}, ["grid.attention[2]", "unknown attention 'foo'", "'sca'"]),
        ({"grid": [{"attention": ["sca"], "kernel_size": [3, 4]}]}, ["grid[0].kernel_size[1]", "odd"]),
        (
            {"base": {"dataset": "digits", "backbone": "resnet20"}, "grid": {"position": ["standard", "dw"]}},
            ["grid.position[1]", "'dw'", "standard"],
        ),
        ({"grid": {"atention": ["se"]}}, ["grid.atention", "unknown key", "attention"]),
        ({"budget": {"epochs": -1}, "grid": {"seed": [0]}}, ["budget.epochs", "greater than or equal to 1"]),
        ({"grids": {"seed": [0]}}, ["grids", "unknown key", "grid"]),
        ({"grid": {}}, ["grid"]),
        ({"grid": {"seed": []}}, ["grid.seed", "empty"]),
        ({"grid": {"attention": ["se"], "kernel_size": [3]}}, ["grid.kernel_size", "'se'", "sca"]),
        ({"grid": {"seed": ["a"]}}, ["grid.seed[0]", "integer"]),
        ({"grid": {"seed": 3}}, ["grid.seed", "list"]),
        ({"base": {"epochs": 3}, "grid": {"seed": [0]}}, ["base.epochs", "budget.epochs"]),
        ({"grid": {"stages": [[1], [5]]}}, ["grid.stages[1]", "[1, 2, 3]"]),
        ({"budget": {"epochs": 2, "scheduler": "asha", "grace_period": 3}, "grid": {"seed": [0]}}, ["grace_period"]),
        ({"budget": {"epochs": 2, "scheduler": "hyperband"}, "grid": {"seed": [0]}}, ["budget.scheduler", "asha"]),
        (
            {"grid": {"seed": [0]}, "sample": {"num_samples": 2, "params": {"lr": {"log": [0.01, 0.1]}}}},
            ["alternatives"],
        ),
        ({"sample": {"num_samples": 2, "params": {"lr": {"log": [0, 0.1]}}}}, ["sample.params.lr", "positive"]),
        (
            {
                "sample": {
                    "num_samples": 2,
                    "params": {"kernel_size": {"choice": [3, 4]}},
                },
                "base": {"attention": "sca"},
            },
            ["sample.params.kernel_size[1]", "odd"],
        ),
        (
            {"base": {"dataset": "digits", "subset": 2.5}, "grid": {"seed": [0]}},
            ["base.subset", "fraction in (0, 1)", "whole count >= 1", "got 2.5"],
        ),
        ({"grid": {"seed": [0], "subset": [0.5, 0]}}, ["grid.subset", "fraction in (0, 1)", "got 0"]),
        (
            {"base": {"dataset": "digits", "eval_subset": 1.5}, "grid": {"seed": [0]}},
            ["base.eval_subset", "eval_subset must be", "fraction in (0, 1)", "whole count >= 1", "got 1.5"],
        ),
        ({"grid": {"seed": [0]}, "latency": {"rounds": 2}}, ["latency.rounds", "greater than or equal to 3", "got 2"]),
    ],
)
def test_bad_spaces_name_the_key_path_and_allowed_values(parts, expected):
    message = error(**parts)
    for fragment in expected:
        assert fragment in message, message


def test_sampled_space_uses_tune_domains():
    from ray.tune.search.sample import Domain

    from ablation.run.sweep import param_space

    s = space(
        base={"dataset": "digits", "attention": "sca"},
        sample={
            "num_samples": 5,
            "params": {
                "lr": {"log": [0.01, 0.3]},
                "kernel_size": {"choice": [3, 5]},
                "warmup_epochs": {"float": [0, 1]},
            },
        },
    )
    assert s.num_trials == 5 and s.sampled
    point = param_space(s)["point"]
    assert all(isinstance(point[k], Domain) for k in ("lr", "kernel_size", "warmup_epochs"))
    assert point["epochs"] == 1 and point["attention"] == "sca"
    assert s.varying_keys() == ["lr", "kernel_size", "warmup_epochs"]


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ngrid: [attention: [se\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_space(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_space(tmp_path / "absent.yaml")


def test_cli_validate_prints_trials_and_cost(capsys):
    assert main(["validate", str(SPACES[[p.stem for p in SPACES].index("quick")])]) == 0
    out = capsys.readouterr().out
    assert "12 trials" in out
    assert "estimated training cost" in out and "x3" in out


def test_cli_validate_bad_file_exits_nonzero_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "grid": {"attention": ["none", "nope"]}}))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "grid.attention[1]: unknown attention 'nope'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_trial_cost_is_forward_flops_x3_x_epochs_x_images():
    from ablation.commands.validate import TRAIN_FLOPS_FACTOR, trial_cost
    from ablation.data import build_data
    from ablation.models import build_model
    from ablation.run.profile import profile_model

    cfg = space(
        base={"dataset": "synthetic:size=8,channels=1,classes=3,train=40,val=8"},
        budget={"epochs": 2},
        grid={"attention": ["se"]},
    ).configs()[0]
    cost = trial_cost(cfg)
    data = build_data(cfg.dataset, batch_size=1)
    model = build_model("resnet20", "se", num_classes=3, in_channels=1, small_input=True)
    flops = profile_model(model, 8, 1, latency=False).flops
    assert cost["forward_flops"] == flops and cost["train_images"] == data.train.num_images == 40
    assert cost["train_flops"] == flops * TRAIN_FLOPS_FACTOR * 2 * 40


# --- property: any valid grid expands to unique, valid configs, one per applicable combination ---

ATTENTIONS = ["none", "se", "eca", "cbam", "coord", "triplet", "sca"]


@settings(max_examples=40, deadline=None)
@given(
    attentions=st.lists(st.sampled_from(ATTENTIONS), min_size=1, max_size=4, unique=True),
    kernels=st.one_of(st.none(), st.lists(st.sampled_from([1, 3, 5, 7]), min_size=1, max_size=3, unique=True)),
    reductions=st.one_of(st.none(), st.lists(st.sampled_from([4, 8, 16]), min_size=1, max_size=2, unique=True)),
    seeds=st.lists(st.integers(0, 5), min_size=1, max_size=3, unique=True),
)
def test_expansion_count_is_the_product_of_applicable_axes(attentions, kernels, reductions, seeds):
    grid = {"attention": attentions, "seed": seeds}
    options = {"kernel_size": kernels, "reduction": reductions}
    grid.update({k: v for k, v in options.items() if v is not None})
    takers = {k: [a for a in attentions if k in attention_options(a)] for k in options if options[k] is not None}
    if any(not t for t in takers.values()):
        with pytest.raises(ConfigError, match="no attention here takes"):
            space(grid=grid)
        return
    configs = space(grid=grid).configs()
    expected = sum(len(seeds) * _product(len(options[k]) for k in takers if a in takers[k]) for a in attentions)
    assert len(configs) == expected
    assert len({c.model_dump_json() for c in configs}) == expected


def _product(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


# --- results table ---


def _record(trial_id, status, epochs=2, error="", **config):
    from ablation.design.config import TrialConfig

    cfg = TrialConfig(epochs=epochs, **config).model_dump()
    history = [
        {
            "epoch": e,
            "top1": 50.0 + 10 * (e == 1),
            "top5": 90.0,
            "val_loss": 1.0 / e,
            "train_loss": 1.0,
            "epoch_time_s": 2.0,
            "images_per_s": 100.0 * e,
            "params": 10,
            "flops": 20,
            "attention_params": 1,
            "attention_flops": 2,
            "latency_ms": 0.5,
        }
        for e in range(1, (epochs if status == "completed" else 1) + 1)
    ]
    return TrialRecord(trial_id, cfg, status, error, history)


def test_results_table_columns_and_metrics(tmp_path):
    records = [
        _record("b", "completed", attention="sca", kernel_size=5, lr=0.05),
        _record("a", "failed", error="RuntimeError: boom", attention="se", lr=0.1),
    ]
    write_results(tmp_path, records)
    table = read_results(tmp_path)
    assert list(table["trial_id"]) == ["a", "b"]
    assert list(table.columns[:5]) == ["trial_id", "variant", "status", "error", "lr"]
    done = table.set_index("trial_id").loc["b"]
    assert done["best_top1"] == 60.0 and done["best_epoch"] == 1 and done["top1"] == 50.0
    assert done["epochs_done"] == 2 and done["train_time_s"] == 4.0 and done["images_per_s"] == 150.0
    assert done["kernel_size"] == 5
    failed = table.set_index("trial_id").loc["a"]
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom"
    assert results_table(records)["kernel_size"].dtype.name == "Int64"


def test_results_write_is_atomic(tmp_path, monkeypatch):
    import os

    write_results(tmp_path, [_record("a", "completed")])
    before = (tmp_path / "results.csv").read_text()

    def crash(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_results(tmp_path, [_record("a", "completed"), _record("b", "completed")])
    assert (tmp_path / "results.csv").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_a_sweep_stored_before_a_section_existed_is_the_same_space():
    """``--resume`` compares the stored space read again with today's sections and defaults: a
    sweep.json written before ``train`` and ``statistics`` existed is the same space; a changed
    value is not."""
    space = load_space(SPACES[[p.stem for p in SPACES].index("fashion_peers_adaptive")])
    stored = space.dump()
    old = {k: v for k, v in stored.items() if k not in ("train", "statistics")}
    old["budget"] = {**stored["budget"], "seeds": {k: v for k, v in stored["budget"]["seeds"].items() if k != "family"}}
    assert space.same_as(stored) and space.same_as(old)
    assert not space.same_as({**stored, "budget": {**stored["budget"], "epochs": stored["budget"]["epochs"] + 1}})
    assert not space.same_as({"name": 3}) and not space.same_as(None)
