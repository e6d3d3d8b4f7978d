"""The published release's state-dict keys and shapes (wang2025-model-spec.md §1.2), as pure functions.

The release reader checks every file against these tables (no missing key, no unknown key, every shape exact),
and the demo-release writer generates exactly these keys, so both follow one definition.
"""

from __future__ import annotations

import torch

from berg_ray.config import N_STREAMS

Shape = tuple[int, ...]
_BLOCKS = ((32, 1), (64, 2), (128, 4))  # (channels C, groups G) of the three dense blocks
_REC_GROUPS, _REC_WIDTH = 8, 32
BOOL_KEYS = frozenset({"core.recurrent.proj_x.0.mask"})  # the one non-float32 entry


def _per_stream(layer: str, weight: Shape, affine: Shape | None, gains: bool = True, biases: bool = True,
                streams: int = N_STREAMS) -> dict[str, Shape]:
    """Keys of one layer for every stream: weights, and gains / biases of shape ``affine`` where present."""
    shapes: dict[str, Shape] = {}
    for s in range(streams):
        shapes[f"{layer}.weights.{s}"] = weight
        if gains and affine is not None:
            shapes[f"{layer}.gains.{s}"] = affine
        if biases and affine is not None:
            shapes[f"{layer}.biases.{s}"] = affine
    return shapes


def core_key_shapes() -> dict[str, Shape]:
    """Every key of ``params_core.pt`` (250) and its shape."""
    ff, rec = "core.feedforward", "core.recurrent"
    shapes = _per_stream(f"{ff}.inputs.0", (32, 1, 1, 6, 6), (1, 32), gains=False)
    shapes |= _per_stream(f"{ff}.inputs.1", (64, 96, 1, 1, 1), (2, 32))
    shapes |= _per_stream(f"{ff}.inputs.2", (128, 192, 1, 1, 1), (4, 32))
    for b, (channels, groups) in enumerate(_BLOCKS):
        width = channels // groups
        for layer in (0, 1):
            shapes |= _per_stream(f"{ff}.blocks.{b}.convs.{layer}", (channels, width, 3, 3, 3), (groups, width))
        shapes |= _per_stream(f"{ff}.blocks.{b}.skips.1", (channels, width, 1, 1, 1), (groups, width), biases=False)
    shapes |= _per_stream(f"{ff}.out", (128, 384, 1, 1, 1), (1, 128))
    shapes |= _per_stream(f"{rec}.conv", (512, 64, 1, 3, 3), None)
    shapes |= {f"{rec}.scales.{s}": (_REC_GROUPS, 64) for s in range(N_STREAMS)}
    shapes[f"{rec}.proj_x.0.mask"] = (_REC_GROUPS, _REC_GROUPS, 1, 1)
    shapes[f"{rec}.proj_x.0.zero"] = (_REC_GROUPS, _REC_GROUPS, _REC_WIDTH, _REC_WIDTH)
    shapes |= _per_stream(f"{rec}.proj_x.0", (_REC_GROUPS, _REC_GROUPS - 1, _REC_WIDTH, _REC_WIDTH), (8, 32),
                          biases=False)
    shapes |= _per_stream(f"{rec}.proj_x.1", (256, 128, 1, 1, 1), (8, 32))
    shapes |= _per_stream(f"{rec}.proj_x.2", (256, 16, 1, 1, 1), (8, 32), biases=False)
    for name in "qkv":
        shapes |= _per_stream(f"{rec}.proj_{name}", (512, 64, 1, 1, 1), None)
    for gate in "ifgo":
        shapes |= _per_stream(f"{rec}.proj_{gate}", (256, 128, 1, 1, 1), (8, 32))
    shapes |= _per_stream(f"{rec}.out", (128, 256, 1, 1, 1), (1, 128))
    return shapes


def scan_key_shapes(n_units: int) -> dict[str, Shape]:
    """Every key of ``params_{session}_{scan}.pt`` (88) and its shape, for a scan of ``n_units`` units."""
    p = "perspective"
    shapes: dict[str, Shape] = {f"{p}.monitor.{name}": (3,) for name in ("center", "angle", "center_std", "angle_std")}
    shapes |= {f"{p}.monitor_pixel.{name}": () for name in ("power", "scale", "offset")}
    shapes[f"{p}.retina.grid"] = (128, 192, 3)
    shapes |= {f"{p}.retina_pixel.{name}": (1,) for name in ("logit", "scale", "offset")}
    shapes |= _per_stream(f"{p}.mlp.linears.0", (16, 2, 1, 1, 1), (1, 16), gains=False, streams=1)
    for layer in (1, 2):
        shapes |= _per_stream(f"{p}.mlp.linears.{layer}", (16, 16, 1, 1, 1), (1, 16), streams=1)
    shapes |= _per_stream(f"{p}.mlp.linears.3", (3, 16, 1, 1, 1), (1, 3), streams=1)
    shapes |= _per_stream("modulation.mlp.linears.0", (16, 2, 1, 1, 1), (1, 16), gains=False)
    for gate in "ifgo":
        shapes |= _per_stream(f"modulation.lstm.proj_{gate}", (16, 32, 1, 1, 1), (1, 16))
    shapes["readout.position.mu"] = (n_units, 2)
    shapes["readout.position.sigma"] = (n_units, 2, 2)
    shapes |= {f"readout.feature.weights.{s}": (n_units, 1, 128) for s in range(N_STREAMS)}
    shapes |= {f"readout.biases.{s}": (n_units, 1) for s in range(N_STREAMS)}
    return shapes


def expected_dtype(key: str) -> torch.dtype:
    """dtype of a release entry: bool for the inter-group mask, float32 for everything else."""
    return torch.bool if key in BOOL_KEYS else torch.float32
