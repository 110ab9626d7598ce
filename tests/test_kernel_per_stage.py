"""A kernel size per stage (``kernel_size: [3, 5, 5, 7]``, as ECA's authors use): built into the
right stages, validated where it is written (space, CLI), and carried through a real sweep's
results table, report and latency calibration."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ablation.cli import main
from ablation.errors import ConfigError
from ablation.models import build_model
from ablation.design.space import parse_space

BASE = {"name": "t", "base": {"dataset": "digits", "backbone": "resnet20"}, "budget": {"epochs": 1}}


def kernels_by_stage(model) -> dict[str, set[int]]:
    """Kernel sizes of the attention modules, by the model's child they sit in (a ResNet's
    ``layerN``; MobileNetV2's block ``features.N`` as ``N``)."""
    found: dict[str, set[int]] = {}
    for name, module in model.named_modules():
        if getattr(module, "is_ablation_attention", False):
            k = module.kernel_size if hasattr(module, "kernel_size") else module.conv.kernel_size[0]
            parts = name.split(".")
            found.setdefault(parts[1] if parts[0] == "features" else parts[0], set()).add(k)
    return found


def test_each_stage_gets_its_element():
    assert kernels_by_stage(build_model("resnet20", "eca", kernel_size=[3, 5, 7])) == {
        "layer1": {3},
        "layer2": {5},
        "layer3": {7},
    }
    # in the order of stages as given
    assert kernels_by_stage(build_model("resnet20", "sca", stages=[3, 1], kernel_size=[7, 3])) == {
        "layer1": {3},
        "layer3": {7},
    }
    # MobileNetV2 post: stages 2-6 have a residual; features 3 is stage 2, 16 is stage 6
    model = build_model("mobilenet_v2", "sca", "post", kernel_size=[3, 5, 5, 7, 7], width_mult=0.5, num_classes=10)
    by_block = kernels_by_stage(model)
    assert by_block["3"] == {3} and by_block["5"] == {5} and by_block["16"] == {7}
    # one value still means every stage
    assert kernels_by_stage(build_model("resnet20", "eca", kernel_size=5)) == {f"layer{s}": {5} for s in (1, 2, 3)}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"kernel_size": [3, 5]}, "one value per stage with attention, 3 here"),
        ({"stages": [2, 3], "kernel_size": [3, 5, 7]}, "2 here (stages [2, 3]"),
        ({"kernel_size": [3, 4, 5]}, "odd"),
    ],
)
def test_bad_per_stage_lists_are_one_clear_error(kwargs, fragment):
    with pytest.raises(ConfigError, match="kernel_size") as info:
        build_model("resnet20", "eca", **kwargs)
    assert fragment in str(info.value)


def test_a_users_backbone_takes_one_value(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "docs" / "byo_block"))
    with pytest.raises(ConfigError, match="kernel_size: a per-stage list .* places attention itself"):
        build_model("my_blocks:tiny_net", "eca", kernel_size=[3, 5])


def test_space_crosses_per_stage_lists_as_values_of_a_grid_axis():
    s = parse_space({**BASE, "grid": {"attention": ["none", "eca"], "kernel_size": [[3, 5, 7], 3]}})
    assert sorted(str(c.kernel_size) for c in s.configs()) == ["3", "None", "[3, 5, 7]"]
    assert s.varying_keys() == ["attention", "kernel_size"]
    based = parse_space(
        {**BASE, "base": {**BASE["base"], "attention": "eca", "kernel_size": [3, 5, 7]}, "grid": {"seed": [0, 1]}}
    )
    assert [c.kernel_size for c in based.configs()] == [[3, 5, 7], [3, 5, 7]]


