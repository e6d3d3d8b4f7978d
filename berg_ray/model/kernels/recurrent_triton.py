"""One frame of the recurrent cell (``Recurrent._step``, spec §3.6) as two fused Triton kernels (GPU; on CPU only
under Triton's interpreter, in the tests).

The step in column layout (B videos x 384 positions = B*P columns, 32 (stream, group) slots of 32 channels):

0. ``pre = feed + inter_w @ hidden``: stays one torch ``baddbmm`` per frame (4 streams of 256x256 @ 256xB*P). It
   mixes all 8 groups of a stream, so a per-slot program would have to read all 256 hidden channels of its stream
   and recompute the product 9 times (once per conv tap, for the shifted positions) or exchange it between
   programs; as one batched matmul (cuBLAS) it is a single launch and writes its result in place into the spent
   ``feed`` buffer, which kernel 1 reads.
1. ``conv_qkv_kernel``, one program per (BLOCK_P positions, video, slot): [tanh(pre), hidden] (64 channels) at the
   9 shifted positions (zero padding by masked loads) -> grouped 3x3 conv as (BLOCK_P, 16) @ (16, 16) products
   -> z (BLOCK_P, 64) in registers as 4 chunks -> q, k, v = z @ qkv_w (q and k divided by their norms, q times
   the learned scales) and the z half of the gates, ``gate_b + z @ gate_zw^T``, written to float32 scratch
   (position-major: (32, B*P, 192) and (32, B*P, 128)). z never goes to memory.
2. ``attention_lstm_kernel``, one program per (BLOCK_Q query positions, video, slot): softmax attention over the
   video's 384 key positions in BLOCK_K blocks (running max and sum), a (BLOCK_Q, 64) -> gates += a @ gate_aw^T per
   gate (i, f, o, g) -> LSTM update: the cell (float32) overwritten in place, ``hidden_out`` written in its dtype.

Split there because attention needs every position's k and v of the slot's video, which only exist once kernel 1
has run for all of the video's position blocks. Activations are read in their dtype (float32, or bf16/fp16 under
autocast) and upcast on load; weights are float32; every product accumulates in float32 with IEEE products
(``input_precision="ieee"``, never TF32), square roots and the normalising divisions are the correctly rounded
forms (``sqrt_rn``, ``div_rn``) and tanh is good to a few ulp (``_tanh``), so float32 inputs match the torch
step to float32 rounding. IEEE float32 products run on the FMA units, not tensor cores: the step is ~2.7 GFLOP
per video-frame (conv 74, q/k/v 25, attention 98, gates 25 kFLOP per position and slot), so under bf16 autocast
torch's tensor-core convolutions may stay faster (benchmarks/device_kernels_step.py measures both). Only
``berg_ray.model.recurrent`` imports this module, and only when ``kernels="triton"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

HEIGHT, WIDTH = 16, 24
POSITIONS = HEIGHT * WIDTH
SLOTS, CHANNELS = 32, 32  # (stream, group) slots, hidden channels per slot
STREAMS = 4


@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and launch options of the two kernels (sm_90 registers: tests/model/test_kernels_recurrent.py).

    Every product's inner dimension is one 16-channel chunk (Triton's float32 FMA products hold a whole inner
    extent per thread: 64-wide ones spill), so z, q and the attention output live as 4 chunks of 16 channels.
    """

    block_p: int = 32  # positions per conv_qkv program (its weights are read once per block)
    conv_warps: int = 4  # 182 registers, no spills on sm_90 (8 warps: 128 registers and 16 bytes of spills)
    block_q: int = 32  # query positions per attention_lstm program
    block_k: int = 16  # key positions per attention step (the inner extent of weights @ v)
    attention_warps: int = 8  # 255 registers, no spills on sm_90 (4 warps spill)


DEFAULT_LAUNCH = LaunchConfig()
CHUNK = 16  # channels per product's inner dimension


