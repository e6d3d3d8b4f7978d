"""The readout as one fused Triton kernel (GPU; on CPU only under Triton's interpreter, in the tests).

Same math as ``Readout`` (spec §3.7-3.8): for each unit, the 4 bilinear corners of its position (grid_sample,
border padding, align_corners=False: ``readout_cells.bilinear_corners``), per stream the dot product of its
weights with the interpolated 128 channels, plus the bias, the mean over the 4 streams, exp. Units are grouped
by the grid cell their corners span (``readout_cells.cell_plan``), so one program reads its cell's 4 corner
vectors once for ``BLOCK_N`` frames and computes every unit of the group as matrix products
(BLOCK_N frames, channels) @ (channels, GROUP_UNITS) per corner, then weights the 4 products per unit.

Features are read in any dtype (float32, or bf16/fp16 under autocast) and any strides (NCHW or channels-last) and
upcast on load; everything is accumulated in float32 with IEEE products (never TF32), so float32 inputs match
the torch path to float32 rounding. Only ``berg_ray.model.readout`` imports this module, and only when
``kernels="triton"``: importing berg_ray never needs Triton.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from berg_ray.model.readout_cells import GROUP_UNITS, cell_plan



@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and launch options of ``readout_kernel``.

    The default compiles for sm_90 to 128 registers per thread and no spills (tests/model/test_kernels_readout.py);
    32-channel tiles with 4 warps, or 3 pipeline stages, spill on sm_90 (255 registers).
    """

    block_n: int = 32  # frames per program: the group's weights are read once per block_n frames
    block_c: int = 16  # channels per matrix product
    num_warps: int = 8
    num_stages: int = 1


DEFAULT_LAUNCH = LaunchConfig()


