"""Per-scan modulation (spec §3.5): a small MLP + LSTM per stream on the behaviour input ``modulations``.

At the default input (0, 0) its output depends only on the frame index, so one sequence serves every video of the
scan; it is computed on demand and cached (with the LSTM cell, so that a video can leave the default trajectory at
any frame). Videos with a non-zero input run the LSTM themselves, with their state carried in a
:class:`ModulationState`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from berg_ray.config import N_STREAMS
from berg_ray.model.functional import gelu_gamma, weight_norm

_GATES = ("i", "f", "g", "o")
WIDTH = 16  # LSTM features per stream


@dataclass
class ModulationState:
    """LSTM state of videos that left the default trajectory.

    Attributes:
        hidden, cell: (B, S, 16) LSTM state after the last frame run (meaningful where ``active``).
        active: (B,) bool, True for videos that have had a non-zero modulation input.
    """

    hidden: Tensor
    cell: Tensor
    active: Tensor

    @classmethod
    def inactive(cls, batch: int, device: torch.device) -> "ModulationState":
        zeros = torch.zeros(batch, N_STREAMS, WIDTH, device=device)
        return cls(zeros, zeros.clone(), torch.zeros(batch, dtype=torch.bool, device=device))

    def clone(self) -> "ModulationState":
        return ModulationState(self.hidden.clone(), self.cell.clone(), self.active.clone())


def lstm_weights(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Per-stream weights, stacked over streams S.

    Returns:
        mlp_w (S, 16, 2) raw input weights (no weight normalisation), mlp_b (S, 16), lstm_w (S, 64, 32) gate
        weights with rows [i, f, g, o] x 16 and columns [input 16, hidden 16], lstm_b (S, 64).
    """
    mlp_w, mlp_b, lstm_w, lstm_b = [], [], [], []
    for s in range(N_STREAMS):
        mlp_w.append(params[f"modulation.mlp.linears.0.weights.{s}"].flatten(1))
        mlp_b.append(params[f"modulation.mlp.linears.0.biases.{s}"].reshape(-1))
        lstm_w.append(torch.cat([weight_norm(params[f"modulation.lstm.proj_{g}.weights.{s}"],
                                             params[f"modulation.lstm.proj_{g}.gains.{s}"]).flatten(1)
                                 for g in _GATES]))
        lstm_b.append(torch.cat([params[f"modulation.lstm.proj_{g}.biases.{s}"].reshape(-1) for g in _GATES]))
    return {"mlp_w": torch.stack(mlp_w), "mlp_b": torch.stack(mlp_b),
            "lstm_w": torch.stack(lstm_w), "lstm_b": torch.stack(lstm_b)}


def lstm_inputs(mlp_w: Tensor, mlp_b: Tensor, behaviour: Tensor) -> Tensor:
    """Behaviour (..., 2) -> LSTM input e (..., S, 16) = gelu-γ(W_s x + b_s) per stream."""
    return gelu_gamma(torch.einsum("soi,...i->...so", mlp_w, behaviour) + mlp_b)


def lstm_step(inputs: Tensor, hidden: Tensor, cell: Tensor, weights: Tensor, biases: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step per stream: inputs, hidden, cell (..., S, 16) -> (hidden, cell) after the step."""
    xi = torch.cat([inputs, hidden], dim=-1)  # (..., S, 32): input first, then hidden
    gates = torch.matmul(weights, xi[..., None])[..., 0] + biases  # (..., S, 64)
    i, f, g, o = gates.split(WIDTH, dim=-1)
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(cell), cell


def modulation_sequence(inputs: Tensor, weights: Tensor, biases: Tensor, n_frames: int) -> tuple[Tensor, Tensor]:
    """Run the LSTM for ``n_frames`` from zero state on a constant input (S, 16).

    Returns:
        (hidden (T, S*16), cell (T, S*16)), stream-major; hidden is the modulation output m_t.
    """
    hidden, cell = inputs.new_zeros(inputs.shape), inputs.new_zeros(inputs.shape)
    hiddens, cells = [], []
    for _ in range(n_frames):
        hidden, cell = lstm_step(inputs, hidden, cell, weights, biases)
        hiddens.append(hidden.reshape(-1))
        cells.append(cell.reshape(-1))
    if not hiddens:
        empty = inputs.new_zeros(0, inputs.numel())
        return empty, empty.clone()
    return torch.stack(hiddens), torch.stack(cells)


def modulation_run(inputs: Tensor, hidden: Tensor, cell: Tensor, weights: Tensor, biases: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Run the LSTM of B videos over T frames: inputs (B, T, S, 16), state (B, S, 16) ->
    (outputs (B, T, S*16), hidden, cell)."""
    outputs = []
    for t in range(inputs.shape[1]):
        hidden, cell = lstm_step(inputs[:, t], hidden, cell, weights, biases)
        outputs.append(hidden.flatten(1))
    return torch.stack(outputs, dim=1), hidden, cell


class Modulation(nn.Module):
    """Modulation of one scan. ``sequence(t0, t1)``: default output of frames t0..t1-1; ``run``: any input."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        for name, tensor in lstm_weights(params).items():
            self.register_buffer(name, tensor)
        self.register_buffer("inputs", gelu_gamma(self.mlp_b))  # the LSTM input at behaviour 0: W @ 0 vanishes
        self._cache: tuple[Tensor, Tensor] | None = None
        self._lock = threading.Lock()

    def _default(self, stop: int) -> tuple[Tensor, Tensor]:
        """The cached default (hidden, cell) sequences, (L >= stop, S*16) each, on the module's device."""
        with self._lock:
            cache = self._cache
            if cache is None or cache[0].shape[0] < stop or cache[0].device != self.inputs.device:
                length = max(stop, 2 * (cache[0].shape[0] if cache is not None else 0), 300)
                with torch.autocast(self.inputs.device.type, enabled=False):  # cached: always float32
                    cache = modulation_sequence(self.inputs, self.lstm_w, self.lstm_b, length)
                self._cache = cache
        return cache

    def sequence(self, start: int, stop: int) -> Tensor:
        """Default modulation output for frames [start, stop): (stop - start, S*16) on the module's device."""
        return self._default(stop)[0][start:stop]

    def default_state(self, frame: int) -> tuple[Tensor, Tensor]:
        """(hidden, cell), (S, 16) each, of the default trajectory before frame ``frame`` (zeros at frame 0)."""
        if frame == 0:
            return self.inputs.new_zeros(self.inputs.shape), self.inputs.new_zeros(self.inputs.shape)
        hidden, cell = self._default(frame)
        return hidden[frame - 1].view_as(self.inputs), cell[frame - 1].view_as(self.inputs)

    def run(self, behaviour: Tensor, hidden: Tensor, cell: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Behaviour (B, T, 2) from state (B, S, 16) x 2 -> (outputs (B, T, S*16), hidden, cell), float32."""
        with torch.autocast(behaviour.device.type, enabled=False):
            inputs = lstm_inputs(self.mlp_w, self.mlp_b, behaviour.float())
            return modulation_run(inputs, hidden.float(), cell.float(), self.lstm_w, self.lstm_b)

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - drop the cache when moved to another device/dtype
        self._cache = None
        return super()._apply(fn, recurse)
