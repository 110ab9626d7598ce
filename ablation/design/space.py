"""Search-space files: a declarative ablation (base + grid or sample + budget) -> trial configs.

A space file names a base trial config, the axes to cross (``grid``; a list of grid blocks is
the union of their expansions) or the ranges to sample (``sample``, searched by Optuna), the
epoch budget and scheduler, and the resources of one trial. Expansion drops attention options
that do not apply to a module and removes the duplicates that makes, so a grid never trains
the same variant twice. A per-stage option (``kernel_size: [3, 5, 5, 7]``) is one value: in a
grid axis it sits inside the axis's list (``kernel_size: [[3, 5, 5, 7], 3]``); it cannot be
sampled. Every error names the key path and the allowed values.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .config import ATTENTION_OPTION_KEYS, TrialConfig
from .execution import ExecutionPath
from .train_path import TrainPath
from ..errors import ConfigError

#: Trial-config keys a space sets in a section of its own, not in base or grid.
SECTION_KEYS: dict[str, str] = {"epochs": "budget.epochs", "latency_path": "latency.path", "train_path": "train.path"}
#: Trial-config keys a space may set in ``base``, ``grid`` or ``sample``.
SPACE_KEYS: tuple[str, ...] = tuple(k for k in TrialConfig.model_fields if k not in SECTION_KEYS)
#: Keys that together decide whether a backbone/position/stages combination exists.
MODEL_KEYS: tuple[str, ...] = ("backbone", "position", "stages", "width_mult")


class SeedBudget(BaseModel):
    """Seeds as a budget instead of a grid axis (``ablation.run.seed_search``): ``min`` seeds of every
    variant, then one more at a time where a comparison (variant against its baseline, and
    against ``reference`` if given) is still open, up to ``max``; decided at error rate ``alpha``
    or equivalent within ``equivalence`` points of top-1, or ended as futile when the look at
    ``max`` would most likely decide nothing (conditional power below ``futility``; 0 turns it off;
    ``ablation.design.sequential``). ``family``: ``study`` (alpha is the familywise rate over all of the
    study's comparisons) or ``comparison`` (alpha per comparison)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    min_: int = Field(2, ge=2, alias="min")
    max_: int = Field(10, ge=2, alias="max")
    alpha: float = Field(0.05, gt=0, lt=1)
    equivalence: float = Field(0.5, ge=0)
    futility: float = Field(0.1, ge=0, lt=1)
    family: Literal["study", "comparison"] = "study"
    reference: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _min_within_max(self) -> "SeedBudget":
        if self.min_ > self.max_:
            raise ValueError(f"min ({self.min_}) exceeds max ({self.max_})")
        return self

    def plan(self) -> Any:
        """The sequential plan these settings describe."""
        from .sequential import Plan

        return Plan(
            alpha=self.alpha,
            equivalence=self.equivalence,
            min_seeds=self.min_,
            max_seeds=self.max_,
            futility=self.futility,
            family=self.family,
        )


class Budget(BaseModel):
    """How long each trial trains, how trials are scheduled and retried, and (``seeds``)
    whether seeds are a budget spent where comparisons are still open."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(ge=1)
    seeds: Optional[SeedBudget] = None
    scheduler: Literal["none", "asha"] = "none"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1)
    max_concurrent: Optional[int] = Field(None, ge=1)
    max_failures: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _grace_within_epochs(self) -> "Budget":
        if self.grace_period > self.epochs:
            raise ValueError(f"grace_period ({self.grace_period}) exceeds epochs ({self.epochs})")
        return self


class Resources(BaseModel):
    """What one trial reserves from Ray (fractions allowed, e.g. 0.5 GPU)."""

    model_config = ConfigDict(extra="forbid")

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class Statistics(BaseModel):
    """Error control of the report's fixed-seed comparisons (the Δ table; a seed budget has its
    own in ``budget.seeds``): ``alpha`` is the study's familywise rate over all of them
    (``family: study``, Holm; ``ablation.analysis.familywise``) or each one's (``family: comparison``)."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.05, gt=0, lt=1)
    family: Literal["study", "comparison"] = "study"


class Latency(BaseModel):
    """How latency is measured, the same way for every variant (see ``ablation.design.execution``):
    the execution path of every trial's own measurement and of the calibration pass that
    follows the trials (interleaved rounds of all variants, see ``ablation.run.calibrate``)."""

    model_config = ConfigDict(extra="forbid")

    path: ExecutionPath = "eager"
    calibrate: bool = True
    rounds: int = Field(15, ge=3)
    batch: int = Field(1, ge=1)
    threads: int = Field(1, ge=1)


