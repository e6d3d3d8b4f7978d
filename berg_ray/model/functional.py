"""Stateless tensor math of the released network (wang2025-model-spec.md, sections 2-3).

Every function maps tensors to tensors; modules in this package hold the (precomputed) weights and call these.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from berg_ray.model.device_plan import differentiable, expm1_tanh

GELU_GAMMA = 1.7015043497085571  # variance-preserving gain of GELU (an exact float32 value)
WEIGHT_NORM_EPS = 1e-5
PLANE_CLIP = 1e-5  # lower clip of Z.r in the ray-plane intersection
RETINA_EPS = 1e-5  # added before the learned retina power

# k/255 correctly rounded to float32 (spec §3.1): a float64 table cast once, never a reciprocal multiply.
PIXEL_TABLE = torch.from_numpy((np.arange(256, dtype=np.float64) / 255.0).astype(np.float32))


def weight_norm(weight: Tensor, gain: Tensor | None = None, eps: float = WEIGHT_NORM_EPS) -> Tensor:
    """Effective weight of a weight-normalised layer (spec §2.1).

    Args:
        weight: raw weight (O, ...); normalised over every non-output dim.
        gain: optional gains of any shape with O elements (row-major flattening).
    Returns:
        (w - mean) * (population_var * fan_in + eps) ** -0.5 * gain, same shape as ``weight``.
    """
    dims = tuple(range(1, weight.dim()))
    fan_in = math.prod(weight.shape[1:])
    mean = weight.mean(dim=dims, keepdim=True)
    var = weight.var(dim=dims, unbiased=False, keepdim=True)
    scale = (var * fan_in + eps).pow(-0.5)
    if gain is not None:
        scale = scale * gain.reshape(scale.shape)
    return (weight - mean) * scale


def gelu_gamma(x: Tensor) -> Tensor:
    """gamma * GELU(x) with the exact erf GELU."""
    return F.gelu(x) * GELU_GAMMA


def rotation_matrix(angles: Tensor) -> Tensor:
    """R = (Rz(c) @ Ry(b)) @ Rx(a) for angles (a, b, c) in radians, shape (..., 3) -> (..., 3, 3)."""
    a, b, c = angles.unbind(-1)
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    shape = (*a.shape, 3, 3)
    rx = torch.stack([one, zero, zero, zero, a.cos(), -a.sin(), zero, a.sin(), a.cos()], -1).view(shape)
    ry = torch.stack([b.cos(), zero, b.sin(), zero, one, zero, -b.sin(), zero, b.cos()], -1).view(shape)
    rz = torch.stack([c.cos(), -c.sin(), zero, c.sin(), c.cos(), zero, zero, zero, one], -1).view(shape)
    return (rz @ ry) @ rx


def pixels_to_unit(frames: Tensor) -> Tensor:
    """uint8 frames (any shape) -> float32 k/255, exactly rounded; float frames (values in [0, 255], e.g. a
    stimulus being optimised) -> frames / 255 in their own dtype (the same values at integer pixels: IEEE division
    is correctly rounded)."""
    if frames.is_floating_point():
        return frames / 255.0
    table = PIXEL_TABLE.to(frames.device)
    return table[frames.long()]


def to_rows(x: Tensor) -> Tensor:
    """(B, C, T, H, W) channels-last-3d tensor -> its (B*T*H*W, C) row matrix, a view (raises if not one)."""
    return x.permute(0, 2, 3, 4, 1).view(-1, x.shape[1])


def from_rows(rows: Tensor, batch: int, frames: int, height: int, width: int) -> Tensor:
    """(B*T*H*W, C) row matrix -> (B, C, T, H, W) channels-last-3d view."""
    return rows.view(batch, frames, height, width, rows.shape[1]).permute(0, 4, 1, 2, 3)


def gelu_padded(x: Tensor, history: Tensor, lead: int = 0, trail: int = 0) -> Tensor:
    """GELU of x with the 2 previous input frames prepended along time (the causal conv input, spec §4.3).

    Args:
        x: (B, C, T, H, W).
        history: (B, C, 2, H, W), already activated; zeros before frame 0.
        lead, trail: zero frames before the history and after GELU(x) (alignment for ``temporal_pairs``).
    Returns:
        (B, C, lead+2+T+trail, H, W) channels-last-3d: [0 * lead, history, GELU(x), 0 * trail] along T (no gamma:
        it is folded into the weights).
    """
    batch, channels, frames, height, width = x.shape
    if differentiable(x) or differentiable(history):  # the defining form, recorded by autograd
        zeros = [x.new_zeros(batch, channels, n, height, width) for n in (lead, trail)]
        padded = torch.cat([zeros[0], history.to(x.dtype), F.gelu(x), zeros[1]], dim=2)
        return padded.contiguous(memory_format=torch.channels_last_3d)
    padded = torch.empty((batch, channels, lead + frames + 2 + trail, height, width), dtype=x.dtype,
                         device=x.device, memory_format=torch.channels_last_3d)
    padded[:, :, :lead] = 0
    padded[:, :, lead + frames + 2:] = 0
    padded[:, :, lead:lead + 2] = history
    # gelu.out leaves `out` unwritten when its memory layout differs from the input's (torch 2.13): match them
    torch.ops.aten.gelu.out(x.contiguous(memory_format=torch.channels_last_3d),
                            out=padded[:, :, lead + 2:lead + 2 + frames])
    return padded


def grouped_linear_(out: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """In place out += grouped 1x1 map of x, group g reading and writing its own contiguous block of columns.

    Args:
        out: (N, G*O) rows (may be strided).
        x: (N, G*I) rows.
        weight: (G, I, O), applied as x_g @ weight[g].
    Returns:
        out.
    """
    n_in, n_out = weight.shape[1:]
    weight = weight.to(out.dtype)  # under autocast the activations may be lower precision than the weights
    for g in range(weight.shape[0]):
        out[:, g * n_out:(g + 1) * n_out].addmm_(x[:, g * n_in:(g + 1) * n_in], weight[g])
    return out


def grouped_affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Grouped 1x1 map with bias on rows: group g maps columns g*I..(g+1)*I-1 to g*O..(g+1)*O-1.

    Args:
        x: (N, G*I) rows.
        weight: (G, I, O).
        bias: (G, O).
    Returns:
        (N, G*O) rows, x_g @ weight[g] + bias[g] per group.
    """
    n_groups, n_out = weight.shape[0], weight.shape[2]
    out = x.new_empty(x.shape[0], n_groups * n_out)
    out.view(-1, n_groups, n_out).copy_(bias)  # then accumulate in place: addmm(out=) on a column block copies
    return grouped_linear_(out, x, weight)


