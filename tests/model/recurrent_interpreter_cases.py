"""The fused Triton recurrent step under Triton's interpreter against ``Recurrent._step`` (run by
test_kernels_recurrent.py).

Run as its own process with TRITON_INTERPRET=1 (Triton reads it when the kernel module is imported, so it must
not leak into other tests): ``TRITON_INTERPRET=1 python -m tests.model.recurrent_interpreter_cases``. The cell has
the real shapes (fixture release weights: random, released layout); the interpreter is slow, so a few frames of
1-2 videos. Prints one JSON object: per case, the largest difference of the kernel's hidden states and cell from
the reference's, relative to the reference's largest magnitude (``scaled``), and the case's seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from berg_ray.model.recurrent import POSITIONS, REC_SLOTS, REC_WIDTH, Recurrent

CORE = (Path(__file__).resolve().parents[1] / "fixtures" / "wang2025-reference" / "berg" / "encoding_models"
        / "modality-calcium_2p" / "train_dataset-wang_2025" / "model-3DCNN" / "encoding_models_weights"
        / "params_core.pt")


def fixture_recurrent() -> Recurrent:
    """The recurrent cell of the fixture release (random weights of the released shapes)."""
    params = torch.load(CORE, weights_only=True)
    return Recurrent({k: v for k, v in params.items() if k.startswith("core.recurrent.")})


def scaled(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want| (elementwise ratios are meaningless where a state crosses zero)."""
    return float((got.double() - want.double()).abs().max() / want.double().abs().max())


def run_frames(recurrent: Recurrent, kernels: str, feed: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor,
               mixing: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The inference loop of ``Recurrent.forward`` over feed (T, S*256, B*P): hidden states (T, 32, 32, B*P) and
    the final cell (float32). ``mixing=False`` zeroes the inter-group map (the recurrent input is the feed)."""
    frames, cols = feed.shape[0], feed.shape[-1]
    batch = cols // POSITIONS
    recurrent.kernels = kernels  # set directly: EncodingModel.set_kernels refuses the CPU (no interpreter there)
    buffers = recurrent.buffers(batch, frames, feed.dtype)
    if not mixing:
        buffers.weights[0] = torch.zeros_like(buffers.weights[0])  # a new tensor: .to() may return the buffer
    buffers.feed.copy_(feed)
    cell = cell.clone()
    steps = buffers.feed.view(frames, -1, batch, POSITIONS)
    for t in range(frames):
        previous = buffers.hiddens[t - 1] if t else hidden.to(feed.dtype)
        recurrent._step(steps[t], previous, cell, buffers, buffers.hiddens[t])
    return buffers.hiddens.clone(), cell


def kernel_frames(recurrent: Recurrent, feed: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor,
                  slots: list[int], launch) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernels alone on a few slots over T frames, feed as the recurrent input (no inter-group map), the
    state fed back: hidden states (T, 32, 32, B*P) and the final cell, zero outside ``slots``."""
    from berg_ray.model.kernels.recurrent_triton import step_kernels

    ids = torch.tensor(slots, dtype=torch.int32)
    hiddens = torch.zeros(feed.shape[0], *hidden.shape, dtype=feed.dtype)
    cell, hidden = cell.clone(), hidden.to(feed.dtype)
    for t in range(feed.shape[0]):
        step_kernels(feed[t].view(hidden.shape), hidden, cell, hiddens[t], recurrent.kernel_weights(), launch, ids)
        hidden = hiddens[t]
    keep = torch.zeros(cell.shape[0], 1, 1, dtype=torch.bool)
    keep[slots] = True
    return hiddens * keep, cell * keep


def state(gen: torch.Generator, frames: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random recurrent input (T, S*256, B*P), hidden and cell (32, 32, B*P)."""
    cols = batch * POSITIONS
    feed = torch.randn(frames, 4 * 256, cols, generator=gen)
    hidden = 0.5 * torch.rand(REC_SLOTS, REC_WIDTH, cols, generator=gen) - 0.25
    cell = torch.randn(REC_SLOTS, REC_WIDTH, cols, generator=gen)
    return feed, hidden, cell


def on_slots(x: torch.Tensor, slots: list[int]) -> torch.Tensor:
    return x[..., slots, :, :]


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        print("error: run with TRITON_INTERPRET=1", file=sys.stderr)
        return 2
    from berg_ray.model.kernels import recurrent_triton

    # whole-grid blocks: a program per (video, slot) (the interpreter runs programs one by one, ~1 s each)
    wide = recurrent_triton.LaunchConfig(block_p=512, block_q=512, block_k=512)
    gen = torch.Generator().manual_seed(0)
    recurrent = fixture_recurrent()
    results, clock = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        results[f"{name}_seconds"] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    with torch.no_grad():
        # Recurrent._step with kernels="triton" (inter-group matmul + both kernels, every slot), 1 video
        recurrent_triton.DEFAULT_LAUNCH = wide
        feed, hidden, cell = state(gen, 1, 1)
        want = run_frames(recurrent, "torch", feed, hidden, cell)
        got = run_frames(recurrent, "triton", feed, hidden, cell)
        results["step_hidden"], results["step_cell"] = scaled(got[0], want[0]), scaled(got[1], want[1])
        lap("step")
        # the kernels over 3 frames of 2 videos, state fed back, first and last slot
        slots = [0, 31]
        feed, hidden, cell = state(gen, 3, 2)
        want = [on_slots(x, slots) for x in run_frames(recurrent, "torch", feed, hidden, cell, mixing=False)]
        got = [on_slots(x, slots) for x in kernel_frames(recurrent, feed, hidden, cell, slots, wide)]
        results["frames_hidden"], results["frames_cell"] = scaled(got[0], want[0]), scaled(got[1], want[1])
        results["frames_moved"] = scaled(want[0][2], want[0][0])  # the state did change between frames
        lap("frames")
        # the GPU's launch configuration (several position and key blocks: the running softmax), one slot
        slots = [5]
        feed, hidden, cell = state(gen, 1, 1)
        want = [on_slots(x, slots) for x in run_frames(recurrent, "torch", feed, hidden, cell, mixing=False)]
        got = [on_slots(x, slots) for x in kernel_frames(recurrent, feed, hidden, cell, slots,
                                                          recurrent_triton.LaunchConfig())]
        results["gpu_launch_hidden"], results["gpu_launch_cell"] = scaled(got[0], want[0]), scaled(got[1], want[1])
        lap("gpu_launch")
        # float16 activations: the kernels' reads vs the same values upcast; and vs the float32 reference
        slots = [0, 17]
        feed, hidden, cell = state(gen, 1, 1)
        half = kernel_frames(recurrent, feed.half(), hidden.half(), cell, slots, wide)
        upcast = kernel_frames(recurrent, feed.half().float(), hidden.half().float(), cell, slots, wide)
        want = run_frames(recurrent, "torch", feed, hidden, cell, mixing=False)
        results["float16_vs_upcast_hidden"] = scaled(on_slots(half[0], slots), on_slots(upcast[0].half(), slots))
        results["float16_vs_upcast_cell"] = scaled(on_slots(half[1], slots), on_slots(upcast[1], slots))
        results["float16_vs_float32_hidden"] = scaled(on_slots(half[0], slots), on_slots(want[0], slots))
        lap("float16")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
