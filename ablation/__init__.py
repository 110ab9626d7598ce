"""ablation: attention-block ablation studies (SCA and peers) with Ray Tune, fvcore and Optuna."""

from __future__ import annotations

from .design.config import TrialConfig
from .errors import AblationError, ConfigError, DataError, NonFiniteLossError

__all__ = ["TrialConfig", "AblationError", "ConfigError", "DataError", "NonFiniteLossError"]
__version__ = "0.1.0"