def pool_rows(x: Tensor, height: int, width: int, pool: int) -> Tensor:
    """Spatial average pooling (window = stride = ``pool``) of (B*T*H*W, C) rows -> (B*T*H'*W', C) rows."""
    images = x.view(-1, height, width, x.shape[1]).permute(0, 3, 1, 2)  # (B*T, C, H, W) channels-last
    pooled = F.avg_pool2d(images, pool)
    return pooled.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def interleave_rows(parts: list[Tensor], n_slots: int) -> Tensor:
    """Group-interleaved concatenation (spec §0) of equally wide (N, C) row matrices: per slot k, slot k of every
    part in order. Returns (N, len(parts) * C)."""
    rows, channels = parts[0].shape
    split = [p.view(rows, n_slots, channels // n_slots) for p in parts]
    return torch.stack(split, dim=2).view(rows, -1)  # (N, K, parts, C/K) -> (N, parts*C)


def normalized_attention(q: Tensor, k: Tensor, v: Tensor, scales: Tensor) -> Tensor:
    """Cosine-similarity attention of the recurrent core (spec §3.6 step 4), position-major.

    Args:
        q, k, v: (B, G, P, D) per attention group G, positions P, channels D (last dim contiguous). q and k are
            normalised in place.
        scales: (G, 1, D) learned per-channel query scale (no 1/sqrt(D), no epsilon in the norms).
    Returns:
        a: (B, G, P, D), a[..., n, :] = sum_n' softmax_n'(q_n . k_n') v[..., n', :].
    """
    if differentiable(q) or differentiable(k):  # out of place: autograd needs the unnormalised q and k
        q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True) * scales
        k = k / torch.linalg.vector_norm(k, dim=-1, keepdim=True)
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)
    for x in (q, k):
        x.div_(torch.linalg.vector_norm(x, dim=-1, keepdim=True))
    return F.scaled_dot_product_attention(q.mul_(scales), k, v, scale=1.0)


