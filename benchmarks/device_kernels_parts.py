"""Time per part of the model, torch vs Triton (issue 20 B): section ``parts`` of benchmarks/device_kernels.py.

At B x chunk frames (32 x 32 on a GPU) per precision (float32 with TF32 off; bfloat16 autocast), each part on
inputs of its real shapes, in ms per call and us per video-frame, with CUDA-event timing (``time_ms``):

* ``readout``: the scan's readout on (B*T, 512, 16, 24) features, torch vs the fused kernel;
* ``recurrent``: ``Recurrent.forward`` over the chunk as a whole (feed, loop, projection), op by op vs replaying
  its CUDA graph (graphs.LoopGraph; GPU only); the fused step kernels are timed by their own section;
* ``glue``: per dense block, the 2 causal paddings with GELU and the pooling + interleave into z, torch ops vs
  glue_triton, with their largest difference (GELU relative to max(|value|, 1), pooling relative);
* ``convs``: the stem and the 6 temporal 3-D convs of one feed-forward pass (the same in both plans);
* ``feedforward``: one whole feed-forward pass (B videos x 256/B frames, the accelerators' pass), kernels torch
  vs triton, and the largest relative difference of its features.

On CPU (Triton's interpreter, a smoke run) only the recurrent part and the smallest block's glue run: the
interpreter's time says nothing, and the other parts run in the end_to_end and throughput sections.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK_SHAPES = ((128, 64, 96, 2, 4), (256, 32, 48, 2, 8), (512, 16, 24, 1, 16))  # (S*C, H, W, pool, slots)


def scaled(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest |got - want| / max(|want|, 1)."""
    got, want = got.double(), want.double()
    return float(((got - want).abs() / want.abs().clamp(min=1.0)).max())


