"""BERG-compatible facade for ``calcium_2p-wang_2025-3DCNN`` (the call signatures of the BERG toolbox).

    berg = BERG("path/to/berg_dir")
    model = berg.get_encoding_model("calcium_2p-wang_2025-3DCNN", train_session="session-8_scan-5",
                                    selection={"roi": ["V1", "LM"]}, device="auto")
    responses = berg.encode(model, video)            # uint8 [T, 144, 256] -> float32 [T, U]
    metadata = berg.get_model_metadata("calcium_2p-wang_2025-3DCNN", train_session="session-8_scan-5")

Responses are in-silico calcium-imaging activity (Poisson rates, strictly positive) of each selected unit at each
frame of the 30 Hz video, in readout order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from berg_ray.behaviour import validate_behaviours
from berg_ray.checkpoint.release import load_model, read_scan_units, weights_dir
from berg_ray.config import DEFAULT_CHUNK_FRAMES, ScanId, check_model_id
from berg_ray.download import resolve_berg_dir
from berg_ray.errors import ReleaseFormatError
from berg_ray.inference import check_chunk_frames, encode_videos
from berg_ray.model.network import EncodingModel
from berg_ray.runtime.precision import DEFAULT_PRECISION
from berg_ray.validation.videos import validate_stimulus
from berg_ray.units import ScanUnits, select_units, take_per_unit


@dataclass(frozen=True, eq=False)
class EncodingModelHandle:
    """What ``get_encoding_model`` returns: one scan's model with its unit selection, ready to encode.

    Attributes:
        model_id: the BERG model id.
        scan_id: the train session (scan) whose units are predicted.
        model: the loaded network (shared core + this scan's front end and readout).
        units: the scan's unit tables (readout order).
        selected: readout indices of the selected units (None = all).
        chunk_frames: frames per chunk for long videos.
    """

    model_id: str
    scan_id: ScanId
    model: EncodingModel
    units: ScanUnits
    selected: np.ndarray | None
    chunk_frames: int = DEFAULT_CHUNK_FRAMES

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def n_units(self) -> int:
        """Number of units in the output (after selection)."""
        return self.units.n_units if self.selected is None else int(self.selected.shape[0])


class BERG:
    """Entry point mirroring the BERG toolbox for the Wang et al. (Nature 2025) model."""

    def __init__(self, berg_dir: str | os.PathLike[str]) -> None:
        self.berg_dir = resolve_berg_dir(berg_dir)  # s3://bucket/prefix: this node's verified cached copy
        if not self.berg_dir.is_dir():
            raise ReleaseFormatError(f"berg_dir {str(berg_dir)!r} is not a directory; pass the BERG data directory")
        weights_dir(self.berg_dir)  # fail now, with the expected layout, rather than at the first model

    def get_encoding_model(self, model_id: str, train_session: str, selection: Mapping[str, Any] | None = None,
                           device: str | torch.device = "auto",
                           chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                           precision: str = DEFAULT_PRECISION) -> EncodingModelHandle:
        """Load the model of one train session (scan).

        Args:
            model_id: must be "calcium_2p-wang_2025-3DCNN".
            train_session: "session-8_scan-5" or "session8_scan5", one of the 13 released scans.
            selection: None (all units) or a dict of ``roi`` / ``field`` / ``unit_index`` (union of the masks).
            device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
            chunk_frames: frames per chunk for long videos (memory bound; results do not depend on it), an
                integer >= 1.
            precision: "float32" (default; matches the reference), "tf32" (CUDA, Ampere or newer) or "bfloat16"
                (autocast; CUDA or CPU). Measured agreement and speed: docs/numerics.md.
        """
        check_model_id(model_id)
        chunk_frames = check_chunk_frames(chunk_frames)
        scan_id = ScanId.parse(train_session)
        units = read_scan_units(self.berg_dir, scan_id)
        selected = select_units(units, selection)
        model = load_model(self.berg_dir, [scan_id], device=device, precision=precision)
        return EncodingModelHandle(model_id, scan_id, model, units, selected, chunk_frames)

    def encode(self, encoding_model: EncodingModelHandle, stimulus: Any, return_metadata: bool = False,
               show_progress: bool = False, perspectives: Any = None, modulations: Any = None
               ) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
        """Predict responses to a video or a batch of videos.

        Args:
            encoding_model: from ``get_encoding_model``.
            stimulus: uint8 (or integer-valued) [T, 144, 256] or [B, T, 144, 256], 30 Hz grey-scale.
            return_metadata: also return the metadata of the selected units.
            show_progress: show a progress bar over frames.
            perspectives: optional eye position per frame (pupil centre x, y), float [T, 2] ([B, T, 2] for a batch),
                standardised (``berg_ray.behaviour.standardise``); None = the default, 0.
            modulations: optional (pupil radius, treadmill speed) per frame, float [T, 2] / [B, T, 2],
                standardised; None = 0. T must equal the stimulus's frame count.

        Returns:
            float32 [T, U] or [B, T, U] (U = selected units, readout order); with ``return_metadata``,
            ``(responses, metadata)`` where per-unit metadata arrays are restricted to the selected units.
        """
        videos, batched = validate_stimulus(stimulus)
        behaviour = validate_behaviours({"perspectives": perspectives, "modulations": modulations}, videos.shape[1],
                                        videos.shape[0] if batched else None)
        behaviour = {k: (v if v is None or batched else v[None]) for k, v in behaviour.items()}  # (B, T, 2)
        sid = str(encoding_model.scan_id)
        with tqdm(total=videos.shape[0] * videos.shape[1], unit="frame", desc=f"encode {sid}",
                  disable=not show_progress) as bar:
            per_video = encode_videos(encoding_model.model, videos, [sid] * videos.shape[0],
                                      {sid: encoding_model.selected}, encoding_model.chunk_frames,
                                      on_chunk=lambda n: bar.update(n * videos.shape[0]), **behaviour)
        responses = np.stack(per_video) if batched else per_video[0]
        if not return_metadata:
            return responses
        return responses, _select_metadata(encoding_model.units, encoding_model.selected)

    def get_model_metadata(self, model_id: str, train_session: str) -> dict[str, Any]:
        """The scan's metadata dict (``calcium_2p``, ``encoding_model``), per-unit arrays in readout order."""
        check_model_id(model_id)
        return read_scan_units(self.berg_dir, ScanId.parse(train_session)).metadata


def _select_metadata(units: ScanUnits, selected: np.ndarray | None) -> dict[str, Any]:
    if selected is None:
        return dict(units.metadata)
    return take_per_unit(units.metadata, selected, units.n_units)
