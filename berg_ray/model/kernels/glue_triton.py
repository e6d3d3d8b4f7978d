"""The feed-forward's elementwise glue as Triton kernels (GPU; on CPU only under Triton's interpreter, in the tests).

Two kernels replace the torch ops between the dense blocks' convolutions (``FeedForward._block``) on accelerators:

* ``gelu_padded_kernel``: the causal conv input [history, GELU(x)] along time (``functional.gelu_padded``) in one
  pass: the 2 history frames are copied and GELU (exact erf; the gain is folded into the conv weights) of x is
  written straight into the padded tensor, instead of a fill, a copy, a layout copy and a GELU launch.
* ``pool_interleave_kernel``: spatial average pooling of the three parts x0, x1, x2 of a dense block
  (``functional.pool_rows``) and their group-interleaved concatenation (``functional.interleave_rows``) in one pass
  that writes z directly: each program sums its pool x pool window rows of one 32-channel slot of one part
  (a reshape-sum, no ``avg_pool2d`` layout round trip) and stores them at that slot's place in z. The three parts
  are addressed from one base pointer and element offsets, so each program issues only its own part's loads.

Inputs are read in any float dtype and strides and upcast on load; sums and GELU run in float32 and are rounded
once to the output dtype (the inputs' dtype), so float32 agrees with the torch path to float32 rounding and half
precision as torch's own half kernels do (which also compute in float32). Only ``berg_ray.model.core`` imports this
module, and only when ``kernels="triton"``: importing berg_ray never needs Triton.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

SQRT1_2 = tl.constexpr(0.7071067811865476)  # 1/sqrt(2), rounded to float32 in the kernel


@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and warps of the two glue kernels (memory-bound: enough bytes in flight per program).

    The default compiles for sm_90 to 58-80 registers per thread without spills (float32, bf16, fp16;
    tests/model/test_kernels_glue.py); 4 warps take 112-156.
    """

    block_gelu: int = 1024  # padded elements per program of ``gelu_padded_kernel``
    block_rows: int = 64  # output rows per program of ``pool_interleave_kernel``
    num_warps: int = 8


DEFAULT_LAUNCH = LaunchConfig()


@triton.jit
def gelu_padded_kernel(x, sx_b, sx_c, sx_t, sx_h, sx_w, history, sh_b, sh_c, sh_t, sh_h, sh_w, out, n_elements,
                       channels, frames, width, positions, BLOCK: tl.constexpr):
    """out (B, C, T+2, H, W) channels-last-3d, i.e. flat (B, T+2, H, W, C): frames 0-1 from history (B, C, 2, H, W),
    frames 2.. GELU(x (B, C, T, H, W)); any strides and float dtypes of x and history, computed in float32."""
    index = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = index < n_elements
    c = index % channels
    rest = index // channels
    position = rest % positions
    rest = rest // positions
    t = rest % (frames + 2)
    b = rest // (frames + 2)
    h = position // width
    w = position % width
    spatial_x = b * sx_b + c * sx_c + h * sx_h + w * sx_w
    spatial_h = b * sh_b + c * sh_c + h * sh_h + w * sh_w
    past = t < 2
    value = tl.load(x + spatial_x + (t - 2) * sx_t, mask=mask & (t >= 2), other=0.0).to(tl.float32)
    value = 0.5 * value * (1.0 + tl.math.erf(value * SQRT1_2))
    kept = tl.load(history + spatial_h + t * sh_t, mask=mask & past, other=0.0).to(tl.float32)
    tl.store(out + index, tl.where(past, kept, value).to(out.dtype.element_ty), mask=mask)


