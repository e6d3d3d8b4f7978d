"""Helpers that turn the release's per-stream state-dict entries into the fused inference weights of the core."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from berg_ray.config import N_STREAMS
from berg_ray.model.functional import weight_norm


def stacked_weights(params: Mapping[str, Tensor], prefix: str, gains: bool = True) -> Tensor:
    """Weight-normalised weights of all streams, concatenated along the output dim (stream-major)."""
    return torch.cat([weight_norm(params[f"{prefix}.weights.{s}"],
                                  params[f"{prefix}.gains.{s}"] if gains else None) for s in range(N_STREAMS)])


def stacked_biases(params: Mapping[str, Tensor], prefix: str) -> Tensor:
    """Biases of all streams, (S * O,) stream-major."""
    return torch.cat([params[f"{prefix}.biases.{s}"].reshape(-1) for s in range(N_STREAMS)])


def row_weights(weight: Tensor, n_groups: int) -> Tensor:
    """Grouped 1x1 weight (G*O, I, ...) -> (G, I, O), to apply to row matrices as x_g @ w[g]."""
    return weight.reshape(n_groups, -1, weight.shape[1]).transpose(1, 2).contiguous()
