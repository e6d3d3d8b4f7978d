"""The readout's bilinear sampling and per-unit dot product as small matrix products over grid cells (CPU plan).

A unit's log-rate per stream is sum_c w[c, u] * sum_k a_k(u) f[c, p_k(u)]: its 4 bilinear corners p_k with weights
a_k (grid_sample, border padding, align_corners=False; spec §3.7). Sampling first (grid_sample) writes and reads
512 x U samples per frame (20 MB at 9,941 units) through ~20 M scattered loads. Here the order is swapped,
sum_k a_k(u) (sum_c f[c, p_k(u)] w[c, u]): units are grouped by the grid cell their corners span (all 4 corners
follow from the top-left one), and for each group of up to ``GROUP_UNITS`` units one matrix product (4 corners x N
frames, C) @ (C, units) gives every dot product they need. Equal to the sampling form up to float32 rounding;
each unit's result does not depend on which other units are computed (each group is padded to the same width).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

GROUP_UNITS = 32  # units per matrix product (the groups of a cell are padded to this width)


def bilinear_corners(positions: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """The 4 grid corners and bilinear weights of grid_sample(mode='bilinear', padding_mode='border',
    align_corners=False) at positions (U, 2) = (x, y) in [-1, 1].

    Returns: (corners (U, 4) int64 flat indices y*width+x in the order (y0,x0), (y0,x1), (y1,x0), (y1,x1); weights
    (U, 4) in the positions' dtype). A corner past the last row or column (weight exactly 0) is clamped onto it.
    """
    x = ((positions[:, 0] + 1) * width - 1) / 2  # unnormalise, then clip to the border (grid_sample's order)
    y = ((positions[:, 1] + 1) * height - 1) / 2
    x, y = x.clamp(0, width - 1), y.clamp(0, height - 1)
    x0, y0 = x.floor(), y.floor()
    tx, ty = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    corners = torch.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1], dim=1)
    weights = torch.stack([(1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty], dim=1)
    return corners, weights


@dataclass
class CellPlan:
    """Units grouped by grid cell, padded to GROUP_UNITS per group (G groups).

    Attributes:
        group_corners: (G*4,) flat corner indices of every group's cell, 4 per group.
        weights: (S, G, C, GROUP_UNITS) per-stream feature weights of each group's units (zeros in the padding).
        unit_group, unit_column: (U,) each unit's group and its column in it.
        corner_weights: (U, 4) bilinear weights of each unit's corners.
    """

    group_corners: Tensor
    weights: Tensor
    unit_group: Tensor
    unit_column: Tensor
    corner_weights: Tensor


def cell_plan(positions: Tensor, weights: Tensor, height: int, width: int) -> CellPlan:
    """Group units (positions (U, 2), weights (S, C, U)) by the grid cell of their top-left corner."""
    corners, corner_weights = bilinear_corners(positions, height, width)
    units = positions.shape[0]
    order = torch.argsort(corners[:, 0], stable=True)
    _, counts = torch.unique_consecutive(corners[order, 0], return_counts=True)  # units per occupied cell
    groups_per_cell = (counts + GROUP_UNITS - 1) // GROUP_UNITS
    first_group = torch.cumsum(groups_per_cell, 0) - groups_per_cell
    first_unit = torch.cumsum(counts, 0) - counts
    rank = torch.arange(units, device=positions.device) - torch.repeat_interleave(first_unit, counts)
    slot_sorted = torch.repeat_interleave(first_group, counts) * GROUP_UNITS + rank  # group columns are contiguous
    slots = torch.empty_like(slot_sorted)
    slots[order] = slot_sorted
    n_groups = int(groups_per_cell.sum())
    column_unit = torch.full((n_groups * GROUP_UNITS,), units, dtype=torch.long, device=positions.device)
    column_unit[slots] = torch.arange(units, device=positions.device)
    padded = torch.cat([weights, weights.new_zeros(*weights.shape[:2], 1)], dim=2)  # column U: zeros
    grouped = padded[:, :, column_unit].unflatten(2, (n_groups, GROUP_UNITS)).permute(0, 2, 1, 3).contiguous()
    group_cell_units = order[first_unit]  # one unit of each cell, to read the cell's 4 corners
    group_corners = torch.repeat_interleave(corners[group_cell_units], groups_per_cell, dim=0).reshape(-1)
    return CellPlan(group_corners, grouped, slots // GROUP_UNITS, slots % GROUP_UNITS, corner_weights)


def cell_log_rates(features: Tensor, plan: CellPlan) -> Tensor:
    """Per-stream readout dot products of features (N, S*C, H, W) -> (N, S, U), by cell groups."""
    streams, groups, channels, width = plan.weights.shape
    frames = features.shape[0]
    positions_major = features.reshape(frames, streams, channels, -1).permute(1, 3, 0, 2).contiguous()  # (S, HW, N, C)
    lhs = positions_major[:, plan.group_corners]  # (S, G*4, N, C): rows (corner, frame) of each group
    products = torch.bmm(lhs.view(streams * groups, 4 * frames, channels),
                         plan.weights.view(streams * groups, channels, width))  # (S*G, 4*N, GROUP_UNITS)
    products = products.view(streams, groups, 4, frames, width)
    per_corner = products[:, plan.unit_group, :, :, plan.unit_column]  # (U, S, 4, N)
    rates = (per_corner * plan.corner_weights[:, None, :, None]).sum(dim=2)  # (U, S, N)
    return rates.permute(2, 1, 0)
