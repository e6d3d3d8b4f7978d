"""Causal 3-tap temporal convolutions computed two output frames at a time (Winograd's F(2,3) along time).

A causal (3, kh, kw) convolution over frames d (spec §4.3) gives out[t] = sum_j g_j * d[t+j] with g_j the 2-D
(kh, kw) kernel of temporal tap j: 3 spatial convolutions per output frame. For a pair of output frames from the 4
input frames d0..d3, Winograd's minimal filtering algorithm F(2,3) needs 4 instead of 6:

    m0 = g0 * (d0 - d2)          m1 = (g0 + g1 + g2)/2 * (d1 + d2)
    m2 = (g0 - g1 + g2)/2 * (d2 - d1)          m3 = g2 * (d1 - d3)
    out0 = m0 + m1 + m2          out1 = m1 - m2 - m3

so the spatial convolutions (the FLOPs) drop by a third, at the price of a few elementwise passes. Every
coefficient is 0, +-1 or 1/2, so the result is as accurate as the direct convolution (float32: ~1e-6 relative
difference). Pairs are aligned to the video's absolute frame index (even frame first), so a frame is computed by the
same formula whatever the chunking or pass boundaries: frames outside the pass that a half pair would need are
zeros whose only contribution goes to the discarded other half.

Used on CPU (``device_plan.temporal_pairs``), where the spatial convolutions run at the cores' FMA peak and only
fewer FLOPs make them faster; accelerators keep the direct 3-D convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pair_weights(weight: Tensor) -> list[Tensor]:
    """Kernels of the 4 spatial convolutions of F(2,3).

    Args:
        weight: (O, I, 3, kh, kw) 3-D conv weight, temporal taps oldest first.
    Returns:
        [g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2] as (O, I, kh, kw) channels-last, each computed in float64 and rounded
        once.
    """
    g0, g1, g2 = weight.double().unbind(2)
    kernels = [g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2]
    kernels = [k.to(weight.dtype).contiguous(memory_format=torch.channels_last) for k in kernels]
    return kernels


def pair_layout(first_frame: int, frames: int) -> tuple[int, int]:
    """(lead, pairs): the pass's output frames first_frame..first_frame+frames-1 (absolute indices) lie at
    lead..lead+frames-1 of ``pairs`` aligned output pairs; lead is 1 when the pass starts on an odd frame."""
    lead = first_frame % 2
    return lead, (lead + frames + 1) // 2


def causal_conv_pairs(padded: Tensor, kernels: list[Tensor], bias: Tensor | None, groups: int) -> Tensor:
    """Causal temporal convolution of 2P output frames from 2P+2 input frames, by pairs.

    Args:
        padded: (B, I, 2P+2, H, W) channels-last-3d input frames, oldest first (out[t] reads padded[t..t+2]).
        kernels: from :func:`pair_weights`, (O, I/groups, kh, kw) with 'same' spatial padding.
        bias: (O,) or None; added through m1, which enters both output frames with coefficient +1.
        groups: channel groups of the convolution.
    Returns:
        (B, O, 2P, H, W) channels-last-3d, equal to conv3d(padded, weight, bias, padding=(0, kh//2, kw//2)).
    """
    batch, _, length, height, width = padded.shape
    pairs = (length - 2) // 2
    if length != 2 * pairs + 2:
        raise ValueError(f"causal_conv_pairs needs an even number of input frames, got {length}")
    d = padded.permute(0, 2, 3, 4, 1)  # (B, 2P+2, H, W, I) view
    d0, d1, d2, d3 = (d[:, j:j + 2 * pairs:2] for j in range(4))  # (B, P, H, W, I) each: the pairs' input frames
    transformed = [padded.new_empty(d0.shape) for _ in range(4)]  # separate: each stays under glibc's mmap threshold
    torch.sub(d0, d2, out=transformed[0])
    torch.add(d1, d2, out=transformed[1])
    torch.sub(d2, d1, out=transformed[2])
    torch.sub(d1, d3, out=transformed[3])
    padding = (kernels[0].shape[2] // 2, kernels[0].shape[3] // 2)
    m = [F.conv2d(transformed[k].flatten(0, 1).permute(0, 3, 1, 2), kernels[k], bias if k == 1 else None,
                  padding=padding, groups=groups).permute(0, 2, 3, 1) for k in range(4)]  # (B*P, H, W, O) each
    out_channels = kernels[0].shape[0]
    out = torch.empty((batch, out_channels, 2 * pairs, height, width), dtype=m[0].dtype, device=padded.device,
                      memory_format=torch.channels_last_3d)
    pair_out = out.permute(0, 2, 3, 4, 1).view(batch, pairs, 2, height, width, out_channels)
    m = [mk.view(batch, pairs, height, width, out_channels) for mk in m]
    first, second = pair_out[:, :, 0], pair_out[:, :, 1]
    torch.add(m[1], m[2], out=first).add_(m[0])
    torch.sub(m[1], m[2], out=second).sub_(m[3])
    return out
