"""Per-scan perspective: monitor frame -> retina image (spec §3.2).

At inference the eye position input is zero, so the eye rotation, the ray-plane intersection and hence the whole
sampling grid are constants of the checkpoint: they are computed once here and only the pixel maps and one
``grid_sample`` run per frame.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from berg_ray.model.functional import PLANE_CLIP, RETINA_EPS, gelu_gamma, rotation_matrix, weight_norm

_MONITOR_W, _MONITOR_H = 256, 144
_RETINA_W, _RETINA_H = 192, 128


def eye_rotation(params: Mapping[str, Tensor]) -> Tensor:
    """Rotation (3, 3) produced by the perspective MLP for a zero eye-position input."""
    hidden = gelu_gamma(params["perspective.mlp.linears.0.biases.0"].reshape(-1))  # W1 @ 0 vanishes
    for layer in (1, 2, 3):
        prefix = f"perspective.mlp.linears.{layer}"
        weight = weight_norm(params[f"{prefix}.weights.0"], params[f"{prefix}.gains.0"]).flatten(1)
        hidden = weight @ hidden + params[f"{prefix}.biases.0"].reshape(-1)
        if layer < 3:
            hidden = gelu_gamma(hidden)
    return rotation_matrix(hidden)


def sampling_grid(params: Mapping[str, Tensor]) -> Tensor:
    """grid_sample coordinates (128, 192, 2) of every retina pixel on the monitor (spec §3.2.2-3.2.3)."""
    rays = params["perspective.retina.grid"] @ eye_rotation(params).T  # (128, 192, 3): r = R g
    monitor = rotation_matrix(params["perspective.monitor.angle"])
    axis_x, axis_y, axis_z = monitor[:, 0], monitor[:, 1], monitor[:, 2]
    center = params["perspective.monitor.center"]
    num = (axis_z * center).sum()
    den = (rays * axis_z).sum(-1).clamp_min(PLANE_CLIP)  # one-sided: grazing rays land far outside
    hits = (num / den)[..., None] * rays - center
    u, v = (hits * axis_x).sum(-1), (hits * axis_y).sum(-1)
    # The trained model's coordinate scaling mixes monitor and retina sizes (spec pitfall 8): keep it as is.
    gx = ((u * (_MONITOR_W / (_MONITOR_W - 1))) * (_RETINA_W - 1)) / _RETINA_W
    gy = ((((v * _MONITOR_W) / _MONITOR_H) * (_MONITOR_W / (_MONITOR_W - 1))) * (_RETINA_H - 1)) / _RETINA_H
    return torch.stack([gx, gy], dim=-1)


class Perspective(nn.Module):
    """Monitor -> retina warp of one scan at the default eye position."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        with torch.no_grad():
            self.register_buffer("grid", sampling_grid(params).contiguous())  # (128, 192, 2)
            self.register_buffer("monitor_power", params["perspective.monitor_pixel.power"].clone())
            self.register_buffer("monitor_scale", params["perspective.monitor_pixel.scale"].clone())
            self.register_buffer("monitor_offset", params["perspective.monitor_pixel.offset"].clone())
            self.register_buffer("retina_power", torch.sigmoid(params["perspective.retina_pixel.logit"]))
            self.register_buffer("retina_scale", params["perspective.retina_pixel.scale"].clone())
            self.register_buffer("retina_offset", params["perspective.retina_pixel.offset"].clone())

    def forward(self, frames: Tensor) -> Tensor:
        """(N, 1, 144, 256) float32 pixels in [0, 1] -> (N, 1, 128, 192) retina image."""
        monitor = frames.pow(self.monitor_power) * self.monitor_scale + self.monitor_offset
        grid = self.grid[None].expand(frames.shape[0], -1, -1, -1)  # (N, 128, 192, 2)
        retina = F.grid_sample(monitor, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return (retina + RETINA_EPS).pow(self.retina_power) * self.retina_scale + self.retina_offset