@triton.jit
def readout_kernel(features, stride_n, stride_c, stride_h, stride_w, n_frames, width,
                   corners, corner_weights, weights, biases, units, out, stride_out, n_groups,
                   STREAMS: tl.constexpr, CHANNELS: tl.constexpr, GROUP: tl.constexpr,
                   BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """One program: BLOCK_N frames x the GROUP units of one cell group -> out[frames, units] (float32).

    features: (N, STREAMS*CHANNELS, H, W) any float dtype and strides; corners: (G, 4) int32 flat y*width+x;
    corner_weights: (G, 4, GROUP) float32; weights: (STREAMS, G, CHANNELS, GROUP) float32; biases:
    (STREAMS, G, GROUP) float32; units: (G, GROUP) int32 output column of each slot, -1 for padding.
    """
    frame_block = tl.program_id(0)  # fastest: consecutive programs share one group's weights (L2)
    group = tl.program_id(1)
    frames = frame_block * BLOCK_N + tl.arange(0, BLOCK_N)
    frame_mask = frames < n_frames
    frame_offsets = frames.to(tl.int64) * stride_n
    columns = tl.arange(0, GROUP)
    channels = tl.arange(0, BLOCK_C)
    log_rates = tl.zeros((BLOCK_N, GROUP), dtype=tl.float32)
    for stream in tl.static_range(STREAMS):
        dots = tl.zeros((BLOCK_N, GROUP), dtype=tl.float32)
        for corner in tl.static_range(4):
            flat = tl.load(corners + group * 4 + corner)
            position = (flat // width) * stride_h + (flat % width) * stride_w
            products = tl.zeros((BLOCK_N, GROUP), dtype=tl.float32)
            for start in tl.range(0, CHANNELS, BLOCK_C):
                channel = stream * CHANNELS + start + channels
                sampled = tl.load(features + frame_offsets[:, None] + channel[None, :] * stride_c + position,
                                  mask=frame_mask[:, None], other=0.0).to(tl.float32)  # (BLOCK_N, BLOCK_C)
                w = tl.load(weights + ((stream * n_groups + group) * CHANNELS + start + channels[:, None]) * GROUP
                            + columns[None, :])  # (BLOCK_C, GROUP)
                products = tl.dot(sampled, w, products, input_precision="ieee")
            bilinear = tl.load(corner_weights + (group * 4 + corner) * GROUP + columns)  # (GROUP,)
            dots += bilinear[None, :] * products
        bias = tl.load(biases + (stream * n_groups + group) * GROUP + columns)
        log_rates += dots + bias[None, :]
    rates = tl.exp(log_rates * (1.0 / STREAMS))
    unit = tl.load(units + group * GROUP + columns)
    tl.store(out + frames.to(tl.int64)[:, None] * stride_out + unit[None, :], rates,
             mask=frame_mask[:, None] & (unit[None, :] >= 0))


@dataclass
class KernelPlan:
    """A readout's units laid out for ``readout_kernel``: G groups of GROUP_UNITS slots (see its docstring)."""

    corners: Tensor
    corner_weights: Tensor
    weights: Tensor
    biases: Tensor
    units: Tensor
    n_units: int
    height: int
    width: int


def kernel_plan(positions: Tensor, weights: Tensor, biases: Tensor, height: int, width: int) -> KernelPlan:
    """Lay out units (positions (U, 2) in [-1, 1], weights (S, C, U), biases (S, U)) by cell group."""
    cells = cell_plan(positions.float(), weights.float(), height, width)
    streams, groups = cells.weights.shape[:2]
    n_units = positions.shape[0]
    slots = cells.unit_group * GROUP_UNITS + cells.unit_column  # (U,) each unit's slot
    units = torch.full((groups * GROUP_UNITS,), -1, dtype=torch.int32, device=positions.device)
    units[slots] = torch.arange(n_units, dtype=torch.int32, device=positions.device)
    corner_weights = cells.corner_weights.new_zeros(groups * GROUP_UNITS, 4)
    corner_weights[slots] = cells.corner_weights.float()
    slot_biases = biases.new_zeros(streams, groups * GROUP_UNITS, dtype=torch.float32)
    slot_biases[:, slots] = biases.float()
    return KernelPlan(
        corners=cells.group_corners.to(torch.int32).view(groups, 4).contiguous(),
        corner_weights=corner_weights.view(groups, GROUP_UNITS, 4).transpose(1, 2).contiguous(),
        weights=cells.weights.contiguous(), biases=slot_biases.view(streams, groups, GROUP_UNITS).contiguous(),
        units=units.view(groups, GROUP_UNITS), n_units=n_units, height=height, width=width)


def kernel_signature(feature_type: str = "fp32") -> dict[str, str]:
    """Argument types of ``readout_kernel`` for ``triton.compile`` (feature_type: "fp32", "bf16" or "fp16")."""
    pointers = {"features": feature_type, "corners": "i32", "corner_weights": "fp32", "weights": "fp32",
                "biases": "fp32", "units": "i32", "out": "fp32"}
    names = readout_kernel.arg_names
    return {name: "constexpr" if name.isupper() else f"*{pointers[name]}" if name in pointers else "i32"
            for name in names}


def kernel_constexprs(launch: LaunchConfig = DEFAULT_LAUNCH, streams: int = 4, channels: int = 128
                      ) -> dict[str, int]:
    """Compile-time constants of ``readout_kernel`` for a launch configuration (the released readout's sizes)."""
    return {"STREAMS": streams, "CHANNELS": channels, "GROUP": GROUP_UNITS, "BLOCK_N": launch.block_n,
            "BLOCK_C": launch.block_c}


def readout_responses(features: Tensor, plan: KernelPlan, launch: LaunchConfig = DEFAULT_LAUNCH) -> Tensor:
    """Features (N, S*C, H, W) (float32/bf16/fp16, any strides) -> responses (N, U) float32, in one launch."""
    return launch_readout(features, plan, launch)[0]


def launch_readout(features: Tensor, plan: KernelPlan, launch: LaunchConfig = DEFAULT_LAUNCH) -> tuple[Tensor, object]:
    """:func:`readout_responses` and the launched kernel (on a GPU its ``n_regs`` and ``n_spills``; None when
    nothing was launched or under the interpreter)."""
    streams, groups, channels, group_units = plan.weights.shape
    frames = features.shape[0]
    if features.shape[1:] != (streams * channels, plan.height, plan.width):
        raise ValueError(f"features of shape {tuple(features.shape)} do not match the readout plan "
                         f"(N, {streams * channels}, {plan.height}, {plan.width})")
    out = torch.empty(frames, plan.n_units, dtype=torch.float32, device=features.device)
    if frames == 0 or groups == 0:
        return out, None
    grid = (triton.cdiv(frames, launch.block_n), groups)
    compiled = readout_kernel[grid](features, *features.stride(), frames, plan.width, plan.corners,
                                    plan.corner_weights, plan.weights, plan.biases, plan.units, out, out.stride(0),
                                    groups, STREAMS=streams, CHANNELS=channels, GROUP=group_units,
                                    BLOCK_N=launch.block_n,
                                    BLOCK_C=launch.block_c, num_warps=launch.num_warps,
                                    num_stages=launch.num_stages)
    return out, compiled
