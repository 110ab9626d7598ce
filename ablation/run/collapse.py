"""The rule that marks a trial collapsed (or diverged): it learned (almost) nothing.

A completed trial is *collapsed* when, at its last epoch,

- its validation top-1 is within :data:`CHANCE_MARGIN` points of chance (100 / classes), or
- its training loss is still at least :data:`LOSS_FRACTION` of ln(classes), the loss of a
  uniform guess: training did not bring the loss down.

Collapsed trials stay in every mean (nothing is dropped silently); reports flag their variants,
show per-seed values and medians next to means, and list the collapsed trials.
"""

from __future__ import annotations

import math
from typing import Any

CHANCE_MARGIN = 5.0
LOSS_FRACTION = 0.9
RULE = (
    f"a trial is flagged collapsed when its final validation top-1 is within {CHANCE_MARGIN:g} points of "
    f"chance (100/classes) or its final training loss is at least {LOSS_FRACTION:g} x ln(classes), the loss "
    f"of a uniform guess"
)


def is_collapsed(top1: Any, train_loss: Any, num_classes: Any) -> bool:
    """Whether a trial's final ``top1`` (percent) and ``train_loss`` meet :data:`RULE`;
    False where a figure is missing."""
    try:
        top1, train_loss, k = float(top1), float(train_loss), int(num_classes)
    except (TypeError, ValueError):
        return False
    if k < 2:
        return False
    near_chance = math.isfinite(top1) and top1 <= 100.0 / k + CHANCE_MARGIN
    loss_stuck = not math.isfinite(train_loss) or train_loss >= LOSS_FRACTION * math.log(k)
    return near_chance or loss_stuck