@triton.jit
def pool_interleave_kernel(part0, offset1, offset2, stride_row, out, n_out_rows, out_width, out_positions,
                           n_columns, POOL: tl.constexpr, SLOT: tl.constexpr, BLOCK_ROWS: tl.constexpr):
    """z[n', (3k+p)*SLOT + j] = mean over the POOL x POOL window of part_p[rows of n', k*SLOT + j].

    part_p: (B*T*H*W, n_columns) rows with unit column stride and row stride ``stride_row``, part 1 and 2 at
    ``offset1``/``offset2`` elements from part0 (one base pointer: each program loads from its own part only); out:
    (B*T*H'*W', 3*n_columns) contiguous. Program (row block, 3k+p): BLOCK_ROWS output rows x the SLOT columns of
    slot k of part p.
    """
    rows = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    block = tl.program_id(1)
    slot, part = block // 3, block % 3
    row_mask = rows < n_out_rows
    image = rows // out_positions
    position = rows % out_positions
    top = (position // out_width) * POOL
    left = (position % out_width) * POOL
    in_width = out_width * POOL
    first = image * (out_positions * POOL * POOL) + top * in_width + left  # input row of the window's corner
    columns = slot * SLOT + tl.arange(0, SLOT)
    source = part0 + tl.where(part == 0, 0, tl.where(part == 1, offset1, offset2))
    total = tl.zeros((BLOCK_ROWS, SLOT), dtype=tl.float32)
    for dh in tl.static_range(POOL):
        for dw in tl.static_range(POOL):
            offsets = (first + dh * in_width + dw)[:, None] * stride_row + columns[None, :]
            total += tl.load(source + offsets, mask=row_mask[:, None], other=0.0).to(tl.float32)
    if POOL > 1:
        total = total / (POOL * POOL)
    target = rows[:, None] * (3 * n_columns) + (block * SLOT + tl.arange(0, SLOT))[None, :]
    tl.store(out + target, total.to(out.dtype.element_ty), mask=row_mask[:, None])


def gelu_padded(x: Tensor, history: Tensor, launch: LaunchConfig | None = None) -> Tensor:
    """``functional.gelu_padded(x, history)`` (no lead/trail frames) in one launch.

    Args: x (B, C, T, H, W), history (B, C, 2, H, W), any strides and float dtypes.
    Returns: (B, C, T+2, H, W) channels-last-3d in x's dtype: [history, GELU(x)] along T.
    """
    launch = launch or DEFAULT_LAUNCH
    batch, channels, frames, height, width = x.shape
    if history.shape != (batch, channels, 2, height, width):
        raise ValueError(f"history of shape {tuple(history.shape)} does not match x {tuple(x.shape)}")
    out = torch.empty((batch, channels, frames + 2, height, width), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last_3d)
    n_elements = out.numel()
    if n_elements:
        gelu_padded_kernel[(triton.cdiv(n_elements, launch.block_gelu),)](
            x, *x.stride(), history, *history.stride(), out, n_elements, channels, frames, width, height * width,
            BLOCK=launch.block_gelu, num_warps=launch.num_warps)
    return out


def pool_interleave(parts: list[Tensor], height: int, width: int, pool: int, n_slots: int,
                    launch: LaunchConfig | None = None) -> Tensor:
    """``interleave_rows([pool_rows(p, height, width, pool) for p in parts], n_slots)`` (no pooling when pool is 1)
    in one launch.

    Args: parts: 3 row matrices (B*T*height*width, C) of one dtype and row stride, unit column stride; n_slots: the
    groups K of the interleave (C/K channels per slot, a power of 2).
    Returns: z (B*T*(height/pool)*(width/pool), 3*C) contiguous, in the parts' dtype.
    """
    launch = launch or DEFAULT_LAUNCH
    if len(parts) != 3:
        raise ValueError(f"pool_interleave takes the 3 parts of a dense block, got {len(parts)}")
    rows, channels = parts[0].shape
    stride_row = parts[0].stride(0)
    for p in parts:
        if p.shape != (rows, channels) or p.stride() != (stride_row, 1) or p.dtype != parts[0].dtype:
            raise ValueError("the parts must be row matrices of one shape, dtype and row stride, unit column stride")
    if height % pool or width % pool or rows % (height * width) or channels % n_slots:
        raise ValueError(f"cannot pool {height}x{width} by {pool} over {rows} rows into {n_slots} slots")
    slot = channels // n_slots
    out_height, out_width = height // pool, width // pool
    out_rows = rows // (height * width) * out_height * out_width
    out = parts[0].new_empty(out_rows, 3 * channels)
    if out_rows:
        grid = (triton.cdiv(out_rows, launch.block_rows), 3 * n_slots)
        element = parts[0].element_size()
        offsets = [(p.data_ptr() - parts[0].data_ptr()) // element for p in parts[1:]]  # aligned to the dtype
        pool_interleave_kernel[grid](parts[0], *offsets, stride_row, out, out_rows, out_width,
                                     out_height * out_width, channels, POOL=pool, SLOT=slot,
                                     BLOCK_ROWS=launch.block_rows, num_warps=launch.num_warps)
    return out


def kernel_signatures(dtype: str = "fp32") -> dict[str, dict[str, str]]:
    """Argument types of the two kernels for ``triton.compile`` (dtype: "fp32", "bf16" or "fp16")."""
    def signature(kernel, pointers: tuple[str, ...]) -> dict[str, str]:
        return {name: "constexpr" if name.isupper() else f"*{dtype}" if name in pointers else "i32"
                for name in kernel.arg_names}
    return {"gelu_padded": signature(gelu_padded_kernel, ("x", "history", "out")),
            "pool_interleave": {**signature(pool_interleave_kernel, ("part0", "out")), "offset1": "i64",
                                "offset2": "i64"}}


def kernel_constexprs(launch: LaunchConfig = DEFAULT_LAUNCH, pool: int = 2, slot: int = 32) -> dict[str, dict]:
    """Compile-time constants of the two kernels (the released blocks: 32 channels per slot, pools 2, 2, 1)."""
    return {"gelu_padded": {"BLOCK": launch.block_gelu},
            "pool_interleave": {"POOL": pool, "SLOT": slot, "BLOCK_ROWS": launch.block_rows}}
