"""How the core cuts its work per device: the one place where CPU and accelerator execution differ.

The math is the same on every device; only the grouping of work changes. On CPU the feed-forward runs one video
and a few frames per pass and every per-video 1x1 map is its own small matmul on views (no copies, cache-sized
operands). On accelerators kernel launches dominate at these sizes (H200 profile in benchmarks/RESULTS.md, "GPU"),
so passes are large and each grouped 1x1 map runs once for all videos of the batch, at the price of one copy of
its input rows. Results agree to float32 rounding (tests/model/test_core.py runs the accelerator plan on CPU).
"""

from __future__ import annotations

import torch

FRAMES_PER_PASS = 4  # frames of one video per feed-forward pass on CPU: bounds memory, keeps buffers reusable
# video-frames (batch x frames) per feed-forward pass on accelerators: ~43 MB of float32 activations each (11 GB
# per pass); fewer, larger passes launch fewer kernels
ACCELERATOR_VIDEO_FRAMES_PER_PASS = 256


def pass_shape(device: torch.device, batch: int) -> tuple[int, int]:
    """(videos, frames) per feed-forward pass: small on CPU (allocator reuse, cache), large on accelerators."""
    if device.type == "cpu":
        return 1, FRAMES_PER_PASS
    return batch, max(1, ACCELERATOR_VIDEO_FRAMES_PER_PASS // batch)


def batched_row_ops(device: torch.device) -> bool:
    """Whether each per-video 1x1 map (feed-forward skips, recurrent input and output projections) runs once for
    all videos (accelerators: one copy instead of a kernel per video) or per video (CPU: views, no copy)."""
    return device.type != "cpu"