@triton.jit
def _tanh(x):
    """tanh to a few float32 ulp (Cephes' tanhf): an odd polynomial below |x| = 0.625, 1 - 2 / (exp(2|x|) + 1)
    above (no cancellation there: the result is over 0.55); libdevice's tanh has no interpreter form."""
    a = tl.abs(x)
    z = x * x
    small = ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z + 1.33314422036e-1) * z
             - 3.33332819422e-1) * z * x + x
    large = 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0)
    return tl.where(a < 0.625, small, tl.where(x < 0, -large, large))


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _chunks_times(z0, z1, z2, z3, w, stride, N: tl.constexpr, KC: tl.constexpr):
    """[z0 z1 z2 z3] (rows, 4*KC) @ W (4*KC, N), W[c, n] at w + c*stride + n."""
    kc = tl.arange(0, KC)[:, None] * stride
    n = tl.arange(0, N)[None, :]
    out = tl.dot(z0, tl.load(w + kc + n), input_precision="ieee")
    out = tl.dot(z1, tl.load(w + KC * stride + kc + n), out, input_precision="ieee")
    out = tl.dot(z2, tl.load(w + 2 * KC * stride + kc + n), out, input_precision="ieee")
    return tl.dot(z3, tl.load(w + 3 * KC * stride + kc + n), out, input_precision="ieee")


