"""SGD with adaptive gradient clipping (as cajal/fnn ``fnn/train/optimizers.py`` ``SgdClip``, without momentum or
weight decay), applied row by row: row b of every parameter belongs to video b (one unit's MEI), so each MEI's
steps are clipped by its own norms and a batch optimises its units exactly as if each ran alone.

For a parameter row ``p`` with gradient ``g``: ``d = g x scale``; ``d`` is shrunk to at most
``max(clip ||p||, eps sqrt(n))`` (``n`` elements per row); then ``p <- p - lr d``. A step thus changes a row by
at most ``lr x clip`` of its norm, whatever the scale of the gradient.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def row_norms(x: Tensor) -> Tensor:
    """L2 norm of each row (dim 0) of ``x``, shaped to broadcast against it: (B, 1, ..., 1)."""
    return x.flatten(1).norm(dim=1).view(-1, *([1] * (x.ndim - 1))) if x.ndim > 1 else x.abs()


def clip_step(param: Tensor, grad: Tensor, lr: float, clip: float, eps: float, scale: float = 1.0) -> Tensor:
    """One clipped descent step of ``param`` (B, ...) along ``grad`` (same shape); returns the new tensor.

    Args:
        lr: learning rate of this step (the schedule's value).
        clip: adaptive clipping factor: the largest step is ``clip`` x the row's norm.
        eps: per-element floor of the largest step (a row of zeros can still move).
        scale: gradient scale of this parameter (1 / frames for a static MEI's image: the frame average).
    """
    with torch.no_grad():
        step = grad * scale
        per_row = math.prod(param.shape[1:])
        most = (clip * row_norms(param)).clamp(min=eps * math.sqrt(per_row))
        shrink = most / torch.maximum(row_norms(step), most)
        return param - lr * step * shrink
