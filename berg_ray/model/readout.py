"""Per-scan readout (spec §3.7-3.8): sample each unit's features at its learned position, weight them per stream,
average the 4 streams' log-rates and take exp.

On CPU the sampling and weighting run as small matrix products over grid cells (``readout_cells.py``), on
accelerators as grid_sample + per-unit dot (``device_plan.readout_by_cells``), or with ``kernels="triton"`` as one
fused Triton kernel over the same cell groups (``kernels/readout_triton.py``, imported only then); all agree to
float32 rounding."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from berg_ray.config import DEFAULT_KERNELS, FEATURE_HEIGHT, FEATURE_WIDTH, N_STREAMS
from berg_ray.model.device_plan import readout_by_cells, triton_readout
from berg_ray.model.functional import per_unit_dot, sample_at_positions
from berg_ray.model.readout_cells import CellPlan, cell_log_rates, cell_plan


# Bytes of bilinear samples (N, 512, U) materialised at once: a call over more frames runs in slices (each row is
# computed alone, so slicing changes no bit); 9,941 units x 32 videos x 32 frames would otherwise need 42 GB.
READOUT_SAMPLE_BYTES = 1 << 30


class Readout(nn.Module):
    """Core output (N, 512, 16, 24) -> responses (N, U) of one scan, for all units or a subset."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.register_buffer("positions", torch.tanh(params["readout.position.mu"]))  # (U, 2): (x, y) in (-1, 1)
        weights = [params[f"readout.feature.weights.{s}"][:, 0, :].T for s in range(N_STREAMS)]  # (128, U) each
        # (S, 128, U): the layout grid_sample's samples come in, so per_unit_dot streams both contiguously
        self.register_buffer("weights", torch.stack(weights).contiguous())
        biases = [params[f"readout.biases.{s}"][:, 0] for s in range(N_STREAMS)]
        self.register_buffer("biases", torch.stack(biases))  # (S, U)
        # "torch" or "triton" (set through EncodingModel.set_kernels, which checks the device)
        self.kernels = DEFAULT_KERNELS
        # per layout ("cells": CPU matrix products, "kernel": the Triton kernel's): the plan of all units, built on
        # first use, and of the last unit selection (the next chunks of a video reuse it)
        self._plans: dict[str, object] = {}
        self._subset_plans: dict[str, tuple[Tensor, object]] = {}

    @property
    def n_units(self) -> int:
        return self.positions.shape[0]

    def forward(self, features: Tensor, units: Tensor | None = None) -> Tensor:
        """Args: features (N, S*128, H, W); units: optional int64 readout indices (U',).
        Returns: responses (N, U') float32, strictly positive."""
        positions, weights, biases = self.positions, self.weights, self.biases
        if units is not None:
            positions, weights, biases = positions[units], weights[:, :, units], biases[:, units]
        if triton_readout(self.kernels, features):
            from berg_ray.model.kernels.readout_triton import kernel_plan, readout_responses  # needs triton

            return readout_responses(features, self._plan("kernel", kernel_plan, units, positions, weights, biases))
        if readout_by_cells(features.device):
            plan = self._plan("cells", _cell_plan, units, positions, weights, biases)
            return _rates(cell_log_rates(features, plan), biases)
        rows = max(1, READOUT_SAMPLE_BYTES // (features[0, :, 0, 0].numel() * positions.shape[0] * 4))
        if features.shape[0] > rows:
            return torch.cat([_responses(features[i:i + rows], positions, weights, biases)
                              for i in range(0, features.shape[0], rows)])
        return _responses(features, positions, weights, biases)

    def _plan(self, layout: str, build, units: Tensor | None, positions: Tensor, weights: Tensor, biases: Tensor):
        """The ``layout`` plan (``build(positions, weights, biases, height, width)``) of all units or of a unit
        selection; built once per selection and device (the next chunk of a video reuses it)."""
        if units is None:
            plan = self._plans.get(layout)
            if plan is None or plan.weights.device != self.weights.device:
                plan = self._plans[layout] = build(positions, weights, biases, FEATURE_HEIGHT, FEATURE_WIDTH)
            return plan
        cached = self._subset_plans.get(layout)
        if not (cached is not None and cached[0].shape == units.shape and cached[0].device == units.device
                and torch.equal(cached[0], units)):
            cached = self._subset_plans[layout] = (
                units.clone(), build(positions, weights, biases, FEATURE_HEIGHT, FEATURE_WIDTH))
        return cached[1]


def _cell_plan(positions: Tensor, weights: Tensor, biases: Tensor, height: int, width: int) -> CellPlan:
    return cell_plan(positions, weights, height, width)  # (the biases are added after the cell products)


def _responses(features: Tensor, positions: Tensor, weights: Tensor, biases: Tensor) -> Tensor:
    """Features (N, S*128, H, W), positions (U, 2), weights (S, 128, U), biases (S, U) -> responses (N, U)."""
    sampled = sample_at_positions(features, positions)  # (N, S*128, U)
    sampled = sampled.unflatten(1, (N_STREAMS, -1))  # (N, S, 128, U)
    return _rates(per_unit_dot(sampled, weights), biases)


def _rates(dots: Tensor, biases: Tensor) -> Tensor:
    """Per-stream dot products (N, S, U) + biases (S, U) -> responses (N, U): mean of the log-rates, then exp."""
    return torch.exp((dots + biases).mean(dim=1))
