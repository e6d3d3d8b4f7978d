"""How the core cuts its work per device: the one place where CPU and accelerator execution differ.

The network is the same on every device; the grouping of work and a few exact rewritings change. On CPU, where the
big convolutions already run at the cores' FMA peak, the feed-forward runs one video and a few frames per pass,
every per-video 1x1 map is its own small matmul on views (no copies, cache-sized operands), the temporal convs run
by frame pairs with a third fewer FLOPs (``temporal_pairs.py``) and tanh comes from expm1. On accelerators kernel
launches dominate at these sizes (H200 profile in benchmarks/RESULTS.md, "GPU"), so passes are large, each grouped
1x1 map runs once for all videos of the batch (at the price of one copy of its input rows), and each op is one
kernel. Results agree to float32 rounding (tests/model/test_core.py runs the accelerator plan on CPU).

When autograd records (gradients with respect to the stimulus, berg_ray.model.gradients), every layer runs its
defining out-of-place form on every device instead: no in-place rewriting, no reused buffers, no frame pairs
(``differentiable``).

Hot paths can also run as fused Triton kernels (``kernels="triton"``, CUDA GPUs only; ``check_kernels``); the
torch ops stay the reference and the fallback, and the default until the device measurement decides. On CUDA the
recurrent loop of each chunk can also be replayed as a captured CUDA graph (``cuda_graphs``, ``graphs.py``): a
separate opt-in switch, off by default, independent of ``kernels`` so that each can be measured alone and together.
"""

from __future__ import annotations

import importlib.util

import torch

from berg_ray.config import DEFAULT_KERNELS, KERNELS
from berg_ray.errors import KernelsError

__all__ = ["DEFAULT_KERNELS", "KERNELS", "check_cuda_graphs", "check_kernels", "graphed_loop", "triton_glue",
           "triton_readout", "triton_step"]

FRAMES_PER_PASS = 8  # frames of one video per feed-forward pass on CPU: 4 frame pairs per conv call (RESULTS.md)
# video-frames (batch x frames) per feed-forward pass on accelerators: ~43 MB of float32 activations each (11 GB
# per pass); fewer, larger passes launch fewer kernels
ACCELERATOR_VIDEO_FRAMES_PER_PASS = 256


def differentiable(x: torch.Tensor) -> bool:
    """Whether autograd records the computation on ``x``: then the layers run their out-of-place forms (the
    in-place rewritings and preallocated buffers of inference would overwrite what the backward pass needs)."""
    return torch.is_grad_enabled() and x.requires_grad


