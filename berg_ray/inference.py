"""The local inference path: validated uint8 videos -> responses, chunk by chunk, without gradients.

The BERG facade, the CLI, the Serve replicas and the sweep actors all reach the model through
``EncodingModel``; this module is the in-process driver used where one caller owns the whole video.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from berg_ray.config import DEFAULT_CHUNK_FRAMES
from berg_ray.errors import BergRayError, InvalidArgumentError
from berg_ray.model.network import EncodingModel


def encode_videos(model: EncodingModel, videos: np.ndarray, scan_ids: Sequence[str],
                  units: Mapping[str, np.ndarray | None] | None = None, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                  on_chunk: Callable[[int], None] | None = None, perspectives: np.ndarray | None = None,
                  modulations: np.ndarray | None = None) -> list[np.ndarray]:
    """Run videos through the model in time chunks (state carried across chunks; results do not depend on it).

    Args:
        model: the loaded model.
        videos: uint8 (B, T, 144, 256), already validated (``validate_stimulus``).
        scan_ids: canonical scan id of each video (a batch may mix scans).
        units: optional readout indices per scan id (None = all units of that scan).
        chunk_frames: frames per chunk; memory grows with B * chunk_frames.
        on_chunk: called with the number of frames of each finished chunk (progress bars).
        perspectives, modulations: optional behaviour inputs, float32 (B, T, 2), already validated
            (``berg_ray.behaviour.validate_behaviour``); None = the default (zeros).

    Returns:
        One float32 array (T, U_b) per video, U_b the (selected) units of its scan.
    """
    if len(scan_ids) != videos.shape[0]:
        raise BergRayError(f"{len(scan_ids)} scan ids given for {videos.shape[0]} videos; give one per video")
    chunk_frames = check_chunk_frames(chunk_frames)
    index = {sid: torch.as_tensor(sel, dtype=torch.long, device=model.device)
             for sid, sel in (units or {}).items() if sel is not None}
    frames = torch.from_numpy(np.ascontiguousarray(videos))
    behaviour = {name: None if value is None else torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
                 for name, value in (("perspectives", perspectives), ("modulations", modulations))}
    outputs = [np.empty((videos.shape[1], _n_out(model, sid, index)), dtype=np.float32) for sid in scan_ids]
    with torch.inference_mode():
        for start, chunk in model.encode_chunks(frames, list(scan_ids), chunk_frames, index or None,
                                                **behaviour):
            for out, responses in zip(outputs, chunk):
                out[start:start + responses.shape[0]] = responses.float().cpu().numpy()
            if on_chunk is not None:
                on_chunk(chunk[0].shape[0])
    return outputs


def check_chunk_frames(chunk_frames: Any) -> int:
    """``chunk_frames`` as an int >= 1 (numpy integers accepted); InvalidArgumentError for anything else."""
    if isinstance(chunk_frames, (bool, np.bool_)) or not isinstance(chunk_frames, (int, np.integer)) \
            or chunk_frames < 1:
        raise InvalidArgumentError(f"chunk_frames must be a positive integer number of frames, got {chunk_frames!r}"
                                   f" ({type(chunk_frames).__name__}); the default is {DEFAULT_CHUNK_FRAMES}")
    return int(chunk_frames)


def _n_out(model: EncodingModel, scan_id: str, index: Mapping[str, torch.Tensor]) -> int:
    return int(index[scan_id].numel()) if scan_id in index else model.n_units(scan_id)