@triton.jit
def conv_qkv_kernel(slots, pre, hidden, conv_w, qkv_w, scales, gate_zw, gate_b, qkv_out, gz_out, cols,
                    HEIGHT: tl.constexpr, WIDTH: tl.constexpr, CH: tl.constexpr, BLOCK_P: tl.constexpr,
                    KC: tl.constexpr):
    """slots: (n,) int32 slot of each program_id(2); pre, hidden: (32, CH, cols) any float dtype, contiguous;
    conv_w: (32, 9, 2*CH, 2*CH) float32 [slot, tap, in, out]; qkv_w: (32, 2*CH, 6*CH); scales: (32, 2*CH);
    gate_zw: (32, 2*CH, 4*CH) (transposed: [slot, in, gate row]); gate_b: (32, 4*CH); qkv_out: (32, cols, 6*CH)
    float32; gz_out: (32, cols, 4*CH) float32."""
    block = tl.program_id(0)
    video = tl.program_id(1)
    slot = tl.load(slots + tl.program_id(2)).to(tl.int64)
    Z: tl.constexpr = 2 * CH
    p = block * BLOCK_P + tl.arange(0, BLOCK_P)
    in_grid = p < HEIGHT * WIDTH
    y = p // WIDTH
    x = p % WIDTH
    kc = tl.arange(0, KC)
    state = slot * CH * cols + video * (HEIGHT * WIDTH) + kc[None, :] * cols  # (1, KC)
    z0 = tl.zeros((BLOCK_P, KC), dtype=tl.float32)  # conv output channels 0-15, 16-31, 32-47, 48-63
    z1 = tl.zeros((BLOCK_P, KC), dtype=tl.float32)
    z2 = tl.zeros((BLOCK_P, KC), dtype=tl.float32)
    z3 = tl.zeros((BLOCK_P, KC), dtype=tl.float32)
    for tap in tl.range(0, 9):  # a loop, not unrolled: 9 copies of the products take ptxas minutes to compile
        yy = y + (tap // 3 - 1)
        xx = x + (tap % 3 - 1)
        valid = (in_grid & (yy >= 0) & (yy < HEIGHT) & (xx >= 0) & (xx < WIDTH))[:, None]
        offsets = state + (yy * WIDTH + xx)[:, None]
        for chunk in tl.static_range(2 * CH // KC):  # input channels: tanh(pre) chunks, then hidden chunks
            if chunk * KC < CH:
                x_in = _tanh(tl.load(pre + offsets + chunk * KC * cols, mask=valid, other=0.0).to(tl.float32))
            else:
                x_in = tl.load(hidden + offsets + (chunk * KC - CH) * cols, mask=valid, other=0.0).to(tl.float32)
            w = conv_w + ((slot * 9 + tap) * Z + chunk * KC + kc[:, None]) * Z + kc[None, :]  # (KC, KC)
            z0 = tl.dot(x_in, tl.load(w), z0, input_precision="ieee")
            z1 = tl.dot(x_in, tl.load(w + KC), z1, input_precision="ieee")
            z2 = tl.dot(x_in, tl.load(w + 2 * KC), z2, input_precision="ieee")
            z3 = tl.dot(x_in, tl.load(w + 3 * KC), z3, input_precision="ieee")
    rows = (slot * cols + video * (HEIGHT * WIDTH) + p)[:, None]  # position-major scratch rows
    zc = tl.arange(0, Z)[None, :]
    for part in tl.range(0, 3):  # q, k, v; loops, not unrolled: unrolled, the products spill on sm_90
        r = _chunks_times(z0, z1, z2, z3, qkv_w + slot * Z * 3 * Z + part * Z, 3 * Z, Z, KC)
        norm = tl.sqrt_rn(tl.sum(r * r, axis=1))[:, None]
        r = tl.where(part < 2, tl.div_rn(r, norm), r)  # q and k normalised
        r = tl.where(part == 0, r * tl.load(scales + slot * Z + zc), r)  # q scaled
        tl.store(qkv_out + rows * (3 * Z) + part * Z + zc, r, mask=in_grid[:, None])
    ch = tl.arange(0, CH)[None, :]
    for gate in tl.range(0, 4):  # i, f, o, g
        g = _chunks_times(z0, z1, z2, z3, gate_zw + slot * Z * 4 * CH + gate * CH, 4 * CH, CH, KC)
        g += tl.load(gate_b + slot * 4 * CH + gate * CH + ch)
        tl.store(gz_out + rows * (4 * CH) + gate * CH + ch, g, mask=in_grid[:, None])


@triton.jit
def _gate(a0, a1, a2, a3, w_gates, z_part, q_mask, GATE: tl.constexpr, CH: tl.constexpr, KC: tl.constexpr):
    """Pre-activation of one gate (BLOCK_Q, CH): its z part (read) + a @ gate_aw[gate rows]^T."""
    ch = tl.arange(0, CH)[None, :]
    z_part = tl.load(z_part + GATE * CH + ch, mask=q_mask[:, None], other=0.0)
    return z_part + _chunks_times(a0, a1, a2, a3, w_gates + GATE * CH, 4 * CH, CH, KC)


@triton.jit
def _attend(p, v, acc, j: tl.constexpr, alpha, KC: tl.constexpr):
    """acc * alpha + p @ v[:, channel chunk j]."""
    return tl.dot(p, tl.load(v + j * KC), acc * alpha[:, None], input_precision="ieee")


@triton.jit
def attention_lstm_kernel(slots, qkv, gz, gate_aw, cell, hidden_out, cols,
                          POS: tl.constexpr, CH: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr,
                          KC: tl.constexpr):
    """slots: (n,) int32 slot of each program_id(2); qkv: (32, cols, 6*CH) float32 (q, k normalised); gz:
    (32, cols, 4*CH) float32; gate_aw: (32, 2*CH, 4*CH) float32 (transposed: [slot, in, gate row]); cell:
    (32, CH, cols) float32, updated in place; hidden_out: (32, CH, cols) any float dtype."""
    block = tl.program_id(0)
    video = tl.program_id(1)
    slot = tl.load(slots + tl.program_id(2)).to(tl.int64)
    Z: tl.constexpr = 2 * CH
    queries = block * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_mask = queries < POS
    kc = tl.arange(0, KC)
    first = slot * cols + video * POS  # scratch row of the video's position 0
    q_rows = qkv + (first + queries)[:, None] * (3 * Z) + kc[None, :]
    q0 = tl.load(q_rows, mask=q_mask[:, None], other=0.0)  # query channel chunks
    q1 = tl.load(q_rows + KC, mask=q_mask[:, None], other=0.0)
    q2 = tl.load(q_rows + 2 * KC, mask=q_mask[:, None], other=0.0)
    q3 = tl.load(q_rows + 3 * KC, mask=q_mask[:, None], other=0.0)
    top = tl.full((BLOCK_Q,), float("-inf"), dtype=tl.float32)
    total = tl.zeros((BLOCK_Q,), dtype=tl.float32)
    a0 = tl.zeros((BLOCK_Q, KC), dtype=tl.float32)  # attention output channel chunks
    a1 = tl.zeros((BLOCK_Q, KC), dtype=tl.float32)
    a2 = tl.zeros((BLOCK_Q, KC), dtype=tl.float32)
    a3 = tl.zeros((BLOCK_Q, KC), dtype=tl.float32)
    for start in tl.range(0, POS, BLOCK_K):
        keys = start + tl.arange(0, BLOCK_K)
        k_mask = keys < POS
        rows = (first + keys) * (3 * Z)
        k = qkv + rows[None, :] + Z + kc[:, None]  # (KC, BLOCK_K) chunk 0 of the keys, transposed
        s = tl.dot(q0, tl.load(k, mask=k_mask[None, :], other=0.0), input_precision="ieee")
        s = tl.dot(q1, tl.load(k + KC, mask=k_mask[None, :], other=0.0), s, input_precision="ieee")
        s = tl.dot(q2, tl.load(k + 2 * KC, mask=k_mask[None, :], other=0.0), s, input_precision="ieee")
        s = tl.dot(q3, tl.load(k + 3 * KC, mask=k_mask[None, :], other=0.0), s, input_precision="ieee")
        s = tl.where(k_mask[None, :], s, float("-inf"))
        new_top = tl.maximum(top, tl.max(s, axis=1))
        alpha = tl.exp(top - new_top)
        p = tl.exp(s - new_top[:, None])
        total = total * alpha + tl.sum(p, axis=1)
        v = qkv + rows[:, None] + 2 * Z + kc[None, :]  # (BLOCK_K, KC) chunk 0 of the values
        a0 = _attend(p, v, a0, 0, alpha, KC)
        a1 = _attend(p, v, a1, 1, alpha, KC)
        a2 = _attend(p, v, a2, 2, alpha, KC)
        a3 = _attend(p, v, a3, 3, alpha, KC)
        top = new_top
    norm = 1.0 / total[:, None]
    a0, a1, a2, a3 = a0 * norm, a1 * norm, a2 * norm, a3 * norm
    z_part = gz + (first + queries)[:, None] * (4 * CH)
    w_gates = gate_aw + slot * Z * 4 * CH
    i = _gate(a0, a1, a2, a3, w_gates, z_part, q_mask, 0, CH, KC)
    f = _gate(a0, a1, a2, a3, w_gates, z_part, q_mask, 1, CH, KC)
    o = _gate(a0, a1, a2, a3, w_gates, z_part, q_mask, 2, CH, KC)
    g = _gate(a0, a1, a2, a3, w_gates, z_part, q_mask, 3, CH, KC)
    ch = tl.arange(0, CH)
    state = slot * CH * cols + ch[None, :] * cols + (video * POS + queries)[:, None]  # (BLOCK_Q, CH)
    c = tl.load(cell + state, mask=q_mask[:, None], other=0.0)
    c = _sigmoid(f) * c + _sigmoid(i) * _tanh(g)
    h = _sigmoid(o) * _tanh(c)
    tl.store(cell + state, c, mask=q_mask[:, None])
    tl.store(hidden_out + state, h.to(hidden_out.dtype.element_ty), mask=q_mask[:, None])


@dataclass
class StepWeights:
    """The cell's float32 weights laid out for the kernels (``step_weights``)."""

    conv_w: Tensor  # (32, 9, 64, 64) [slot, tap, in, out]
    qkv_w: Tensor  # (32, 64, 192)
    scales: Tensor  # (32, 64)
    gate_zw: Tensor  # (32, 64, 128) [slot, in, gate row]
    gate_aw: Tensor  # (32, 64, 128) [slot, in, gate row]
    gate_b: Tensor  # (32, 128)
    all_slots: Tensor  # (32,) int32 0..31: every program's slot


def step_weights(conv_w: Tensor, qkv_w: Tensor, scales: Tensor, gate_zw: Tensor, gate_aw: Tensor, gate_b: Tensor
                 ) -> StepWeights:
    """Recurrent's buffers (conv_w (2048, 64, 3, 3), qkv_w (32, 64, 192), scales (32, 1, 1, 64), gate_zw and
    gate_aw (32, 128, 64), gate_b (32, 128, 1)) -> contiguous float32 kernel operands."""
    taps = conv_w.float().view(SLOTS, 2 * CHANNELS, 2 * CHANNELS, 9).permute(0, 3, 2, 1)  # [slot, tap, in, out]
    return StepWeights(conv_w=taps.contiguous(), qkv_w=qkv_w.float().contiguous(),
                       scales=scales.float().reshape(SLOTS, 2 * CHANNELS).contiguous(),
                       gate_zw=gate_zw.float().transpose(1, 2).contiguous(),
                       gate_aw=gate_aw.float().transpose(1, 2).contiguous(),
                       gate_b=gate_b.float().reshape(SLOTS, 4 * CHANNELS).contiguous(),
                       all_slots=torch.arange(SLOTS, dtype=torch.int32, device=conv_w.device))


def kernel_signatures(state_type: str = "fp32") -> dict[str, dict[str, str]]:
    """Argument types of both kernels for ``triton.compile`` (state_type: the activations' "fp32", "bf16" or
    "fp16"), keyed by kernel name."""
    state = {"pre", "hidden", "hidden_out"}

    def signature(kernel) -> dict[str, str]:
        return {name: "constexpr" if name.isupper() else "i32" if name == "cols" else "*i32" if name == "slots"
                else f"*{state_type}" if name in state else "*fp32" for name in kernel.arg_names}

    return {"conv_qkv": signature(conv_qkv_kernel), "attention_lstm": signature(attention_lstm_kernel)}


def kernel_constexprs(launch: LaunchConfig = DEFAULT_LAUNCH) -> dict[str, dict[str, int]]:
    """Compile-time constants of both kernels, keyed by kernel name."""
    return {"conv_qkv": {"HEIGHT": HEIGHT, "WIDTH": WIDTH, "CH": CHANNELS, "BLOCK_P": launch.block_p, "KC": CHUNK},
            "attention_lstm": {"POS": POSITIONS, "CH": CHANNELS, "BLOCK_Q": launch.block_q,
                               "BLOCK_K": launch.block_k, "KC": CHUNK}}


def step_kernels(pre: Tensor, hidden: Tensor, cell: Tensor, hidden_out: Tensor, weights: StepWeights,
                 launch: LaunchConfig | None = None, slots: Tensor | None = None) -> list:
    """Kernels 1 and 2 on the recurrent input ``pre`` (32, 32, B*P) (feed + inter_w @ hidden) and ``hidden``
    (32, 32, B*P); ``cell`` (32, 32, B*P) float32 updated in place, ``hidden_out`` (32, 32, B*P) written. Returns
    the launched kernels (on a GPU with ``n_regs`` and ``n_spills``). ``slots`` (int32 slot ids) restricts the
    update to those slots (the interpreter tests: slots are independent here); ``launch`` defaults to
    ``DEFAULT_LAUNCH`` (looked up at call time)."""
    launch = launch or DEFAULT_LAUNCH
    if slots is None:
        slots = weights.all_slots
    cols = pre.shape[-1]
    batch = cols // POSITIONS
    for name, x in (("pre", pre), ("hidden", hidden), ("cell", cell), ("hidden_out", hidden_out)):
        if x.shape != (SLOTS, CHANNELS, cols) or not x.is_contiguous():
            raise ValueError(f"{name} must be contiguous (32, 32, {cols}), got {tuple(x.shape)}")
    if cell.dtype != torch.float32:
        raise ValueError(f"the cell state must be float32, got {cell.dtype}")
    qkv = torch.empty(SLOTS, cols, 6 * CHANNELS, dtype=torch.float32, device=pre.device)
    gz = torch.empty(SLOTS, cols, 4 * CHANNELS, dtype=torch.float32, device=pre.device)
    conv = conv_qkv_kernel[(triton.cdiv(POSITIONS, launch.block_p), batch, slots.numel())](
        slots, pre, hidden, weights.conv_w, weights.qkv_w, weights.scales, weights.gate_zw, weights.gate_b, qkv, gz,
        cols, HEIGHT=HEIGHT, WIDTH=WIDTH, CH=CHANNELS, BLOCK_P=launch.block_p, KC=CHUNK,
        num_warps=launch.conv_warps)
    attention = attention_lstm_kernel[(triton.cdiv(POSITIONS, launch.block_q), batch, slots.numel())](
        slots, qkv, gz, weights.gate_aw, cell, hidden_out, cols, POS=POSITIONS, CH=CHANNELS, BLOCK_Q=launch.block_q,
        BLOCK_K=launch.block_k, KC=CHUNK, num_warps=launch.attention_warps)
    return [conv, attention]


def step_triton(feed: Tensor, hidden: Tensor, cell: Tensor, hidden_out: Tensor, inter_w: Tensor,
                weights: StepWeights, launch: LaunchConfig | None = None, slots: Tensor | None = None) -> list:
    """``Recurrent._step`` with the kernels: feed (S*256, B, P) (overwritten with the recurrent input, as there),
    hidden (32, 32, B*P), cell (32, 32, B*P) float32 updated in place, hidden_out (32, 32, B*P) written;
    ``inter_w`` (S, 256, 256) in the feed's dtype; ``launch`` and ``slots`` as in :func:`step_kernels`. Returns
    the launched kernels."""
    cols = feed.shape[1] * feed.shape[2]
    pre = feed.view(STREAMS, SLOTS * CHANNELS // STREAMS, cols).baddbmm_(inter_w, hidden.view(STREAMS, -1, cols))
    return step_kernels(pre.view(SLOTS, CHANNELS, cols), hidden, cell, hidden_out, weights, launch, slots)
