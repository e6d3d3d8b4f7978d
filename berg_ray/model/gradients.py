"""Responses that autograd can differentiate with respect to the stimulus: the path of MEIs and attributions.

The same :class:`~berg_ray.model.network.EncodingModel` runs, on float frames that require grad: every layer then
takes its defining out-of-place form (``device_plan.differentiable``) instead of the in-place rewritings of
inference, and the video is cut into chunks of frames whose activations are recomputed during the backward pass
(activation checkpointing over time): memory grows with the chunk length and, by one core state per chunk
boundary, with the number of chunks, instead of with every activation of every frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH, GRADIENT_CHUNK_FRAMES
from berg_ray.model.core import CoreState
from berg_ray.model.network import EncodingModel

FLOAT_DTYPES = (torch.float32, torch.float64)


def differentiable_responses(model: EncodingModel, videos: Tensor, scan_id: str, units: Tensor | None = None,
                             chunk_frames: int | None = None, checkpointed: bool = True) -> Tensor:
    """Responses of ``scan_id``'s units to float videos, differentiable with respect to the videos.

    Args:
        model: the encoding model (its precision applies: float32, or bf16 autocast on GPUs).
        videos: float32 or float64 (B, F, 144, 256) pixel values in [0, 255] on ``model.device`` (a float64 model,
            ``model.double()``, for gradient checks). Behaviour inputs stay at their default.
        scan_id: the scan whose units respond (every video runs through its perspective and modulation).
        units: int64 readout indices (U,) on any device, or None for all units.
        chunk_frames: frames per recomputed chunk (default ``config.GRADIENT_CHUNK_FRAMES``); results do not
            depend on it.
        checkpointed: recompute each chunk in the backward pass (False keeps every activation: faster, more memory).
    Returns:
        responses (B, F, U) in the videos' dtype: rates > 0, the same values as the inference path (to float32
        rounding).
    """
    _check_videos(videos, model)
    chunk_frames = GRADIENT_CHUNK_FRAMES if chunk_frames is None else int(chunk_frames)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    if units is not None:
        units = units.to(model.device, torch.int64)
    scan_ids = [scan_id] * videos.shape[0]
    state = model.initial_state(videos.shape[0])
    state.history = [h.to(videos.dtype) for h in state.history]
    state.hidden, state.cell = state.hidden.to(videos.dtype), state.cell.to(videos.dtype)
    responses = []
    for start in range(0, videos.shape[1], chunk_frames):
        chunk = videos[:, start:start + chunk_frames]
        if checkpointed and torch.is_grad_enabled() and videos.requires_grad:
            out, state = checkpoint(_chunk_responses, model, chunk, scan_ids, state, units, use_reentrant=False)
        else:
            out, state = _chunk_responses(model, chunk, scan_ids, state, units)
        responses.append(out)
    return torch.cat(responses, dim=1)


def _chunk_responses(model: EncodingModel, chunk: Tensor, scan_ids: Sequence[str], state: CoreState,
                     units: Tensor | None) -> tuple[Tensor, CoreState]:
    """One chunk (B, T, 144, 256) from ``state`` -> (responses (B, T, U), state after it)."""
    features, state = model.forward_features(chunk, scan_ids, state)
    return model.forward_readout(features, scan_ids[0], units).to(chunk.dtype), state


def _check_videos(videos: Tensor, model: EncodingModel) -> None:
    if not isinstance(videos, Tensor) or videos.dtype not in FLOAT_DTYPES:
        raise TypeError(f"videos must be a float32 or float64 tensor of pixel values in [0, 255], got "
                        f"{getattr(videos, 'dtype', type(videos).__name__)}")
    if videos.dim() != 4 or tuple(videos.shape[2:]) != (FRAME_HEIGHT, FRAME_WIDTH) or 0 in videos.shape[:2]:
        raise ValueError(f"videos must be (B, F, {FRAME_HEIGHT}, {FRAME_WIDTH}) with B, F >= 1, got "
                         f"{tuple(videos.shape)}")
    if videos.device != model.device:
        raise ValueError(f"videos are on {videos.device}, the model on {model.device}: move them first")
