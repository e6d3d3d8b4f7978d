"""EncodingModel: the shared core plus per-scan front ends (perspective, modulation) and readouts.

One inference path for every caller (BERG facade, Serve, Ray Data): ``forward_features`` runs the front ends and
the core on uint8 frames of any mix of scans, ``forward_readout`` maps features to responses of one scan, and
``encode_chunks`` streams long videos through both in bounded memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from berg_ray.config import DEFAULT_CHUNK_FRAMES
from berg_ray.model.core import CoreState, VideoCore
from berg_ray.model.device_plan import DEFAULT_KERNELS, check_cuda_graphs, check_kernels
from berg_ray.model.functional import pixels_to_unit
from berg_ray.model.modulation import Modulation, ModulationState
from berg_ray.model.perspective import Perspective
from berg_ray.model.readout import Readout
from berg_ray.runtime.precision import DEFAULT_PRECISION, check_precision, precision_mode


class ScanFrontEnd(nn.Module):
    """The per-scan parts that run before the core: perspective warp and modulation sequence."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.perspective = Perspective(params)
        self.modulation = Modulation(params)


class EncodingModel(nn.Module):
    """Shared core + per-scan heads, keyed by canonical scan id strings ("session-8_scan-5").

    ``precision`` ("float32", "tf32" or "bfloat16", see berg_ray.runtime.precision) applies to every forward call;
    set it with :meth:`set_precision` after moving the model to its device.
    """

    def __init__(self, core_params: Mapping[str, Tensor], scan_params: Mapping[str, Mapping[str, Tensor]]) -> None:
        super().__init__()
        with torch.no_grad():
            self.core = VideoCore(core_params)
            self.front_ends = nn.ModuleDict({sid: ScanFrontEnd(p) for sid, p in scan_params.items()})
            self.readouts = nn.ModuleDict({sid: Readout(p) for sid, p in scan_params.items()})
        self.requires_grad_(False)
        self.eval()
        self.precision = DEFAULT_PRECISION
        self._kernels = DEFAULT_KERNELS

    def set_precision(self, precision: str) -> "EncodingModel":
        """Run every later forward call in ``precision``; raises PrecisionError if this device cannot."""
        self.precision = check_precision(precision, self.device)
        return self

    @property
    def kernels(self) -> str:
        """"torch" (default) or "triton": how the hot paths run (berg_ray.model.device_plan.check_kernels)."""
        return self._kernels

    def set_kernels(self, kernels: str) -> "EncodingModel":
        """Run the hot paths (the readout, the feed-forward glue, the recurrent step) as torch ops or fused Triton
        kernels; raises KernelsError if this device cannot (Triton kernels need a CUDA GPU and the triton package)."""
        self._kernels = check_kernels(kernels, self.device)
        for path in (*self.readouts.values(), self.core.feedforward, self.core.recurrent):
            path.kernels = self._kernels
        return self

    @property
    def cuda_graphs(self) -> bool:
        """Whether the recurrent loop replays CUDA graphs (berg_ray.model.graphs); off by default."""
        return self.core.cuda_graphs

    def set_cuda_graphs(self, enabled: bool) -> "EncodingModel":
        """Capture the recurrent loop of each chunk shape once as a CUDA graph and replay it (True), or run it op by
        op (False, the default; drops the captured graphs); raises KernelsError on a device without CUDA."""
        self.core.cuda_graphs = check_cuda_graphs(enabled, self.device)
        if not enabled:
            self.core.loop_graphs.clear()
        return self

    @property
    def scan_ids(self) -> list[str]:
        return list(self.readouts.keys())

    @property
    def device(self) -> torch.device:
        return self.core.recurrent.feed_w.device

    def n_units(self, scan_id: str) -> int:
        return self._readout(scan_id).n_units

    def initial_state(self, batch: int) -> CoreState:
        return self.core.initial_state(batch)

    def forward_features(self, frames: Tensor, scan_ids: Sequence[str], state: CoreState | None = None,
                         perspectives: Tensor | None = None, modulations: Tensor | None = None
                         ) -> tuple[Tensor, CoreState]:
        """Front ends + core for one chunk of frames.

        Args:
            frames: uint8 (B, T, 144, 256) on the model's device; video b is run through scan_ids[b]. Float frames
                (values in [0, 255]) are accepted for gradients (berg_ray.model.gradients).
            scan_ids: canonical scan id of each video (a batch may mix scans).
            state: state after the previous chunk of the same videos; None starts new videos.
            perspectives: optional eye positions (B, T, 2), float32, standardised (pupil centre x, y).
            modulations: optional modulation inputs (B, T, 2), float32, standardised (pupil radius, treadmill).
                Zeros are the default: rows of zeros (e.g. videos of a batch that have no behaviour) give exactly
                the output without the input.
        Returns:
            (features (B, T, 512, 16, 24) float32, state after this chunk).
        """
        with precision_mode(self.precision, self.device):
            return self._forward_features(frames, scan_ids, state, perspectives, modulations)

    def _forward_features(self, frames: Tensor, scan_ids: Sequence[str], state: CoreState | None,
                          perspectives: Tensor | None, modulations: Tensor | None) -> tuple[Tensor, CoreState]:
        batch, frames_n = frames.shape[:2]
        _check_behaviour_shape("perspectives", perspectives, batch, frames_n)
        _check_behaviour_shape("modulations", modulations, batch, frames_n)
        state = self.initial_state(batch) if state is None else state
        behaviour = state.modulation.clone() if state.modulation is not None else None
        if behaviour is None and modulations is not None and bool(modulations.ne(0).any()):
            behaviour = ModulationState.inactive(batch, frames.device)
        dtype = frames.dtype if frames.is_floating_point() else torch.float32  # float frames: a stimulus in [0, 255]
        retina = frames.new_empty((batch, 1, frames_n, 128, 192), dtype=dtype)
        drive = retina.new_empty(batch, frames_n, 4, 256)
        for sid in dict.fromkeys(scan_ids):
            rows = torch.tensor([b for b, s in enumerate(scan_ids) if s == sid], device=frames.device)
            front = self._front_end(sid)
            pixels = pixels_to_unit(frames[rows]).reshape(len(rows) * frames_n, 1, 144, 256)
            eye = None if perspectives is None else perspectives[rows].reshape(len(rows) * frames_n, 2)
            warped = front.perspective(pixels, eye).view(len(rows), frames_n, 128, 192)
            retina[rows] = warped[:, None].to(retina.dtype)  # (autocast may lower the precision)
            modulation = front.modulation.sequence(state.frame, state.frame + frames_n)  # (T, 64)
            drive[rows] = self.core.recurrent.drive(modulation)[None].to(drive.dtype)
            if behaviour is not None:
                self._behaviour_drive(front, rows, state.frame, modulations, behaviour, drive)
        features, state_after = self.core(retina, drive, state)
        return features, dataclasses.replace(state_after, modulation=behaviour)

    def _behaviour_drive(self, front: ScanFrontEnd, rows: Tensor, frame: int, modulations: Tensor | None,
                         behaviour: ModulationState, drive: Tensor) -> None:
        """Overwrite ``drive`` (and update ``behaviour``) for the videos in ``rows`` that are off the default
        modulation trajectory: those with a non-zero input now or earlier."""
        frames_n = drive.shape[1]
        given = modulations[rows] if modulations is not None else drive.new_zeros(len(rows), frames_n, 2)
        active = behaviour.active[rows] | given.ne(0).any(-1).any(-1)
        if not bool(active.any()):
            return
        moving = rows[active]
        start_hidden, start_cell = front.modulation.default_state(frame)  # for videos leaving the default now
        was_active = behaviour.active[moving][:, None, None]
        hidden = torch.where(was_active, behaviour.hidden[moving], start_hidden)
        cell = torch.where(was_active, behaviour.cell[moving], start_cell)
        outputs, hidden, cell = front.modulation.run(given[active], hidden, cell)
        drive[moving] = self.core.recurrent.drive(outputs).to(drive.dtype)
        behaviour.hidden[moving], behaviour.cell[moving], behaviour.active[moving] = hidden, cell, True

    def forward_readout(self, features: Tensor, scan_id: str, units: Tensor | None = None) -> Tensor:
        """Features (B, T, 512, 16, 24) -> responses (B, T, U) of ``scan_id`` (or of the ``units`` subset)."""
        batch, frames_n = features.shape[:2]
        flat = features.reshape(batch * frames_n, *features.shape[2:])
        with precision_mode(self.precision, self.device):
            responses = self._readout(scan_id)(flat, units)
        return responses.to(torch.promote_types(responses.dtype, torch.float32)).view(batch, frames_n, -1)

    def encode_chunks(self, frames: Tensor, scan_ids: Sequence[str], chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                      units: Mapping[str, Tensor] | None = None, perspectives: Tensor | None = None,
                      modulations: Tensor | None = None) -> Iterator[tuple[int, list[Tensor]]]:
        """Stream videos through the model chunk by chunk, carrying state across chunk boundaries.

        Args:
            frames: uint8 (B, T, 144, 256), on any device (each chunk is moved to the model's device).
            scan_ids: scan id of each video.
            chunk_frames: frames per chunk; memory grows with B * chunk_frames, results do not depend on it.
            units: optional per-scan readout index subsets.
            perspectives, modulations: optional behaviour inputs (B, T, 2) float32, on any device
                (see :meth:`forward_features`).
        Yields:
            (first frame index of the chunk, per-video responses [(T_chunk, U_b)]).
        """
        _check_behaviour_shape("perspectives", perspectives, *frames.shape[:2])
        _check_behaviour_shape("modulations", modulations, *frames.shape[:2])
        state = None
        for start in range(0, frames.shape[1], chunk_frames):
            chunk = frames[:, start:start + chunk_frames].to(self.device, non_blocking=True)
            eye, mod = (None if x is None else x[:, start:start + chunk_frames].to(self.device, torch.float32)
                        for x in (perspectives, modulations))
            features, state = self.forward_features(chunk, scan_ids, state, eye, mod)
            yield start, self._readouts_of(features, scan_ids, units)

    def _readouts_of(self, features: Tensor, scan_ids: Sequence[str], units: Mapping[str, Tensor] | None
                     ) -> list[Tensor]:
        responses: list[Tensor] = [features] * len(scan_ids)
        for sid in dict.fromkeys(scan_ids):
            rows = [b for b, s in enumerate(scan_ids) if s == sid]
            subset = None if units is None else units.get(sid)
            out = self.forward_readout(features[rows], sid, subset)
            for i, b in enumerate(rows):
                responses[b] = out[i]
        return responses

    def _front_end(self, scan_id: str) -> ScanFrontEnd:
        if scan_id not in self.front_ends:
            raise KeyError(f"scan {scan_id!r} is not loaded; loaded: {self.scan_ids}")
        return self.front_ends[scan_id]

    def _readout(self, scan_id: str) -> Readout:
        if scan_id not in self.readouts:
            raise KeyError(f"scan {scan_id!r} is not loaded; loaded: {self.scan_ids}")
        return self.readouts[scan_id]


def _check_behaviour_shape(name: str, value: Tensor | None, batch: int, frames: int) -> None:
    """Guard of the model call (inputs are validated at the edge, berg_ray.behaviour): (B, T, 2) or None."""
    if value is not None and tuple(value.shape) != (batch, frames, 2):
        raise ValueError(f"{name} has shape {tuple(value.shape)}; expected (B, T, 2) = ({batch}, {frames}, 2), one row "
                         "per frame of each video")
