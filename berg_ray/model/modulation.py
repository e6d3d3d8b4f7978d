"""Per-scan modulation (spec §3.5): a small LSTM on behaviour, whose input is zero at inference.

Its output then depends only on the frame index, so one sequence serves every video of the scan; it is computed
on demand and cached for the longest video seen.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from berg_ray.config import N_STREAMS
from berg_ray.model.functional import gelu_gamma, weight_norm

_GATES = ("i", "f", "g", "o")


def lstm_weights(params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(input e (S, 16), gate weights (S, 64, 32), gate biases (S, 64)); gate rows are [i, f, g, o] x 16."""
    inputs, weights, biases = [], [], []
    for s in range(N_STREAMS):
        inputs.append(gelu_gamma(params[f"modulation.mlp.linears.0.biases.{s}"].reshape(-1)))  # W @ 0 vanishes
        gate_w = [weight_norm(params[f"modulation.lstm.proj_{g}.weights.{s}"],
                              params[f"modulation.lstm.proj_{g}.gains.{s}"]).flatten(1) for g in _GATES]
        weights.append(torch.cat(gate_w))
        biases.append(torch.cat([params[f"modulation.lstm.proj_{g}.biases.{s}"].reshape(-1) for g in _GATES]))
    return torch.stack(inputs), torch.stack(weights), torch.stack(biases)


def modulation_sequence(inputs: Tensor, weights: Tensor, biases: Tensor, n_frames: int) -> Tensor:
    """Run the LSTM for ``n_frames`` from zero state; returns m (T, S*16), stream-major."""
    n_streams, width = inputs.shape
    hidden = inputs.new_zeros(n_streams, width)
    cell = inputs.new_zeros(n_streams, width)
    outputs = []
    for _ in range(n_frames):
        xi = torch.cat([inputs, hidden], dim=1)  # (S, 32): input first, then hidden
        gates = torch.bmm(weights, xi[:, :, None])[..., 0] + biases  # (S, 64)
        i, f, g, o = gates.split(width, dim=1)
        cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        outputs.append(hidden.reshape(-1))
    return torch.stack(outputs) if outputs else inputs.new_zeros(0, n_streams * width)


class Modulation(nn.Module):
    """Modulation of one scan at zero behavioural input; ``sequence(t0, t1)`` gives frames t0..t1-1."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        inputs, weights, biases = lstm_weights(params)
        self.register_buffer("inputs", inputs)
        self.register_buffer("weights", weights)
        self.register_buffer("biases", biases)
        self._cache: Tensor | None = None
        self._lock = threading.Lock()

    def sequence(self, start: int, stop: int) -> Tensor:
        """Modulation output for frames [start, stop): (stop - start, S*16) on the module's device."""
        with self._lock:
            cache = self._cache
            if cache is None or cache.shape[0] < stop or cache.device != self.inputs.device:
                length = max(stop, 2 * (cache.shape[0] if cache is not None else 0), 300)
                with torch.autocast(self.inputs.device.type, enabled=False):  # cached: always float32
                    cache = modulation_sequence(self.inputs, self.weights, self.biases, length)
                self._cache = cache
        return cache[start:stop]

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - drop the cache when moved to another device/dtype
        self._cache = None
        return super()._apply(fn, recurse)
