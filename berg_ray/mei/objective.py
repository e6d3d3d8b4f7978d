"""The excitation objective of an MEI (as cajal/fnn ``fnn/train/objectives.py`` ``Excitation`` in its
zero-temperature limit: minimising ``rate^-T`` for small T is maximising ``log rate``)."""

from __future__ import annotations

import torch
from torch import Tensor

MIN_RATE = 1e-12  # floor before the log (the model's rates are positive; this only guards a float underflow)


def own_unit_rates(responses: Tensor) -> Tensor:
    """(B, F, B) responses of B videos read out at the batch's B units -> (B, F): video b's rate of unit b."""
    return torch.diagonal(responses, dim1=0, dim2=2).T  # (B, F)


def mean_log_rate(rates: Tensor, burn_in: int) -> Tensor:
    """Per-video mean over frames ``burn_in``.. of log(rate): (B, F) -> (B,)."""
    return rates[:, burn_in:].clamp_min(MIN_RATE).log().mean(dim=1)