def parts_section(emit, device: torch.device, sizes: dict, model, scan: str, time_ms, relative) -> None:
    """See the module docstring; ``model`` is a loaded EncodingModel, ``time_ms(fn, device, reps)`` -> (ms, result)."""
    from berg_ray.model import functional
    from berg_ray.model.graphs import LoopGraph
    from berg_ray.model.kernels import glue_triton
    from berg_ray.model.recurrent import POSITIONS, to_columns

    batch, frames, reps = sizes["batch"], sizes["chunk"], sizes["reps"]
    video_frames = batch * frames
    gen = torch.Generator().manual_seed(5)
    core, readout = model.core, model.readouts[scan]
    full = device.type == "cuda"
    for precision in ("float32", "bfloat16") if device.type == "cuda" else ("float32",):
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32

        def record(part: str, ms: dict, **extra) -> None:
            emit("parts", part=part, precision=precision, batch=batch, frames=frames,
                 **{f"{k}_ms": v for k, v in ms.items()},
                 **{f"{k}_us_per_frame": 1e3 * v / video_frames for k, v in ms.items()}, **extra)

        features = torch.randn(video_frames, 512, 16, 24, generator=gen).to(device)
        with torch.no_grad(), autocast:
            ms = {}
            for kernels in ("torch", "triton") if full else ():
                readout.kernels = kernels
                ms[kernels], _ = time_ms(lambda: readout(features), device, reps)
            readout.kernels = "torch"
        if full:
            record("readout", ms)

        rows = torch.randn(video_frames * POSITIONS, 512, generator=gen).to(device, dtype)
        drive = 0.1 * torch.randn(batch, frames, 4, 256, generator=gen).to(device)
        state = [0.5 * torch.randn(batch, 32, 32, POSITIONS, generator=gen).to(device) for _ in "hc"]
        out = torch.empty(batch, frames, 512, 16, 24, device=device)
        with torch.no_grad(), autocast:
            recurrent = core.recurrent
            buffers = recurrent.buffers(batch, frames, dtype)
            columns = [to_columns(s) for s in state]
            ms = {"torch": time_ms(lambda: recurrent(rows, drive, columns, buffers, out), device, reps)[0]}
            if device.type == "cuda":
                graph = LoopGraph(recurrent, batch, frames, dtype)
                ms["graph"], _ = time_ms(lambda: recurrent(rows, drive, columns, graph.buffers, out, graph), device,
                                         reps)
                del graph
            del buffers
        record("recurrent", ms)

        per_pass = max(1, 256 // batch) if device.type == "cuda" else frames
        glue = {"torch": 0.0, "triton": 0.0}
        for b, (channels, height, width, pool, slots) in enumerate(BLOCK_SHAPES):
            if not full and b < len(BLOCK_SHAPES) - 1:
                continue
            x = torch.randn(batch, channels, per_pass, height, width, generator=gen).to(device, dtype)
            x = x.contiguous(memory_format=torch.channels_last_3d)
            history = torch.randn(batch, channels, 2, height, width, generator=gen).to(device, dtype)
            parts = [torch.randn(batch * per_pass * height * width, channels, generator=gen).to(device, dtype)
                     for _ in range(3)]

            def pooled_torch():
                pooled = [functional.pool_rows(p, height, width, pool) for p in parts] if pool > 1 else parts
                return functional.interleave_rows(pooled, slots)

            with torch.no_grad():
                gelu_ms = {"torch": time_ms(lambda: functional.gelu_padded(x, history), device, reps),
                           "triton": time_ms(lambda: glue_triton.gelu_padded(x, history), device, reps)}
                pool_ms = {"torch": time_ms(pooled_torch, device, reps),
                           "triton": time_ms(lambda: glue_triton.pool_interleave(parts, height, width, pool, slots),
                                             device, reps)}
            for kernels in glue:
                glue[kernels] += 2 * gelu_ms[kernels][0] + pool_ms[kernels][0]
            emit("parts", part=f"glue_block{b}", precision=precision, batch=batch, frames=per_pass,
                 gelu_padded_ms={k: v[0] for k, v in gelu_ms.items()}, pool_interleave_ms={k: v[0] for k, v in
                                                                                          pool_ms.items()},
                 gelu_max_scaled_diff=scaled(gelu_ms["triton"][1], gelu_ms["torch"][1]),
                 pool_max_rel_diff=relative(pool_ms["triton"][1], pool_ms["torch"][1]))
            del x, history, parts
        pass_frames = batch * per_pass
        if not full:
            continue
        emit("parts", part="glue", precision=precision, batch=batch, frames=per_pass,
             **{f"{k}_us_per_frame": 1e3 * v / pass_frames for k, v in glue.items()})

        ff = core.feedforward
        retina = torch.rand(batch, 1, per_pass, 128, 192, generator=gen).to(device)
        with torch.no_grad(), autocast:
            history = ff.initial_history(batch)
            calls = conv_inputs(ff, batch, per_pass, device)
            conv_ms = time_ms(lambda: convs(calls), device, reps)[0]
            del calls
            ms, outputs = {}, {}
            for kernels in ("torch", "triton"):
                ff.kernels = kernels
                ms[kernels], outputs[kernels] = time_ms(lambda: ff(retina, history, 0)[0].clone(), device, reps)
            ff.kernels = "torch"
        emit("parts", part="convs", precision=precision, batch=batch, frames=per_pass, ms=conv_ms,
             us_per_frame=1e3 * conv_ms / pass_frames)
        emit("parts", part="feedforward", precision=precision, batch=batch, frames=per_pass,
             **{f"{k}_us_per_frame": 1e3 * v / pass_frames for k, v in ms.items()},
             max_rel_diff=relative(outputs["triton"], outputs["torch"]),
             max_scaled_diff=scaled(outputs["triton"], outputs["torch"]))
        del retina, history, outputs


def conv_inputs(ff, batch: int, frames: int, device: torch.device) -> list[tuple]:
    """(input, weight, bias, stride, padding, groups) of the stem and the 6 temporal 3-D convs of one feed-forward
    pass at their shapes (random inputs, channels-last as in the model)."""
    from berg_ray.model.core import BLOCKS, S, STEM_SIZE

    gen = torch.Generator().manual_seed(6)
    stem = torch.rand(batch, 1, frames, 132, 196, generator=gen).to(device)
    calls = [(stem, ff.stem_w, ff.stem_b, (1, 2, 2), 0, 1)]
    (height, width) = STEM_SIZE
    for b, (channels, groups, pool) in enumerate(BLOCKS):
        padded = torch.randn(batch, S * channels, frames + 2, height, width, generator=gen).to(device)
        padded = padded.contiguous(memory_format=torch.channels_last_3d)
        calls += [(padded, getattr(ff, f"block{b}_conv{layer}_w"), getattr(ff, f"block{b}_conv{layer}_b"), 1,
                   (0, 1, 1), S * groups) for layer in (0, 1)]
        height, width = height // pool, width // pool
    return calls


def convs(calls: list[tuple]) -> None:
    for x, weight, bias, stride, padding, groups in calls:
        F.conv3d(x, weight, bias, stride=stride, padding=padding, groups=groups)
