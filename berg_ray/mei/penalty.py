"""The smoothness penalty of an MEI: the energy that a Gaussian blur removes (a non-local-means style prior).

``penalty = sum (p - blur(p))^2`` over the pixels of the unit-RMS image ``p`` (before gain, offset and the sigmoid),
divided by the frames: the high-frequency energy per frame. A Gaussian of ``spatial_std`` pixels (and, for dynamic
MEIs, ``temporal_std`` frames) is applied separably with replicate padding, its kernels reaching ``cutoff``
standard deviations (as cajal/fnn ``fnn/model/utils.py`` ``Gaussian3d``). Pure tensor functions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel(std: float, cutoff: float, device: torch.device | str = "cpu") -> Tensor:
    """Normalised 1-D Gaussian, float32 (K,) with K = 2 ceil(std x cutoff) + 1; std 0 gives the identity [1]."""
    if std <= 0:
        return torch.ones(1, device=device)
    half = math.ceil(std * cutoff)
    offsets = torch.arange(-half, half + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / std) ** 2)
    return (kernel / kernel.sum()).to(device=device, dtype=torch.float32)


def gaussian_blur(video: Tensor, spatial_std: float, temporal_std: float, cutoff: float) -> Tensor:
    """Separable Gaussian blur of (B, T, H, W) float videos over T, H and W (replicate padding); same shape."""
    x = video.unsqueeze(1)  # (B, 1, T, H, W)
    kernels = (gaussian_kernel(temporal_std, cutoff, video.device), gaussian_kernel(spatial_std, cutoff, video.device),
               gaussian_kernel(spatial_std, cutoff, video.device))
    for axis, kernel in enumerate(kernels):
        half = kernel.numel() // 2
        if half == 0:
            continue
        pad = [0, 0, 0, 0, 0, 0]
        pad[4 - 2 * axis:6 - 2 * axis] = [half, half]  # F.pad lists the last dim first: W, H, T
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel.numel()
        x = F.conv3d(F.pad(x, pad, mode="replicate"), kernel.view(shape).to(x.dtype))
    return x.squeeze(1)


def blur_penalty(pixels: Tensor, spatial_std: float, temporal_std: float, cutoff: float) -> Tensor:
    """Per-video penalty (B,) of unit-RMS pixels (B, T, H, W): sum of (p - blur(p))^2 over T, H, W, divided by T."""
    residual = pixels - gaussian_blur(pixels, spatial_std, temporal_std, cutoff)
    return residual.pow(2).flatten(1).sum(1) / pixels.shape[1]
