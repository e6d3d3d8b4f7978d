"""The MEI optimisation loop: B units at once, one video each, by SGD with adaptive clipping on a cosine schedule.

Per step: the unit-RMS image, rendered through gain, offset and sigmoid into pixel values, goes through the model
(``berg_ray.model.gradients.differentiable_responses``); the objective of video b is the mean log-rate of unit b
over the frames after the burn-in minus ``penalty`` x the blur penalty; the sum over videos is differentiated (so
video b's gradient is its own unit's) and every parameter row takes its own clipped step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from berg_ray.errors import BergRayError
from berg_ray.mei.objective import mean_log_rate, own_unit_rates
from berg_ray.mei.optimizer import clip_step
from berg_ray.mei.penalty import blur_penalty
from berg_ray.mei.schedule import cosine_lr
from berg_ray.mei.settings import MeiSettings
from berg_ray.mei.stimulus import StimulusParams, init_params, render, to_uint8, unit_rms, unit_seed

# (B, F, H, W) float pixel values -> (B, F) rate of each video's own unit, differentiable.
Respond = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class MeiResult:
    """B optimised MEIs.

    Attributes:
        videos: uint8 (B, F, 144, 256).
        objective: float64 (B,) objective (mean log-rate minus weighted penalty) at the last step.
        log_rate: float64 (B,) mean log-rate at the last step (float pixels, before rounding to uint8).
        penalty: float64 (B,) blur penalty at the last step.
        history: float64 (steps, B) objective at every step.
    """

    videos: np.ndarray
    objective: np.ndarray
    log_rate: np.ndarray
    penalty: np.ndarray
    history: np.ndarray


def optimise(respond: Respond, params: StimulusParams, settings: MeiSettings) -> MeiResult:
    """Run ``settings.steps`` steps from ``params`` (B videos); ``respond`` maps pixel values to own-unit rates.

    Raises:
        BergRayError: the objective became non-finite (names the step).
    """
    raw, gain, offset = params.raw, params.gain, params.offset
    raw_scale = 1.0 / settings.frames if settings.static else 1.0  # static: the gradient averaged over frames
    scalar_scale = 1.0 / raw[0].numel()  # gain and offset gradients sum over every pixel: their mean
    history = []
    for step in range(settings.steps):
        lr = cosine_lr(step, settings.steps, settings.lr)
        raw, gain, offset = (t.detach().requires_grad_(True) for t in (raw, gain, offset))
        log_rate, penalty = _evaluate(respond, raw, gain, offset, settings)
        objective = log_rate - settings.penalty * penalty
        if not bool(torch.isfinite(objective).all()):
            raise BergRayError(f"the MEI objective became non-finite at step {step + 1}; lower --lr or --clip")
        (-objective.sum()).backward()
        raw = clip_step(raw, raw.grad, lr, settings.clip, settings.eps, raw_scale)
        gain = clip_step(gain, gain.grad, lr, settings.clip, settings.eps, scalar_scale)
        offset = clip_step(offset, offset.grad, lr, settings.clip, settings.eps, scalar_scale)
        history.append(objective.detach().double().cpu().numpy())
    with torch.no_grad():
        video = render(unit_rms(raw), gain, offset, settings.frames)
    return MeiResult(to_uint8(video), history[-1], log_rate.detach().double().cpu().numpy(),
                     penalty.detach().double().cpu().numpy(), np.stack(history))


def _evaluate(respond: Respond, raw: Tensor, gain: Tensor, offset: Tensor, settings: MeiSettings
              ) -> tuple[Tensor, Tensor]:
    """(mean log-rate (B,), blur penalty (B,)) of the current parameters."""
    pixels = unit_rms(raw)
    rates = respond(render(pixels, gain, offset, settings.frames))  # (B, F)
    penalty = blur_penalty(pixels, settings.spatial_std, 0.0 if settings.static else settings.temporal_std,
                           settings.cutoff)
    return mean_log_rate(rates, settings.burn_in), penalty


def optimise_meis(model, scan_id: str, readout_ids: Sequence[int], settings: MeiSettings) -> MeiResult:
    """MEIs of ``readout_ids`` (one video each, optimised together) of ``scan_id`` on ``model`` (an EncodingModel;
    behaviour inputs at their default). Each unit's start is seeded by (settings.seed, scan, readout id)."""
    from berg_ray.model.gradients import differentiable_responses

    units = torch.as_tensor(np.asarray(readout_ids, dtype=np.int64), device=model.device)

    def respond(video: Tensor) -> Tensor:
        responses = differentiable_responses(model, video, scan_id, units, chunk_frames=settings.chunk_frames)
        return own_unit_rates(responses)  # (B, F, B) -> (B, F)

    seeds = [unit_seed(settings.seed, scan_id, int(r)) for r in readout_ids]
    params = init_params(seeds, settings.frames, settings.static, settings.init_gain, model.device)
    return optimise(respond, params, settings)
