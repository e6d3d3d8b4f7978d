"""Cosine learning-rate schedule (as cajal/fnn ``fnn/train/schedulers.py`` ``CosineLr``, one cycle, no warm-up)."""

from __future__ import annotations

import math


def cosine_lr(step: int, steps: int, lr: float) -> float:
    """Learning rate of ``step`` (0-based) of ``steps``: ``lr (cos(pi step / steps) + 1) / 2``, from ``lr`` at
    step 0 down towards 0 (the last step still moves a little)."""
    return lr * (math.cos(math.pi * step / steps) + 1.0) / 2.0