def pass_shape(device: torch.device, batch: int) -> tuple[int, int]:
    """(videos, frames) per feed-forward pass: small on CPU (allocator reuse, cache), large on accelerators."""
    if device.type == "cpu":
        return 1, FRAMES_PER_PASS
    return batch, max(1, ACCELERATOR_VIDEO_FRAMES_PER_PASS // batch)


def batched_row_ops(device: torch.device) -> bool:
    """Whether each per-video 1x1 map (feed-forward skips, recurrent input and output projections) runs once for
    all videos (accelerators: one copy instead of a kernel per video) or per video (CPU: views, no copy)."""
    return device.type != "cpu"


def temporal_pairs(device: torch.device) -> bool:
    """Whether the feed-forward's causal temporal convs run by frame pairs with Winograd's F(2,3) (CPU: a third
    fewer FLOPs in convolutions that already run at the FMA peak, see temporal_pairs.py) or as one 3-D conv
    (accelerators: cuDNN's 3-D conv, no extra elementwise passes)."""
    return device.type == "cpu"


def expm1_tanh(device: torch.device) -> bool:
    """Whether tanh is computed from expm1 (CPU: torch.tanh goes through MKL's vsTanh at ~1.7 ns per element on 2
    cores, 1.6x the 7 cheap ops of ``functional.tanh_into``; the recurrent loop runs 3 per frame) or with torch.tanh
    (accelerators: one kernel instead of several launches)."""
    return device.type == "cpu"


def readout_by_cells(device: torch.device) -> bool:
    """Whether the readout runs as small matrix products over grid cells (CPU: no 512 x U samples per frame through
    scattered loads, see readout_cells.py) or as grid_sample + per-unit dot (accelerators: 0.045 ms per frame at
    9,941 units on an H200)."""
    return device.type == "cpu"


def check_kernels(kernels: object, device: torch.device) -> str:
    """Return ``kernels`` ("torch" or "triton") if ``device`` can run it, else raise KernelsError naming the fix.

    Triton kernels need a CUDA GPU and the ``triton`` package (CUDA builds of torch ship it); on CPU they run only
    under Triton's interpreter, in the tests.
    """
    if not isinstance(kernels, str) or kernels not in KERNELS:
        raise KernelsError(f"kernels {kernels!r} is not supported; use one of {', '.join(KERNELS)}")
    if kernels == "triton":
        if device.type != "cuda":
            raise KernelsError(f"kernels 'triton' needs a CUDA GPU; the {device.type.upper()} device cannot run "
                               "Triton kernels; use 'torch'")
        if importlib.util.find_spec("triton") is None:
            raise KernelsError("kernels 'triton' needs the triton package, which is not installed "
                               "(CUDA builds of torch ship it); use 'torch'")
    return kernels


def triton_readout(kernels: str, features: torch.Tensor) -> bool:
    """Whether the readout runs as one fused Triton kernel (``kernels/readout_triton.py``): when ``kernels`` is
    "triton" (checked against the device by ``check_kernels``) and autograd does not record (the kernel has no
    backward pass)."""
    return kernels == "triton" and not differentiable(features)


def triton_glue(kernels: str, x: torch.Tensor) -> bool:
    """Whether the feed-forward's glue between the convs (GELU + causal padding, pooling + group interleave) runs as
    Triton kernels (``kernels/glue_triton.py``, ~45 us per video-frame of torch ops at B=32 on an H200): when
    ``kernels`` is "triton" (checked against the device by ``check_kernels``: CUDA only) and autograd does not
    record (the kernels have no backward pass). GELU + padding is fused on the accelerators' path only (on CPU the
    temporal convs run by frame pairs, ``temporal_pairs``)."""
    return kernels == "triton" and not differentiable(x)


def check_cuda_graphs(enabled: object, device: torch.device) -> bool:
    """Return ``enabled`` (a bool) if ``device`` can replay the recurrent loop as CUDA graphs (``graphs.py``), else
    raise KernelsError naming the fix: graphs need a CUDA GPU. Off by default (no measurement on the device yet);
    independent of ``kernels`` (both can be measured alone and together)."""
    if not isinstance(enabled, bool):
        raise KernelsError(f"cuda_graphs must be True or False, got {enabled!r}")
    if enabled and device.type != "cuda":
        raise KernelsError(f"cuda_graphs needs a CUDA GPU; the {device.type.upper()} device cannot capture CUDA "
                           "graphs; leave cuda_graphs off")
    return enabled


def graphed_loop(cuda_graphs: bool, x: torch.Tensor) -> bool:
    """Whether the recurrent loop of a chunk replays a captured CUDA graph (``graphs.LoopGraph``): when cuda_graphs
    is on (checked against the device by ``check_cuda_graphs``) and autograd does not record."""
    return cuda_graphs and not differentiable(x)


def triton_step(kernels: str, x: torch.Tensor) -> bool:
    """Whether one frame of the recurrent cell runs as fused Triton kernels (``kernels/recurrent_triton.py``):
    when ``kernels`` is "triton" (checked against the device by ``check_kernels``) and autograd does not record
    ``x`` (the kernels have no backward pass; recorded runs take ``Recurrent.run`` anyway)."""
    return kernels == "triton" and not differentiable(x)
