"""The Triton feed-forward glue under Triton's interpreter against the torch ops (run by test_kernels_glue.py).

Run as its own process with TRITON_INTERPRET=1 (Triton reads it when the kernel module is imported, so it must
not leak into other tests): ``TRITON_INTERPRET=1 python -m tests.model.glue_interpreter_cases [--model]``. Prints
one JSON object: per case, the largest relative difference of the kernel's output from the torch path's. With
``--model`` it also runs the fixture's core on the accelerators' plan (computed on CPU) with kernels "triton" vs
"torch".
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from berg_ray.model.functional import gelu_padded, interleave_rows, pool_rows

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "wang2025-reference"


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest |got - want| / |want| (entries where want is 0 must be equal)."""
    got, want = got.double(), want.double()
    zero = want == 0
    if bool((got[zero] != 0).any()):
        return float("inf")
    return float(((got - want).abs()[~zero] / want.abs()[~zero]).max())


def unit_scaled(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest |got - want| / max(|want|, 1): GELU's form 0.5 x (1 + erf(x / sqrt 2)) (torch's, on CPU and CUDA,
    and the kernel's) rounds 1 + erf to float32, so in the negative tail, where GELU(x) -> 0, every implementation's
    relative error grows (to ~3% at x = -5 for both torch's CPU GELU and the kernel, vs the exact value) while the
    absolute error stays at float32 rounding of values of order 1, which is what the next conv sees."""
    got, want = got.double(), want.double()
    return float(((got - want).abs() / want.abs().clamp(min=1.0)).max())


def gelu_cases(gen: torch.Generator) -> dict[str, float]:
    """[history, GELU(x)]: channels-last x and a strided history slice (a batch slice of a larger state, as the
    core passes), a contiguous (NCDHW) x, and float16 (computed in float32, rounded once, like torch's). Relative
    differences scaled by max(|want|, 1) (``unit_scaled``); the history frames must be copied bit for bit."""
    from berg_ray.model.kernels.glue_triton import gelu_padded as fused

    x = 3 * torch.randn(2, 8, 3, 4, 6, generator=gen)
    state = torch.randn(3, 8, 2, 4, 6, generator=gen).contiguous(memory_format=torch.channels_last_3d)
    history = state[1:]
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    got = fused(x_cl, history)
    half = fused(x_cl.half(), history.half())
    results = {"gelu_float32": unit_scaled(got, gelu_padded(x_cl, history)),
               "gelu_contiguous_input": unit_scaled(fused(x, history), gelu_padded(x, history)),
               "gelu_float16": unit_scaled(half, gelu_padded(x_cl.half(), history.half())),
               "gelu_float16_vs_float32": unit_scaled(half, gelu_padded(x_cl.half().float(), history.half().float()))}
    results["gelu_channels_last_out"] = float(got.is_contiguous(memory_format=torch.channels_last_3d))
    results["gelu_history_exact"] = float(torch.equal(got[:, :, :2], history))
    return results


def pool_cases(gen: torch.Generator) -> dict[str, float]:
    """Pooled + interleaved z of the three blocks' shapes (scaled down: 4x6 positions, 2 images): pool 2 with 1 and
    2 slots of 32 channels, pool 1 with 4 slots; 65 output rows in one case (a partial row block); float16."""
    from berg_ray.model.kernels.glue_triton import pool_interleave

    results = {}
    for name, (images, height, width, pool, slots) in {
            "pool2_slots1": (2, 4, 6, 2, 1), "pool2_slots2": (2, 4, 6, 2, 2), "pool1_slots4": (1, 5, 13, 1, 4),
            "pool2_partial": (5, 6, 26, 2, 2)}.items():
        rows = images * height * width
        parts = [torch.randn(rows, 32 * slots, generator=gen) for _ in range(3)]
        want = interleave_rows([pool_rows(p, height, width, pool) if pool > 1 else p for p in parts], slots)
        results[name] = relative(pool_interleave(parts, height, width, pool, slots), want)
        if name == "pool2_slots2":
            half = [p.half() for p in parts]
            want = interleave_rows([pool_rows(p, height, width, pool) for p in half], slots)
            results["pool2_float16"] = relative(pool_interleave(half, height, width, pool, slots), want)
    return results


def model_case() -> dict[str, float]:
    """The fixture's core, one video, 3 frames, on the accelerators' plan (one pass, batched row ops, one 3-D conv
    per temporal conv) with kernels "triton" vs "torch": the core output's largest difference relative to its
    largest magnitude (and, for information, elementwise)."""
    import berg_ray.model.core as core
    import berg_ray.model.recurrent as recurrent
    from berg_ray.config import RELEASE_SUBDIR, WEIGHTS_SUBDIR
    from berg_ray.model.core import VideoCore
    from berg_ray.model.kernels import glue_triton

    # the interpreter's cost is per program: large tiles keep the whole core within seconds (same results: every
    # element is computed alone, whatever the tile)
    glue_triton.DEFAULT_LAUNCH = glue_triton.LaunchConfig(block_gelu=1 << 18, block_rows=1 << 12)
    core.pass_shape = lambda device, batch: (batch, 8)
    core.batched_row_ops = recurrent.batched_row_ops = lambda device: True
    core.temporal_pairs = lambda device: False
    weights = FIXTURE_DIR / "berg" / RELEASE_SUBDIR / WEIGHTS_SUBDIR
    video_core = VideoCore(torch.load(weights / "params_core.pt", weights_only=True))
    gen = torch.Generator().manual_seed(3)
    retina = torch.rand(1, 1, 3, 128, 192, generator=gen)
    drive = 0.1 * torch.randn(1, 3, 4, 256, generator=gen)
    outputs = {}
    with torch.inference_mode():
        for kernels in ("torch", "triton"):
            video_core.feedforward.kernels = kernels  # set directly: set_kernels refuses the CPU
            state = video_core.initial_state(1)
            first, state = video_core(retina[:, :, :2], drive[:, :2], state)  # history carried into a 2nd chunk
            second, _ = video_core(retina[:, :, 2:], drive[:, 2:], state)
            outputs[kernels] = torch.cat([first, second], dim=1)
    got, want = outputs["triton"].double(), outputs["torch"].double()
    return {"model_core_output": float((got - want).abs().max() / want.abs().max()),
            "model_core_output_elementwise": relative(got, want)}


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        print("error: run with TRITON_INTERPRET=1", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(0)
    results = {**gelu_cases(gen), **pool_cases(gen)}
    if "--model" in sys.argv[1:]:
        results.update(model_case())
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")  # the interpreter's masked-off lanes may compute on garbage
    raise SystemExit(main())
