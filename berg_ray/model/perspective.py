"""Per-scan perspective: monitor frame -> retina image (spec §3.2), at any eye position.

The eye-position input (``perspectives``: pupil centre x, y, standardised) goes through a small MLP to three
rotation angles; the rotated retina rays are intersected with the monitor plane, giving the ``grid_sample``
coordinates of every retina pixel. At the default eye position (0, 0) the whole grid is a constant of the
checkpoint, computed once; frames with a non-zero eye position get their own grid.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from berg_ray.model.functional import PLANE_CLIP, RETINA_EPS, gelu_gamma, rotation_matrix, weight_norm

_MONITOR_W, _MONITOR_H = 256, 144
_RETINA_W, _RETINA_H = 192, 128
_MLP = "perspective.mlp.linears"


def eye_mlp(params: Mapping[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
    """(weight (O, I), bias (O,)) of the 4 layers of the eye-position MLP: 2 -> 16 -> 16 -> 16 -> 3 angles.

    The first layer's weight is used raw (no weight normalisation, spec §3.2.1), the others are normalised.
    """
    layers = [(params[f"{_MLP}.0.weights.0"].flatten(1), params[f"{_MLP}.0.biases.0"].reshape(-1))]
    for layer in (1, 2, 3):
        prefix = f"{_MLP}.{layer}"
        weight = weight_norm(params[f"{prefix}.weights.0"], params[f"{prefix}.gains.0"]).flatten(1)
        layers.append((weight, params[f"{prefix}.biases.0"].reshape(-1)))
    return layers


def eye_rotation(params: Mapping[str, Tensor]) -> Tensor:
    """Rotation (3, 3) produced by the perspective MLP for a zero eye-position input."""
    hidden = gelu_gamma(params[f"{_MLP}.0.biases.0"].reshape(-1))  # W1 @ 0 vanishes
    for layer, (weight, bias) in enumerate(eye_mlp(params)[1:], start=1):
        hidden = weight @ hidden + bias
        if layer < 3:
            hidden = gelu_gamma(hidden)
    return rotation_matrix(hidden)


def eye_rotations(layers: list[tuple[Tensor, Tensor]], perspectives: Tensor) -> Tensor:
    """Eye positions (N, 2) -> rotations (N, 3, 3) through the MLP ``layers`` (:func:`eye_mlp`)."""
    hidden = perspectives
    for i, (weight, bias) in enumerate(layers):
        hidden = hidden @ weight.T + bias
        if i < len(layers) - 1:
            hidden = gelu_gamma(hidden)
    return rotation_matrix(hidden)


def rotate_rays(rays: Tensor, rotations: Tensor) -> Tensor:
    """r = R g for every ray g (H, W, 3) and rotation R (..., 3, 3) -> (..., H, W, 3).

    Computed elementwise as g_x R[c, 0] + g_y R[c, 1] + g_z R[c, 2], left to right: every IEEE operation is
    rounded the same on every CPU and GPU, where a BLAS product's rounding depends on the kernel the machine picks
    (an AVX-512 kernel moved ~1% of retina pixels at sharp edges by up to 6e-5 against the reference's
    intermediates; this order matches 99.7-99.9% of them within 1e-6 there). The reference's own grid comes from
    einsums, so its goldens carry its machine's rounding: on an AVX2 EPYC the reference matches them at 98.5%, and
    so do we (tests/test_fidelity.py bounds each pixel by its change under a 4-ULP move of its sampling point).
    """
    r = rotations[..., None, None, :, :]  # (..., 1, 1, 3, 3)
    return torch.stack([rays[..., 0] * r[..., c, 0] + rays[..., 1] * r[..., c, 1] + rays[..., 2] * r[..., c, 2]
                        for c in range(3)], dim=-1)


def monitor_coordinates(rays: Tensor, monitor: Tensor, center: Tensor) -> Tensor:
    """grid_sample coordinates (..., 2) where rays (..., 3) hit the monitor (spec §3.2.3).

    Args:
        rays: unit ray directions (..., 3) in eye coordinates.
        monitor: monitor rotation (3, 3); its columns are the monitor's x, y and normal axes.
        center: monitor centre (3,).
    """
    axis_x, axis_y, axis_z = monitor[:, 0], monitor[:, 1], monitor[:, 2]
    num = (axis_z * center).sum()
    den = (rays * axis_z).sum(-1).clamp_min(PLANE_CLIP)  # one-sided: grazing rays land far outside
    hits = (num / den)[..., None] * rays - center
    u, v = (hits * axis_x).sum(-1), (hits * axis_y).sum(-1)
    # The trained model's coordinate scaling mixes monitor and retina sizes (spec pitfall 8): keep it as is.
    gx = ((u * (_MONITOR_W / (_MONITOR_W - 1))) * (_RETINA_W - 1)) / _RETINA_W
    gy = ((((v * _MONITOR_W) / _MONITOR_H) * (_MONITOR_W / (_MONITOR_W - 1))) * (_RETINA_H - 1)) / _RETINA_H
    return torch.stack([gx, gy], dim=-1)


def sampling_grid(params: Mapping[str, Tensor]) -> Tensor:
    """grid_sample coordinates (128, 192, 2) of every retina pixel on the monitor at the default eye position."""
    rays = rotate_rays(params["perspective.retina.grid"], eye_rotation(params))  # (128, 192, 3): r = R g
    return monitor_coordinates(rays, rotation_matrix(params["perspective.monitor.angle"]),
                               params["perspective.monitor.center"])


class Perspective(nn.Module):
    """Monitor -> retina warp of one scan, per frame eye position (default: the constant grid)."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        with torch.no_grad():
            self.register_buffer("grid", sampling_grid(params).contiguous())  # (128, 192, 2)
            for i, (weight, bias) in enumerate(eye_mlp(params)):
                self.register_buffer(f"eye{i}_w", weight.clone())
                self.register_buffer(f"eye{i}_b", bias.clone())
            self.register_buffer("retina_rays", params["perspective.retina.grid"].clone())  # (128, 192, 3)
            self.register_buffer("monitor_axes", rotation_matrix(params["perspective.monitor.angle"]))
            self.register_buffer("monitor_center", params["perspective.monitor.center"].clone())
            self.register_buffer("monitor_power", params["perspective.monitor_pixel.power"].clone())
            self.register_buffer("monitor_scale", params["perspective.monitor_pixel.scale"].clone())
            self.register_buffer("monitor_offset", params["perspective.monitor_pixel.offset"].clone())
            self.register_buffer("retina_power", torch.sigmoid(params["perspective.retina_pixel.logit"]))
            self.register_buffer("retina_scale", params["perspective.retina_pixel.scale"].clone())
            self.register_buffer("retina_offset", params["perspective.retina_pixel.offset"].clone())

    def grids(self, perspectives: Tensor) -> Tensor:
        """Eye positions (N, 2) -> sampling grids (N, 128, 192, 2), in float32 whatever the autocast."""
        with torch.autocast(perspectives.device.type, enabled=False):
            layers = [(getattr(self, f"eye{i}_w"), getattr(self, f"eye{i}_b")) for i in range(4)]
            rotations = eye_rotations(layers, perspectives.float())  # (N, 3, 3)
            return monitor_coordinates(rotate_rays(self.retina_rays, rotations), self.monitor_axes,
                                       self.monitor_center)

    def forward(self, frames: Tensor, perspectives: Tensor | None = None) -> Tensor:
        """(N, 1, 144, 256) float32 pixels in [0, 1] -> (N, 1, 128, 192) retina image.

        Args:
            frames: monitor frames.
            perspectives: optional eye positions (N, 2), standardised; frames whose position is (0, 0) use the
                default grid, bit for bit the same as passing None.
        """
        monitor = frames.pow(self.monitor_power) * self.monitor_scale + self.monitor_offset
        grid = self.grid[None].expand(frames.shape[0], -1, -1, -1)  # (N, 128, 192, 2)
        if perspectives is not None:
            moved = perspectives.ne(0).any(-1)  # (N,)
            if bool(moved.any()):
                grid = grid.clone()
                grid[moved] = self.grids(perspectives[moved]).to(grid.dtype)
        retina = F.grid_sample(monitor, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return (retina + RETINA_EPS).pow(self.retina_power) * self.retina_scale + self.retina_offset