@pytest.mark.parametrize(
    "parts, fragments",
    [
        ({"grid": {"attention": ["eca"], "kernel_size": [3, [3, 5]]}}, ["grid.kernel_size[1]", "3 here"]),
        (
            {"grid": {"attention": ["eca"], "stages": [[1, 2]], "kernel_size": [[3, 5, 7]]}},
            ["grid.kernel_size[0]", "grid.stages[0]", "2 here"],
        ),
        ({"grid": {"attention": ["eca"], "kernel_size": [[3, 4, 5]]}}, ["grid.kernel_size[0]", "odd"]),
        (
            {"grid": {"attention": ["eca"], "kernel_size": [[3, [5], 7]]}},
            ["grid.kernel_size[0]", "one value per stage"],
        ),
        (
            {"base": {"dataset": "digits", "attention": "eca", "kernel_size": [3, 5]}, "grid": {"seed": [0]}},
            ["base.kernel_size", "3 here"],
        ),
        (
            {
                "base": {"dataset": "digits", "attention": "eca"},
                "sample": {"num_samples": 2, "params": {"kernel_size": {"choice": [[3, 5, 7], 3]}}},
            },
            ["sample.params.kernel_size", "cannot be sampled"],
        ),
    ],
)
def test_bad_per_stage_values_in_a_space_name_their_path(parts, fragments):
    with pytest.raises(ConfigError) as info:
        parse_space({**BASE, **parts})
    assert all(f in str(info.value) for f in fragments), str(info.value)


def test_profile_cli_takes_one_kernel_per_stage(capsys):
    args = [
        "profile",
        "--backbone",
        "resnet20",
        "--attention",
        "eca",
        "--input-size",
        "16",
        "--num-classes",
        "10",
        "--no-latency",
        "--json",
    ]
    assert main([*args, "--kernel-size", "3,5,7"]) == 0
    per_stage = json.loads(capsys.readouterr().out)
    assert per_stage["kernel_size"] == [3, 5, 7]
    assert main([*args, "--kernel-size", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["attention_params"] < per_stage["attention_params"]
    assert main([*args, "--kernel-size", "3,5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kernel_size" in err[0] and "3 here" in err[0]


def test_validate_cli_refuses_a_list_of_the_wrong_length(tmp_path, capsys):
    import yaml

    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**BASE, "grid": {"attention": ["eca"], "kernel_size": [[3, 5]]}}))
    assert main(["validate", str(path), "--no-cost"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grid.kernel_size[0]" in err[0]


@pytest.mark.slow
def test_real_sweep_records_and_reports_per_stage_kernels(local_ray, tmp_path):
    from ablation.run.calibrate import variant_configs
    from ablation.analysis.report import write_report
    from ablation.run.results import read_results
    from ablation.run.sweep import run_sweep
    from sweep_fixtures import space

    outcome = run_sweep(
        space("per_stage", grid={"attention": ["none", "eca"], "kernel_size": [[3, 5, 7], 3]}),
        storage=tmp_path,
        verbose=0,
    )
    table = read_results(outcome.run_dir)
    assert outcome.counts == {"completed": 3}
    assert sorted(table["kernel_size"].dropna().astype(str)) == ["3", "3,5,7"]  # written as stages are
    assert (table["flops_convfc"] > 0).all() and (table["flops_convfc"] < table["flops"]).all()
    per_stage = table[table["kernel_size"].astype(str) == "3,5,7"]
    configs = variant_configs(table, {"dataset": "digits"})
    assert configs[per_stage["variant"].iloc[0]][0]["kernel_size"] == [3, 5, 7]
    md = (write_report(outcome.run_dir, tmp_path / "report") / "report.md").read_text()
    assert "eca k=3,5,7" in md and "eca k=3 " in md
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert len(summary) == 3


def test_seed_budget_reference_with_a_per_stage_kernel_matches_the_results_table(tmp_path):
    """results.csv writes per-stage lists as text (and so reads a column holding one as text):
    a reference naming either kind of kernel size still finds its variant there."""
    from ablation.run.results import read_results
    from ablation.design.seed_budget import decisions
    from ablation.design.sequential import Plan
    from report_fixtures import trial_row, write_run

    rows = [
        trial_row(10 * i + seed, seed=seed, attention=attention, kernel_size=k, test_top1=80.0 + i + seed / 10)
        for i, (attention, k) in enumerate((("none", None), ("eca", 3), ("eca", "3,5,7")))
        for seed in (0, 1)
    ]
    table = read_results(write_run(tmp_path / "run", rows))
    plan = Plan(alpha=0.05, equivalence=0.5, min_seeds=2, max_seeds=4, futility=0.0)
    for reference, other in (
        ({"attention": "eca", "kernel_size": [3, 5, 7]}, "3,5,7"),
        ({"attention": "eca", "kernel_size": 3}, "3"),
    ):
        found, _ = decisions(table, plan, reference)
        ids = table.set_index("variant")["kernel_size"].astype(str).to_dict()
        assert [ids[v] for v in found.loc[found["kind"] == "reference", "other"]] == [other]
