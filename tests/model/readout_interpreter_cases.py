"""The fused Triton readout under Triton's interpreter against the torch readout (run by test_kernels_readout.py).

Run as its own process with TRITON_INTERPRET=1 (Triton reads it when the kernel module is imported, so it must
not leak into other tests): ``TRITON_INTERPRET=1 python -m tests.model.readout_interpreter_cases``. Prints one
JSON object: per case, the largest relative difference of the kernel's responses from the reference's.
"""

from __future__ import annotations

import json
import os
import sys

import torch

from berg_ray.config import FEATURE_HEIGHT, FEATURE_WIDTH, N_STREAMS
from berg_ray.model.readout import Readout, _responses

CHANNELS = 128


def edge_positions() -> torch.Tensor:
    """Positions on the grid's border and corners (+-1) and on exact cell edges (integer unnormalised x / y)."""
    edge_x = (2 * torch.tensor([0.0, 5.0, FEATURE_WIDTH - 1.0]) + 1) / FEATURE_WIDTH - 1
    edge_y = (2 * torch.tensor([0.0, 7.0, FEATURE_HEIGHT - 1.0]) + 1) / FEATURE_HEIGHT - 1
    corners = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 0.3], [-0.2, -1.0]])
    cell_edges = torch.stack([edge_x, edge_y], dim=1)  # (0,0), (5,7), (23,15) exactly on grid points
    return torch.cat([corners, cell_edges, torch.tensor([[edge_x[1], 0.11], [-0.43, edge_y[1]]])])


def random_readout(gen: torch.Generator) -> Readout:
    """A readout of 39 units: 11 at borders / cell edges, 28 clustered in 2 cells (so groups hold several units)."""
    edges = edge_positions()
    clustered = torch.cat([torch.tensor([0.10, -0.20]) + 0.03 * torch.rand(16, 2, generator=gen),
                           torch.tensor([-0.62, 0.45]) + 0.03 * torch.rand(12, 2, generator=gen)])
    positions = torch.cat([edges, clustered]).clamp(-1, 1)
    units = positions.shape[0]
    params = {"readout.position.mu": torch.atanh(positions.clamp(-1 + 1e-7, 1 - 1e-7))}
    for s in range(N_STREAMS):
        params[f"readout.feature.weights.{s}"] = 0.05 * torch.randn(units, 1, CHANNELS, generator=gen)
        params[f"readout.biases.{s}"] = 0.1 * torch.randn(units, 1, generator=gen)
    readout = Readout(params)
    readout.positions[:edges.shape[0]] = edges  # exactly (tanh(atanh(p)) may move p by an ulp)
    return readout


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float(((got.double() - want.double()).abs() / want.double().abs()).max())


def torch_path(readout: Readout, features: torch.Tensor, units: torch.Tensor | None = None) -> torch.Tensor:
    """The sampling form (grid_sample + per-unit dot): the accelerators' torch path, on float32 features."""
    positions, weights, biases = readout.positions, readout.weights, readout.biases
    if units is not None:
        positions, weights, biases = positions[units], weights[:, :, units], biases[:, units]
    return _responses(features.float(), positions, weights, biases)


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        print("error: run with TRITON_INTERPRET=1", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(0)
    readout = random_readout(gen)
    readout.kernels = "triton"  # set directly: EncodingModel.set_kernels refuses the CPU (no interpreter there)
    features = torch.randn(37, N_STREAMS * CHANNELS, FEATURE_HEIGHT, FEATURE_WIDTH, generator=gen)  # 2 frame blocks
    subset = torch.tensor([38, 0, 1, 17, 6, 25, 3])
    few = features[:3]
    half = few.half()
    channels_last = few.contiguous(memory_format=torch.channels_last)
    results = {
        "float32": relative(readout(features), torch_path(readout, features)),
        "subset": relative(readout(few, subset), torch_path(readout, few, subset)),
        "channels_last": relative(readout(channels_last), torch_path(readout, few)),
        "float16_vs_upcast": relative(readout(half), torch_path(readout, half)),
        "float16_vs_float32": relative(readout(half), torch_path(readout, few)),
        "bfloat16_vs_upcast": relative(readout(few.bfloat16()), torch_path(readout, few.bfloat16())),
        "all_units_after_subset": relative(readout(few), torch_path(readout, few)),
        "plans": sorted(readout._plans) + [f"subset:{k}" for k in sorted(readout._subset_plans)],
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
