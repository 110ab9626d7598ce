"""The trial config: one variant, trained once. Shared by `ablate train`, sweeps and reports."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .execution import ExecutionPath
from .train_path import TrainPath

#: Attention options that live as flat keys on a trial config (each is an ablation axis).
ATTENTION_OPTION_KEYS: tuple[str, ...] = ("kernel_size", "branches", "pool", "fuse", "norm", "gate", "reduction")

#: Keys that describe the variant, not its repetition: all but these identify a variant.
REPETITION_KEYS: tuple[str, ...] = ("seed",)


class TrialConfig(BaseModel):
    """Everything needed to build, train and measure one variant. Keys beyond the fields are
    allowed only as options of the attention module (a user's module declares its own)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    # model
    backbone: str = "resnet20"
    attention: str = "none"
    position: str = "standard"
    stages: Optional[list[int]] = None
    width_mult: float = Field(1.0, gt=0)
    small_input: Optional[bool] = None  # None: decided by the data set's image size
    # attention options (None: the module's default, or not applicable)
    kernel_size: Optional[Union[int, list[int]]] = None  # a list: one per stage with attention (models.stage_options)
    branches: Optional[str] = None
    pool: Optional[str] = None
    fuse: Optional[str] = None
    norm: Optional[str] = None
    gate: Optional[str] = None
    reduction: Optional[int] = None
    # data
    dataset: str = "digits"
    data_dir: Optional[str] = None
    subset: Optional[Union[int, float]] = None  # training images: a seeded fraction in (0, 1) or a count; None: all
    eval_subset: Optional[Union[int, float]] = None  # the same, for validation and test each (fixed seed); None: all
    val_split: float = Field(0.1, ge=0, lt=1)  # share of training images to select on; 0: select on test
    download: bool = False
    workers: int = Field(0, ge=0)
    # optimisation
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    # execution
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    threads: Optional[int] = Field(None, ge=1)
    train_path: TrainPath = "eager"  # see ablation/design/train_path.py
    # measurement
    latency_runs: int = Field(20, ge=1)
    latency_batch: int = Field(1, ge=1)
    latency_path: ExecutionPath = "eager"  # see ablation/design/execution.py

    @field_validator("dataset")
    @classmethod
    def _check_dataset(cls, value: str) -> str:
        from ..data import check_dataset

        return check_dataset(value)

    @field_validator("subset", "eval_subset", mode="before")
    @classmethod
    def _check_subset(cls, value: Any, info: ValidationInfo) -> Any:
        from ..data import check_subset
        from ..errors import ConfigError

        try:
            return check_subset(value, info.field_name or "subset")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _check_model_options(self) -> "TrialConfig":
        from ..attention import attention_options
        from ..attention.registry import coerce_options, missing_message, missing_options

        allowed = attention_options(self.attention)
        unknown = sorted(k for k in (self.model_extra or {}) if k not in allowed)
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown}: neither trial-config keys nor options of attention "
                f"{self.attention!r} (its options: {sorted(allowed) or 'none'})"
            )
        given = [k for k in ATTENTION_OPTION_KEYS if getattr(self, k) is not None]
        bad = [k for k in given if k not in allowed]
        if bad:
            raise ValueError(
                f"attention {self.attention!r} does not take {bad}; it takes {sorted(allowed) or 'no options'}"
            )
        missing = missing_options(self.attention, self.attention_kwargs())
        if missing:
            raise ValueError(missing_message(self.attention, missing))
        if self.model_extra:  # a user's module's own options, as the types its signature declares
            self.model_extra.update(coerce_options(self.attention, self.model_extra))
        return self

    def attention_kwargs(self) -> dict[str, Any]:
        """The attention options that are set (flat keys and a user module's own), as keyword
        arguments for ``build_attention``."""
        own = {k: v for k, v in (self.model_extra or {}).items() if v is not None}
        return {k: getattr(self, k) for k in ATTENTION_OPTION_KEYS if getattr(self, k) is not None} | own

    def variant_key(self) -> str:
        """Stable short id of the variant (all keys but the seed)."""
        data = self.model_dump(exclude=set(REPETITION_KEYS))
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` command-line pairs; values are read as YAML scalars/lists."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"expected key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out