class Training(BaseModel):
    """How every trial trains (see ``ablation.design.train_path``): one path for the whole study. A list
    of paths makes a parity study: every variant is trained on each path listed (the path becomes
    an axis of the grid), so that the paths can be compared on the same variants and seeds."""

    model_config = ConfigDict(extra="forbid")

    path: Union[TrainPath, list[TrainPath]] = "eager"

    @model_validator(mode="after")
    def _distinct_paths(self) -> "Training":
        if isinstance(self.path, list) and (not self.path or len(set(self.path)) != len(self.path)):
            raise ValueError(f"path: a parity study lists distinct training paths, got {self.path}")
        return self

    def paths(self) -> list[str]:
        """The study's training paths (one, except in a parity study)."""
        return list(self.path) if isinstance(self.path, list) else [self.path]


class Distribution(BaseModel):
    """One sampled parameter: exactly one of ``choice``, ``int``, ``float`` or ``log``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    choice: Optional[list[Any]] = Field(None, min_length=1)
    int_: Optional[tuple[int, int]] = Field(None, alias="int")
    float_: Optional[tuple[float, float]] = Field(None, alias="float")
    log: Optional[tuple[float, float]] = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Distribution":
        kinds = [k for k in ("choice", "int_", "float_", "log") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of choice, int, float, log")
        bounds = self.int_ or self.float_ or self.log
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"low must be below high, got {list(bounds)}")
        if self.log is not None and self.log[0] <= 0:
            raise ValueError(f"log range must be positive, got {list(self.log)}")
        return self

    def corners(self) -> list[Any]:
        """The values that bound the range (every value for a choice), for validation."""
        if self.choice is not None:
            return list(self.choice)
        bounds = self.int_ or self.float_ or self.log
        assert bounds is not None, "the validator requires one of choice, int, float, log"
        return list(bounds)

    def domain(self) -> Any:
        """The Ray Tune search domain (OptunaSearch converts it to an Optuna distribution)."""
        from ray import tune

        if self.choice is not None:
            return tune.choice(self.choice)
        if self.int_ is not None:
            return tune.randint(self.int_[0], self.int_[1] + 1)  # Tune's upper bound is exclusive
        if self.float_ is not None:
            return tune.uniform(*self.float_)
        assert self.log is not None, "the validator requires one of choice, int, float, log"
        return tune.loguniform(*self.log)


class Sample(BaseModel):
    """Ranges sampled by Optuna instead of crossed: ``num_samples`` trials in all."""

    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(ge=1)
    seed: int = 0
    params: dict[str, Distribution] = Field(min_length=1)


class SpaceFile(BaseModel):
    """The parsed YAML file (``grid`` is checked by :func:`_grid_blocks`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    grid: Any = None
    sample: Optional[Sample] = None
    budget: Budget
    resources: Resources = Field(default_factory=Resources)
    latency: Latency = Field(default_factory=Latency)
    train: Training = Field(default_factory=Training)
    statistics: Statistics = Field(default_factory=Statistics)

    def section_values(self) -> dict[str, Any]:
        """The trial-config keys set by sections (a parity study's paths: the first; the rest
        are a grid axis, see :func:`_expand`)."""
        return {"epochs": self.budget.epochs, "latency_path": self.latency.path, "train_path": self.train.paths()[0]}


def applicable(point: dict[str, Any]) -> dict[str, Any]:
    """``point`` without the attention options its attention module does not take, and without a
    user module's options that are not set (``None``: absent, as where expansion dropped them)."""
    from ..attention import attention_options

    allowed = attention_options(point.get("attention", "none"))
    unset = {k for k, v in point.items() if v is None and k not in TrialConfig.model_fields}
    return {k: v for k, v in point.items() if (not _is_option(k) or k in allowed) and k not in unset}


def _is_option(key: str) -> bool:
    """An attention option: one of ours, or a key that is no trial-config field (a user module's)."""
    return key in ATTENTION_OPTION_KEYS or key not in TrialConfig.model_fields


def _option_keys(attentions: list[Any]) -> set[str]:
    """Options taken by any of ``attentions`` (names that do not resolve take none here: they
    are reported by the attention check)."""
    from ..attention import attention_options

    keys: set[str] = set()
    for name in attentions:
        try:
            keys |= attention_options(name)
        except (ConfigError, TypeError):
            continue
    return keys


def trial_config(point: dict[str, Any]) -> TrialConfig:
    """The trial config of one (grid or sampled) point: options that do not apply are dropped."""
    return TrialConfig(**applicable(point))


class SearchSpace:
    """A validated space: its file, its trial configs (grid) or its sampled ranges."""

    def __init__(self, spec: SpaceFile, source: Optional[str] = None):
        self.spec = spec
        self.source = source
        self._points = _expand(spec)
        self._names = _display_names(self._points)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def sampled(self) -> bool:
        return self.spec.sample is not None

    @property
    def num_trials(self) -> int:
        """Trials of the space (with a seed budget: at most, with ``max`` seeds everywhere)."""
        sample = self.spec.sample
        return sample.num_samples if sample is not None else len(self._points)

    @property
    def seed_budget(self) -> Optional[SeedBudget]:
        return self.spec.budget.seeds

    def points(self) -> list[dict[str, Any]]:
        """Full trial-config dicts: one per grid trial (with a seed budget: every seed up to
        ``max``), or the sampled ranges' fixed corners."""
        return [dict(p) for p in self._points]

    def configs(self) -> list[TrialConfig]:
        """The grid's trial configs (for a sampled space: the validation corners)."""
        return [trial_config(p) for p in self._points]

    def varying_keys(self) -> list[str]:
        """Config keys whose value differs between trials, in space order."""
        if self.spec.sample is not None:
            return list(self.spec.sample.params)
        keys: list[str] = []
        for block in _grid_blocks(self.spec.grid):
            keys += [k for k in block if k not in keys]
        keys += ["train_path"]
        return [k for k in keys if len({repr(p.get(k)) for p in self._points}) > 1]

    def display_names(self) -> dict[str, dict[str, str]]:
        """The short names users' modules and backbones give themselves (``display_name``), for
        report tables and plots: ``{"attention": {name: shown}, "backbone": {...}}``, only where
        they differ from the name."""
        return {kind: dict(names) for kind, names in self._names.items()}

    def with_base(self, **updates: Any) -> "SearchSpace":
        """A copy whose base config has ``updates`` applied (e.g. an absolute ``data_dir``)."""
        spec = self.spec.model_copy(update={"base": {**self.spec.base, **updates}})
        return SearchSpace(spec, self.source)

    def dump(self) -> dict[str, Any]:
        """The parsed space as plain data (stored in ``sweep.json``)."""
        return self.spec.model_dump(by_alias=True, exclude_none=True)

    def same_as(self, stored: Any) -> bool:
        """Whether ``stored`` (a ``sweep.json`` space) is this space: read again with today's
        sections and defaults, so a sweep begun before a section existed still resumes, while a
        changed value (a default that moved included: it was stored explicitly) does not."""
        if not isinstance(stored, dict):
            return False
        try:
            again = SpaceFile.model_validate(stored).model_dump(by_alias=True, exclude_none=True)
        except ValidationError:
            return False
        return again == self.dump()


def _display_names(points: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Display names of the attention modules and backbones ``points`` use; two that would show
    as the same name are a ``ConfigError`` (a table could not tell them apart)."""
    from ..attention.registry import display
    from ..models import backbone_display

    out: dict[str, dict[str, str]] = {}
    for kind, shown in (("attention", display), ("backbone", backbone_display)):
        names = sorted({name for p in points if isinstance(name := p.get(kind), str)})
        seen: dict[str, str] = {}
        for name in names:
            label = shown(name)
            if label in seen:
                raise ConfigError(
                    f"{kind} {name!r} and {seen[label]!r} would both show as {label!r} in tables and "
                    f"plots; give one a different display_name"
                )
            seen[label] = name
        out[kind] = {name: label for label, name in seen.items() if label != name}
    return out


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a space file; every problem is a :class:`ConfigError` naming the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read search space ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {list(SpaceFile.model_fields)}")
    try:
        return parse_space(data, source=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_space(data: dict[str, Any], source: Optional[str] = None) -> SearchSpace:
    """Validate a space given as a mapping (the YAML file's content)."""
    try:
        spec = SpaceFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_message(exc, allowed=list(SpaceFile.model_fields))) from None
    return SearchSpace(spec, source)


def _pydantic_message(exc: ValidationError, prefix: str = "", allowed: Optional[list[str]] = None) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if p != "int_") if err["loc"] else ""
    path = ".".join(p for p in (prefix, loc) if p) or "space"
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key; allowed: {allowed}"
    if err["type"] == "missing":
        return f"{path}: required key missing"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{path}: {msg} (got {err.get('input')!r})" if err["type"] != "value_error" else f"{path}: {msg}"


def _grid_blocks(grid: Any, required: bool = True, base_attention: Any = "none") -> list[dict[str, list[Any]]]:
    """The grid as a list of blocks (a single mapping is one block), checked for shape."""
    if grid is None:
        if required:
            raise ConfigError("grid: missing; give axes to cross (e.g. attention: [none, sca]) or a sample section")
        return []
    blocks = grid if isinstance(grid, list) else [grid]
    if not blocks:
        raise ConfigError("grid: empty; give at least one axis with values")
    for i, block in enumerate(blocks):
        prefix = _block_path(grid, i)
        if not isinstance(block, dict) or not block:
            raise ConfigError(f"{prefix}: expected a non-empty mapping of key -> list of values")
        attentions = block["attention"] if isinstance(block.get("attention"), list) else [base_attention]
        options = _option_keys(attentions)
        for key, values in block.items():
            if key not in SPACE_KEYS and key not in options:
                raise ConfigError(f"{prefix}.{key}: unknown key{_section_hint(key)}; allowed: {list(SPACE_KEYS)}")
            if not isinstance(values, list):
                raise ConfigError(f"{prefix}.{key}: expected a list of values, got {values!r}")
            if not values:
                raise ConfigError(f"{prefix}.{key}: empty list; give at least one value")
    return blocks


def _section_hint(key: str) -> str:
    return f" (set it in {SECTION_KEYS[key]})" if key in SECTION_KEYS else ""


def _block_path(grid: Any, i: int) -> str:
    return f"grid[{i}]" if isinstance(grid, list) else "grid"


def _expand(spec: SpaceFile) -> list[dict[str, Any]]:
    """Validate ``spec`` and return its unique full config dicts (grid) or corners (sample)."""
    base_attention = spec.base.get("attention", "none")
    grid_attentions = [
        a
        for b in (spec.grid if isinstance(spec.grid, list) else [spec.grid])
        if isinstance(b, dict) and isinstance(b.get("attention"), list)
        for a in b["attention"]
    ]
    base_options = _option_keys([base_attention, *grid_attentions])
    for key in spec.base:
        if key not in SPACE_KEYS and key not in base_options:
            raise ConfigError(f"base.{key}: unknown key{_section_hint(key)}; allowed: {list(SPACE_KEYS)}")
    base = {**spec.base, **spec.section_values()}
    base_paths = {k: f"base.{k}" for k in spec.base}
    if spec.sample is not None:
        if spec.grid is not None:
            raise ConfigError("grid and sample are alternatives: cross axes with grid, or sample ranges with sample")
        if len(spec.train.paths()) > 1:
            raise ConfigError("train.path: a parity study (a list of paths) needs a grid; give one path with sample")
        blocks, paths = _sample_blocks(spec.sample)
    else:
        blocks = _grid_blocks(spec.grid, base_attention=base_attention)
        paths = [_block_path(spec.grid, i) for i in range(len(blocks))]
        if len(spec.train.paths()) > 1:
            blocks = [{**block, "train_path": spec.train.paths()} for block in blocks]
        if spec.budget.seeds is not None:
            blocks = _seed_budget_blocks(spec, spec.budget.seeds, blocks, paths)
    points: dict[str, dict[str, Any]] = {}
    for block, prefix in zip(blocks, paths):
        _check_values(base, base_paths, block, prefix)
        keys = list(block)
        for combo in itertools.product(*(range(len(block[k])) for k in keys)):
            raw = {**base, **{k: block[k][j] for k, j in zip(keys, combo)}}
            where = {**base_paths, **{k: f"{prefix}.{k}[{j}]" for k, j in zip(keys, combo)}}
            cfg = _validated(raw, where)
            points.setdefault(cfg.model_dump_json(), cfg.model_dump())
        _check_options_used(base, base_paths, block, prefix)
    found = list(points.values())
    if spec.budget.seeds is not None:
        _check_comparisons(found, spec.budget.seeds)
    return found


def _seed_budget_blocks(
    spec: SpaceFile, budget: SeedBudget, blocks: list[dict[str, list[Any]]], paths: list[str]
) -> list[dict[str, list[Any]]]:
    """Every grid block crossed with the seeds ``0 .. max - 1`` (the budget's most)."""
    if spec.sample is not None:
        raise ConfigError("budget.seeds: a seed budget needs a grid (sampled spaces have no variants to compare)")
    if "seed" in spec.base:
        raise ConfigError("base.seed: the seeds come from budget.seeds; remove seed from base")
    for block, prefix in zip(blocks, paths):
        if "seed" in block:
            raise ConfigError(f"{prefix}.seed: the seeds come from budget.seeds; remove seed from the grid")
    seeds = list(range(budget.max_))
    return [{**block, "seed": seeds} for block in blocks]


def _check_comparisons(points: list[dict[str, Any]], seeds: SeedBudget) -> None:
    """Every variant needs its baseline in the grid, and a named reference must exist."""
    from .seed_budget import MissingBaseline, comparisons

    try:
        comparisons(points, seeds.reference)
    except MissingBaseline as exc:
        raise ConfigError(f"budget.seeds: {exc}") from None


def _sample_blocks(sample: Sample) -> tuple[list[dict[str, list[Any]]], list[str]]:
    """Sampled ranges as one grid block of their corners (for validation only)."""
    block: dict[str, list[Any]] = {}
    for key, dist in sample.params.items():
        if key not in SPACE_KEYS:
            raise ConfigError(f"sample.params.{key}: unknown key{_section_hint(key)}; allowed: {list(SPACE_KEYS)}")
        block[key] = dist.corners()
        if key in _per_stage_keys() and any(isinstance(v, list) for v in block[key]):
            raise ConfigError(
                f"sample.params.{key}: per-stage lists cannot be sampled (Optuna's choices are "
                f"single values); cross them in a grid, e.g. {key}: [[3, 5, 5, 7], 3]"
            )
    return [block], ["sample.params"]


def _check_values(base: dict, base_paths: dict, block: dict[str, list[Any]], prefix: str) -> None:
    """Check each axis value on its own, so errors name the exact value's path."""
    from ..attention import ATTENTIONS, attention_options

    attentions = block.get("attention", [base.get("attention", "none")])
    for j, name in enumerate(attentions):
        if not isinstance(name, str) or name not in _attention_names():
            where = (
                f"{prefix}.attention[{j}]" if "attention" in block else base_paths.get("attention", "base.attention")
            )
            try:
                attention_options(name)  # an import path or an entry point: loaded and checked here
            except (ConfigError, TypeError) as exc:
                message = (
                    str(exc)
                    if isinstance(name, str) and ":" in name
                    else f"unknown attention {name!r}; allowed: {sorted(ATTENTIONS)}, or an import path 'package.module:Class'"
                )
                raise ConfigError(f"{where}: {message}") from None
    for key in _all_option_keys(base, block):
        values = block.get(key, [base[key]] if base.get(key) is not None else [])
        takers = [a for a in attentions if key in attention_options(a)]
        for j, value in enumerate(values):
            where = f"{prefix}.{key}[{j}]" if key in block else base_paths[key]
            for name in takers:
                problem = _option_error(name, key, value)
                if problem:
                    raise ConfigError(f"{where}: {problem}")


def _check_options_used(base: dict, base_paths: dict, block: dict[str, list[Any]], prefix: str) -> None:
    """An option that no attention in its block takes is a mistake, not something to drop."""
    from ..attention import ATTENTIONS, attention_options

    attentions = block.get("attention", [base.get("attention", "none")])
    for key in _all_option_keys(base, block):
        given = key in block or base.get(key) is not None
        if given and not any(key in attention_options(a) for a in attentions):
            where = f"{prefix}.{key}" if key in block else base_paths[key]
            takers = sorted(a for a in ATTENTIONS if key in attention_options(a))
            raise ConfigError(
                f"{where}: no attention here takes {key!r} (got {sorted(set(attentions))}); modules that take it: {takers}"
            )


def _all_option_keys(base: dict, block: dict) -> list[str]:
    """Our option keys and every other non-field key the base or the block sets."""
    return [*ATTENTION_OPTION_KEYS, *sorted({k for k in (*base, *block) if k not in TrialConfig.model_fields})]


@lru_cache(maxsize=1)
def _attention_names() -> frozenset[str]:
    from ..attention import ATTENTIONS, attention_options

    attention_options("none")  # loads the registry
    return frozenset(ATTENTIONS)


@lru_cache(maxsize=None)
def _option_error_cached(name: str, key: str, value: Any) -> Optional[str]:
    from ..attention import ATTENTIONS, build_attention
    from ..attention.registry import check_shape, coerce_options

    try:
        if ATTENTIONS[name].required - {key}:  # it cannot be built from this option alone: the type
            coerce_options(name, {key: value})  # here, the whole point in _check_point
            return None
        build_attention(name, 16, **{key: value})
        if ATTENTIONS[name].external:  # a user's module: one forward pass with this option
            check_shape(name, ATTENTIONS[name].factory, coerce_options(name, {key: value}))
    except (ValueError, TypeError) as exc:
        return str(exc) if name in str(exc) else f"{name}: {exc}"
    except Exception as exc:  # a user's module may raise anything
        return f"{name} with {key}={value!r}: {type(exc).__name__}: {exc}"
    return None


def _option_error(name: str, key: str, value: Any) -> Optional[str]:
    if key in _per_stage_keys() and isinstance(value, list):  # one value per stage, each checked
        if any(isinstance(v, (list, dict)) for v in value):
            return f"{key}: a per-stage list holds one value per stage, got {value!r}"
        return next((m for m in (_option_error(name, key, v) for v in value) if m), None)
    try:
        return _option_error_cached(name, key, value)
    except TypeError:  # unhashable value (e.g. a list where a scalar belongs)
        return f"{key} must be a single value, got {value!r}"


def _per_stage_keys() -> tuple[str, ...]:
    from ..models import PER_STAGE_OPTIONS

    return PER_STAGE_OPTIONS


def _validated(raw: dict[str, Any], where: dict[str, str]) -> TrialConfig:
    """The trial config of one expanded point; errors name the paths of the keys involved."""
    try:
        cfg = trial_config(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        if not key:  # a check of the whole config: the attention and its options
            path = where.get("attention", "base.attention" if "attention" in raw else "base")
            raise ConfigError(f"{path}: {err['msg'].removeprefix('Value error, ')}") from None
        path = where.get(key, f"base.{key}")
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"{path}: {message}" + ("" if ", got " in message else f" (got {err.get('input')!r})")
        ) from None
    _check_model(cfg, where)
    _check_point(cfg, where)
    return cfg


def _check_point(cfg: TrialConfig, where: dict[str, str]) -> None:
    """A user's module with options that have no default is built and run once with the
    point's options (the per-option checks could not build it from one option alone)."""
    from ..attention import ATTENTIONS

    spec = ATTENTIONS[cfg.attention]
    if not (spec.external and spec.required):
        return
    options = cfg.attention_kwargs()
    try:
        message = _point_error(cfg.attention, tuple(sorted(options.items(), key=lambda kv: kv[0])))
    except TypeError:  # unhashable option values: checked each time
        message = _point_error.__wrapped__(cfg.attention, tuple(options.items()))
    if message:
        paths = [where[k] for k in ("attention", *options) if k in where]
        raise ConfigError(f"{' with '.join(paths) or 'base'}: {message}")


@lru_cache(maxsize=None)
def _point_error(name: str, options: tuple[tuple[str, Any], ...]) -> Optional[str]:
    from ..attention import ATTENTIONS
    from ..attention.registry import check_shape

    try:
        check_shape(name, ATTENTIONS[name].factory, dict(options))
    except ConfigError as exc:
        return str(exc)
    return None


def _check_model(cfg: TrialConfig, where: dict[str, str]) -> None:
    stages = tuple(cfg.stages) if cfg.stages is not None else None
    message = _model_error(cfg.backbone, cfg.position, stages, cfg.width_mult)
    if message:
        paths = [where[k] for k in MODEL_KEYS if k in where] or ["base"]
        raise ConfigError(f"{' with '.join(paths)}: {message}")
    for key in _per_stage_keys():
        value = cfg.attention_kwargs().get(key)
        message = (
            _per_stage_error(cfg.backbone, cfg.position, stages, key, tuple(value)) if isinstance(value, list) else None
        )
        if message:
            paths = [where[k] for k in (key, *MODEL_KEYS) if k in where]
            raise ConfigError(f"{' with '.join(paths)}: {message}")


@lru_cache(maxsize=None)
def _per_stage_error(
    backbone: str, position: str, stages: Optional[tuple[int, ...]], key: str, values: tuple[Any, ...]
) -> Optional[str]:
    from ..models import stage_options

    try:
        stage_options(backbone, position, list(stages) if stages is not None else None, {key: list(values)})
    except ValueError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=None)
def _model_error(backbone: str, position: str, stages: Optional[tuple[int, ...]], width_mult: float) -> Optional[str]:
    from ..models import validate_model_args

    try:
        validate_model_args(backbone, position, list(stages) if stages is not None else None, width_mult)
    except ValueError as exc:
        return str(exc)
    return None
