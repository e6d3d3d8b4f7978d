"""The recurrent step's fused Triton kernels against ``Recurrent._step`` (issue 20 A2), a section of
benchmarks/device_kernels.py.

``step_section`` (record section ``step``): one frame of the recurrent cell at B videos (32 on a GPU) with the
fixture release's cell (random weights of the released shapes), per precision (``float32``: TF32 off;
``bfloat16``: under bf16 autocast, as the model runs it) and kernel launch configuration: us per video-frame of the
torch step and of the kernel step (inter-group matmul + 2 kernels), the speed-up, registers and spill bytes of
each launched kernel, and the largest difference of hidden state and cell from the float32 torch step, relative to
its largest value (goal 1e-5 in float32). On CPU (Triton's interpreter, which runs programs one by one at ~1 s
each) one video and one slot with whole-grid tiles, so the check stays a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import torch

CORE = (Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "wang2025-reference" / "berg" / "encoding_models"
        / "modality-calcium_2p" / "train_dataset-wang_2025" / "model-3DCNN" / "encoding_models_weights"
        / "params_core.pt")
SIZES = {"cuda": {"batch": 32, "reps": 50}, "cpu": {"batch": 1, "reps": 1}}


def scaled(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want|."""
    return float((got.double() - want.double()).abs().max() / want.double().abs().max())


def launch_configs(recurrent_triton, device: torch.device) -> list:
    config = recurrent_triton.LaunchConfig
    if device.type != "cuda":
        return [config(block_p=512, block_q=512, block_k=512)]  # a program per (video, slot)
    return [recurrent_triton.DEFAULT_LAUNCH, config(32, 8, 32, 16, 8), config(16, 4, 16, 16, 4),
            config(64, 8, 32, 16, 8), config(32, 4, 64, 16, 8), config(32, 4, 32, 32, 8)]


def step_section(emit, device: torch.device, time_ms, modules: dict) -> None:
    """torch ``Recurrent._step`` vs the kernel step (see the module docstring); ``time_ms(function, device, reps)``
    is device_kernels.py's timer (median ms, result)."""
    from berg_ray.model.recurrent import POSITIONS, REC_SLOTS, REC_WIDTH, Recurrent

    recurrent_triton = modules["recurrent_triton"]
    batch, reps = SIZES[device.type]["batch"], SIZES[device.type]["reps"]
    params = torch.load(CORE, weights_only=True)
    recurrent = Recurrent({k: v for k, v in params.items() if k.startswith("core.recurrent.")}).to(device)
    cols = batch * POSITIONS
    generator = torch.Generator().manual_seed(5)
    feed32 = torch.randn(4 * 256, batch, POSITIONS, generator=generator).to(device)
    hidden32 = (0.5 * torch.rand(REC_SLOTS, REC_WIDTH, cols, generator=generator) - 0.25).to(device)
    cell0 = torch.randn(REC_SLOTS, REC_WIDTH, cols, generator=generator).to(device)
    slots = None if device.type == "cuda" else torch.tensor([0], dtype=torch.int32)
    compared = slice(None) if slots is None else slice(0, 1)
    reference = None
    for precision, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        if precision == "bfloat16" and device.type != "cuda":
            continue  # (bf16 convolutions are slow on CPU; the interpreter tests cover half-precision reads)
        def autocast(enabled=dtype != torch.float32):
            return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
        buffers = recurrent.buffers(batch, 1, dtype)
        feed, hidden = feed32.to(dtype), hidden32.to(dtype)
        inter_w = buffers.weights[0]

        def torch_step(feed=feed.clone(), cell=cell0.clone(), out=torch.empty_like(hidden)):
            with torch.no_grad(), autocast():
                recurrent.kernels = "torch"
                recurrent._step(feed, hidden, cell, buffers, out)
            return out, cell

        torch_ms = time_ms(torch_step, device, reps)[0]
        want = torch_step(feed.clone(), cell0.clone(), torch.empty_like(hidden))
        if reference is None:
            reference = want
        record = {"precision": precision, "batch": batch, "torch_ms": torch_ms,
                  "torch_us_per_video_frame": 1e3 * torch_ms / batch,
                  "goal": 1e-5 if precision == "float32" else 3e-2}
        weights = recurrent.kernel_weights()
        for launch in launch_configs(recurrent_triton, device):
            def kernel_step(feed=feed.clone(), cell=cell0.clone(), out=torch.empty_like(hidden), launch=launch):
                with torch.no_grad():
                    launched = recurrent_triton.step_triton(feed, hidden, cell, out, inter_w, weights, launch, slots)
                return out, cell, launched

            try:
                ms = time_ms(kernel_step, device, reps)[0]
                got_hidden, got_cell, launched = kernel_step(feed.clone(), cell0.clone(), torch.empty_like(hidden))
                emit("step", **record, launch=vars(launch), slots="all" if slots is None else slots.tolist(),
                     triton_ms=ms, triton_us_per_video_frame=1e3 * ms / batch, speedup=torch_ms / ms,
                     kernels={name: {"n_regs": getattr(k, "n_regs", None), "n_spills": getattr(k, "n_spills", None)}
                              for name, k in zip(("conv_qkv", "attention_lstm"), launched)},
                     hidden_vs_float32_torch=scaled(got_hidden[compared], reference[0][compared]),
                     cell_vs_float32_torch=scaled(got_cell[compared], reference[1][compared]),
                     hidden_vs_same_precision_torch=scaled(got_hidden[compared], want[0][compared]))
            except Exception as exc:  # noqa: BLE001 - one failing configuration must not hide the others
                emit("step", **record, launch=vars(launch), error=f"{type(exc).__name__}: {exc}")
    recurrent.kernels = "torch"
