"""End-to-end frames/s by batch size (issue 20 B): section ``throughput`` of benchmarks/device_kernels.py.

The whole model through the library's inference path (encode_videos, chunks of 32 frames) on a generated release
of the released unit count, B videos x T frames (B in 8, 32, 64, 128 and T = 300 on a GPU), per precision
(bfloat16 first, then float32 with TF32 off) and variant: ``torch`` (the default), ``triton`` (readout + glue
kernels) and ``triton_graphs`` (with the recurrent loop replayed as CUDA graphs). Each run is preceded by a
warm-up of 44 frames (one 32-frame chunk and the 12-frame tail: every pass shape compiled, planned, captured) and
reports frames/s, the peak of torch.cuda.max_memory_allocated and its largest relative difference from the torch
variant's responses (goal 1e-5 in float32).

The section keeps to a time budget: before each run it estimates the run's seconds from the frames/s already
measured (per precision and variant: the nearest smaller batch, else PRIOR_FPS) and skips the run (a ``skipped``
line) if the section would exceed the budget; a ``budget`` line reports the estimate and the time spent. On CPU
(Triton's interpreter, a smoke run) only the torch variant runs, at B=1 x 1 frame.
"""

from __future__ import annotations

import time

import numpy as np
import torch

BATCHES = {"cuda": (8, 32, 64, 128), "cpu": (1,)}
FRAMES = {"cuda": 300, "cpu": 1}  # (CPU: the interpreter, a smoke run)
WARMUP_FRAMES = 44  # a 32-frame chunk and the 12-frame tail of T = 300
PRIOR_FPS = {"bfloat16": 4319.0, "float32": 2055.0}  # H200, B=32, kernels torch (benchmarks/RESULTS.md)
VARIANTS = (("torch", False), ("triton", False), ("triton_graphs", True))


def configure(model, variant: str, graphs: bool, device: torch.device) -> None:
    """Kernels and CUDA graphs through the model's switches (on CPU, where they refuse Triton, set directly)."""
    kernels = "torch" if variant == "torch" else "triton"
    if device.type == "cuda":
        model.set_kernels(kernels).set_cuda_graphs(graphs)
        return
    for readout in model.readouts.values():
        readout.kernels = kernels
    model.core.feedforward.kernels = kernels


def throughput_section(emit, device: torch.device, model, scan: str, relative, budget_s: float) -> None:
    """See the module docstring; ``model`` is a loaded EncodingModel of one scan."""
    from berg_ray.inference import encode_videos

    started = time.perf_counter()
    frames = FRAMES[device.type]
    measured: dict[tuple[str, str], list[tuple[int, float]]] = {}
    estimate_total = 0.0
    precisions = ("bfloat16", "float32") if device.type == "cuda" else ("float32",)
    for precision in precisions:
        model.set_precision(precision)
        for batch in BATCHES[device.type]:
            videos = torch.randint(0, 256, (batch, frames, 144, 256), dtype=torch.uint8,
                                   generator=torch.Generator().manual_seed(batch)).numpy()
            reference = None
            for variant, graphs in VARIANTS:
                if variant != "torch" and device.type != "cuda":
                    emit("throughput", precision=precision, batch=batch, variant=variant, skipped=True,
                         reason="CUDA graphs need a CUDA GPU" if graphs else
                         "on CPU the end_to_end section runs the kernels (interpreter time is no measure)")
                    continue
                earlier = [fps for b, fps in measured.get((precision, variant), []) if b <= batch]
                fps = earlier[-1] if earlier else PRIOR_FPS[precision] * min(1.0, batch / 32)
                estimate = batch * (frames + WARMUP_FRAMES) / fps + 5.0  # + loading, capture
                if time.perf_counter() - started + estimate > budget_s:
                    emit("throughput", precision=precision, batch=batch, variant=variant, skipped=True,
                         reason=f"estimated {estimate:.0f} s would exceed the {budget_s:.0f} s budget")
                    continue
                estimate_total += estimate
                configure(model, variant, graphs, device)
                if device.type == "cuda":
                    encode_videos(model, videos[:, :WARMUP_FRAMES], [scan] * batch)
                    torch.cuda.synchronize(device)
                    torch.cuda.reset_peak_memory_stats(device)
                begin = time.perf_counter()
                responses = np.stack(encode_videos(model, videos, [scan] * batch))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds = time.perf_counter() - begin
                measured.setdefault((precision, variant), []).append((batch, batch * frames / seconds))
                reference = responses if variant == "torch" else reference
                diff = None if reference is None else relative(torch.from_numpy(responses), torch.from_numpy(reference))
                emit("throughput", precision=precision, batch=batch, frames=frames, variant=variant,
                     fps=batch * frames / seconds, seconds=seconds, estimated_s=estimate, max_rel_diff_vs_torch=diff,
                     goal=1e-5 if precision == "float32" else 1e-4 if device.type == "cuda" else 1e-2,
                     peak_memory_gb=torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None)
                del responses
            del videos, reference
            configure(model, "torch", False, device)
    emit("budget", of="throughput", budget_s=budget_s, estimated_s=estimate_total,
         spent_s=time.perf_counter() - started)
