"""Stateless tensor math of the released network (wang2025-model-spec.md, sections 2-3).

Every function maps tensors to tensors; modules in this package hold the (precomputed) weights and call these.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

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
    """R = (Rz(c) @ Ry(b)) @ Rx(a) for angles (a, b, c) in radians, shape (3,) -> (3, 3)."""
    a, b, c = angles.unbind()
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    rx = torch.stack([one, zero, zero, zero, a.cos(), -a.sin(), zero, a.sin(), a.cos()]).view(3, 3)
    ry = torch.stack([b.cos(), zero, b.sin(), zero, one, zero, -b.sin(), zero, b.cos()]).view(3, 3)
    rz = torch.stack([c.cos(), -c.sin(), zero, c.sin(), c.cos(), zero, zero, zero, one]).view(3, 3)
    return (rz @ ry) @ rx


def pixels_to_unit(frames: Tensor) -> Tensor:
    """uint8 frames (any shape) -> float32 k/255, exactly rounded."""
    table = PIXEL_TABLE.to(frames.device)
    return table[frames.long()]


def interleave_slots(tensors: list[Tensor], n_slots: int, dim: int = 1) -> Tensor:
    """Group-interleaved concatenation (spec §0): split each tensor's ``dim`` into ``n_slots`` equal slots and
    emit, per slot k, slot k of every tensor in order. Shapes (..., C_i, ...) -> (..., sum C_i, ...)."""
    split = [t.unflatten(dim, (n_slots, t.shape[dim] // n_slots)) for t in tensors]  # (.., K, C_i/K, ..)
    return torch.cat(split, dim=dim + 1).flatten(dim, dim + 1)


def causal_conv3d(x: Tensor, history: Tensor, weight: Tensor, bias: Tensor, groups: int) -> tuple[Tensor, Tensor]:
    """Causal temporal 3x3x3 conv with spatial zero padding 1 (spec §3.4).

    Args:
        x: input (B, C, T, H, W).
        history: the previous 2 input frames (B, C, 2, H, W); zeros at the start of a video.
        weight: (O, C/groups, 3, 3, 3); slice [:, :, 2] multiplies the current frame.
        bias: (O,).
    Returns:
        (output (B, O, T, H, W), new history (B, C, 2, H, W)).
    """
    padded = torch.cat([history, x], dim=2)  # (B, C, T+2, H, W)
    out = F.conv3d(padded, weight, bias, padding=(0, 1, 1), groups=groups)
    return out, padded[:, :, -2:]


def normalized_attention(q: Tensor, k: Tensor, v: Tensor, scales: Tensor) -> Tensor:
    """Cosine-similarity attention of the recurrent core (spec §3.6 step 4).

    Args:
        q, k, v: (B, G, D, P) per attention group G, channels D, positions P.
        scales: (G, D) learned per-channel query scale (no 1/sqrt(D), no epsilon in the norms).
    Returns:
        a: (B, G, D, P), a[:, :, :, n] = sum_n' softmax_n'(q_n . k_n') v[:, :, :, n'].
    """
    q_hat = q / q.norm(dim=2, keepdim=True) * scales[:, :, None]
    k_hat = k / k.norm(dim=2, keepdim=True)
    logits = torch.matmul(q_hat.transpose(2, 3), k_hat)  # (B, G, P, P)
    weights = torch.softmax(logits, dim=-1)
    return torch.matmul(v, weights.transpose(2, 3))  # (B, G, D, P)


def sample_at_positions(features: Tensor, positions: Tensor) -> Tensor:
    """Bilinear samples of (N, C, H, W) features at (U, 2) positions (x=width, y=height, in [-1, 1]).

    Border padding, align_corners=False (spec §3.7). Returns (N, C, U).
    """
    grid = positions[None, :, None, :].expand(features.shape[0], -1, -1, -1)  # (N, U, 1, 2)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)[..., 0]
