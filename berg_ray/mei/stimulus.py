"""The MEI's parametrisation (as cajal/fnn ``fnn/model/stimuli.py`` ``VisualNlm`` / ``StaticVisualNlm``).

Per video b (one unit's MEI): a raw image ``raw`` (T', 144, 256) normalised to unit RMS,
``p = raw / ||raw|| x sqrt(numel)``, scaled by a learned gain and shifted by a learned offset, then bounded by a
sigmoid into pixel values: ``video = 255 sigmoid(gain p + offset)``. A static MEI has T' = 1, its one image held
for every frame (its gradient is the frame average: optimizer scale 1 / F); a dynamic one has T' = F frames.
The raw image starts as seeded standard-normal noise (one seed per unit, so an MEI does not depend on the batch it
ran in), the gain at ``init_gain`` and the offset at 0: the optimisation starts at mid grey with a faint texture.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH


@dataclass(frozen=True)
class StimulusParams:
    """The learned tensors of B MEIs: ``raw`` float32 (B, T', H, W), ``gain`` and ``offset`` float32 (B,)."""

    raw: Tensor
    gain: Tensor
    offset: Tensor


def unit_seed(seed: int, scan_id: str, readout_id: int) -> int:
    """The seed of one unit's starting image: a function of the run's seed, the scan and the readout index only."""
    sequence = np.random.SeedSequence([int(seed), zlib.crc32(scan_id.encode()), int(readout_id)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def init_params(seeds: Sequence[int], frames: int, static: bool, init_gain: float,
                device: torch.device | str = "cpu") -> StimulusParams:
    """Starting parameters of len(seeds) MEIs: raw standard-normal noise (T' = 1 if ``static`` else ``frames``)."""
    depth = 1 if static else frames
    raw = np.stack([np.random.default_rng(s).standard_normal((depth, FRAME_HEIGHT, FRAME_WIDTH), dtype=np.float32)
                    for s in seeds])
    batch = len(seeds)
    return StimulusParams(torch.from_numpy(raw).to(device), torch.full((batch,), float(init_gain), device=device),
                          torch.zeros(batch, device=device))


def unit_rms(raw: Tensor) -> Tensor:
    """Each video's raw image scaled to unit root-mean-square: (B, T', H, W) -> same (a zero row stays zero)."""
    flat = raw.flatten(1)
    norms = flat.norm(dim=1).clamp_min(torch.finfo(raw.dtype).tiny)
    return (flat * (flat.shape[1] ** 0.5 / norms)[:, None]).view_as(raw)


def render(pixels: Tensor, gain: Tensor, offset: Tensor, frames: int) -> Tensor:
    """Pixel values float32 (B, F, H, W) in (0, 255) of unit-RMS ``pixels`` (B, T', H, W), T' = 1 or F."""
    video = 255.0 * torch.sigmoid(pixels * gain[:, None, None, None] + offset[:, None, None, None])
    return video.expand(-1, frames, -1, -1) if video.shape[1] == 1 else video


def to_uint8(video: Tensor) -> np.ndarray:
    """(B, F, H, W) pixel values -> uint8 numpy, rounded to the nearest level."""
    return video.detach().round().clamp(0, 255).to(torch.uint8).cpu().numpy()