def tanh_into(x: Tensor, out: Tensor) -> Tensor:
    """out = tanh(x) (out may be x itself); on CPU from expm1, elsewhere torch.tanh (``device_plan.expm1_tanh``).

    tanh|x| = -e / (2 + e) with e = expm1(-2|x|) in (-1, 0], then the sign of x: no cancellation anywhere, so it stays
    within a few float32 ulp of the exact value (tests/model/test_cpu_rewritings.py), like torch.tanh.
    """
    if not expm1_tanh(x.device):
        return torch.tanh(x, out=out)
    e = torch.abs(x).mul_(-2).expm1_()
    magnitude = e.div_(e + 2).neg_()
    return torch.copysign(magnitude, x, out=out)


def lstm_update(gates: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
    """LSTM state update from pre-activation gates (..., 4*D, P), rows [i, f, o, g], and c_{t-1} (..., D, P).

    Returns (h_t, c_t) with c_t = f*c + i*g and h_t = o*tanh(c_t); new tensors (``lstm_update_`` is the in-place
    form of inference)."""
    width = cell.shape[-2]
    i, f, o = torch.sigmoid(gates[..., :3 * width, :]).split(width, dim=-2)
    cell = f * cell + i * torch.tanh(gates[..., 3 * width:, :])
    return o * torch.tanh(cell), cell


def lstm_update_(gates: Tensor, cell: Tensor, hidden: Tensor) -> None:
    """In-place LSTM state update from pre-activation gates.

    Args:
        gates: (..., 4*D, P) pre-activations with rows [i, f, o, g] (each D); overwritten.
        cell: (..., D, P) c_{t-1}, overwritten with c_t = f*c + i*g.
        hidden: (..., D, P) written with h_t = o*tanh(c_t).
    """
    width = cell.shape[-2]
    sig = gates[..., :3 * width, :].sigmoid_()
    g = tanh_into(gates[..., 3 * width:, :], gates[..., 3 * width:, :])
    i, f, o = sig.split(width, dim=-2)
    cell.mul_(f).addcmul_(i, g)
    tanh_into(cell, g)
    torch.mul(o, g, out=hidden)


def sample_at_positions(features: Tensor, positions: Tensor) -> Tensor:
    """Bilinear samples of (N, C, H, W) features at (U, 2) positions (x=width, y=height, in [-1, 1]).

    Border padding, align_corners=False (spec §3.7). Returns (N, C, U).
    """
    grid = positions[None, :, None, :].expand(features.shape[0], -1, -1, -1)  # (N, U, 1, 2)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)[..., 0]


def per_unit_dot(sampled: Tensor, weights: Tensor) -> Tensor:
    """Per-unit dot products over channels: out[n, s, u] = sum_c sampled[n, s, c, u] * weights[s, c, u].

    Accumulated channel by channel with elementwise ops, so each unit's result is summed in the same order whatever
    other units are computed (a unit selection equals the full readout bit for bit), and every step streams
    contiguous (N, S, U) rows instead of a strided reduction.

    Args:
        sampled: (N, S, C, U) features sampled at the units' positions.
        weights: (S, C, U) per-stream feature weights.
    Returns:
        (N, S, U).
    """
    total = sampled[:, :, 0] * weights[:, 0]
    for channel in range(1, sampled.shape[2]):
        total.addcmul_(sampled[:, :, channel], weights[:, channel])
    return total
