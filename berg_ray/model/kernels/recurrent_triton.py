"""One frame of the recurrent cell (``Recurrent._step``, spec §3.6) as two fused Triton kernels (GPU; on CPU only
under Triton's interpreter, in the tests).

The step in column layout (B videos x 384 positions = B*P columns, 32 (stream, group) slots of 32 channels):

0. ``pre = feed + inter_w @ hidden``: stays one torch ``baddbmm`` per frame (4 streams of 256x256 @ 256xB*P). It
   mixes all 8 groups of a stream, so a per-slot program would have to read all 256 hidden channels of its stream
   and recompute the product 9 times (once per conv tap, for the shifted positions) or exchange it between
   programs; as a dense matmul it already runs at the FMA peak in one launch and writes its result in place into
   the spent ``feed`` buffer, which kernel 1 reads.
1. ``conv_qkv_kernel``, one program per (BLOCK_P positions, video, slot): [tanh(pre), hidden] (64 channels) at the
   9 shifted positions (zero padding by masked loads) -> grouped 3x3 conv as 18 (BLOCK_P, 32) @ (32, 64)
   products -> z (BLOCK_P, 64) in registers -> q, k, v = z @ qkv_w (q and k divided by their norms, q times the
   learned scales) and the z half of the gates, ``gate_b + z @ gate_zw^T``, written to float32 scratch
   (position-major: (32, B*P, 192) and (32, B*P, 128)). z never goes to memory.
2. ``attention_lstm_kernel``, one program per (BLOCK_Q query positions, video, slot): softmax attention over the
   video's 384 key positions in BLOCK_K blocks (running max and sum), a (BLOCK_Q, 64) -> gates += a @ gate_aw^T per
   gate (i, f, o, g) -> LSTM update: the cell (float32) overwritten in place, ``hidden_out`` written in its dtype.

Split there because attention needs every position's k and v of the slot's video, which only exist once kernel 1
has run for all of the video's position blocks. Activations are read in their dtype (float32, or bf16/fp16 under
autocast) and upcast on load; weights are float32; every product accumulates in float32 with IEEE products
(``input_precision="ieee"``, never TF32), square roots and the normalising divisions are the correctly rounded
forms (``sqrt_rn``, ``div_rn``) and tanh is good to a few ulp (``_tanh``), so float32 inputs match the torch step to float32 rounding. Only
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
    """Tile sizes and launch options of the two kernels (sm_90 registers: tests/model/test_kernels_recurrent.py)."""

    block_p: int = 64  # positions per conv_qkv program (weights are read once per block)
    conv_warps: int = 4
    block_q: int = 32  # query positions per attention_lstm program
    block_k: int = 64  # key positions per attention step
    attention_warps: int = 4


DEFAULT_LAUNCH = LaunchConfig()


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
def conv_qkv_kernel(slots, pre, hidden, conv_w, qkv_w, scales, gate_zw, gate_b, qkv_out, gz_out, cols,
                    HEIGHT: tl.constexpr, WIDTH: tl.constexpr, CH: tl.constexpr, BLOCK_P: tl.constexpr):
    """slots: (n,) int32 slot of each program_id(2); pre, hidden: (32, CH, cols) any float dtype, contiguous; conv_w: (32, 9, 2*CH, 2*CH) float32 [slot, tap,
    in, out]; qkv_w: (32, 2*CH, 6*CH); scales: (32, 2*CH); gate_zw: (32, 4*CH, 2*CH); gate_b: (32, 4*CH);
    qkv_out: (32, cols, 6*CH) float32; gz_out: (32, cols, 4*CH) float32."""
    block = tl.program_id(0)
    video = tl.program_id(1)
    slot = tl.load(slots + tl.program_id(2)).to(tl.int64)
    Z: tl.constexpr = 2 * CH
    p = block * BLOCK_P + tl.arange(0, BLOCK_P)
    in_grid = p < HEIGHT * WIDTH
    y = p // WIDTH
    x = p % WIDTH
    ch = tl.arange(0, CH)
    zc = tl.arange(0, Z)
    state = slot * CH * cols + video * (HEIGHT * WIDTH) + ch[None, :] * cols  # (1, CH)
    z = tl.zeros((BLOCK_P, Z), dtype=tl.float32)
    for tap in tl.static_range(9):
        yy = y + (tap // 3 - 1)
        xx = x + (tap % 3 - 1)
        valid = (in_grid & (yy >= 0) & (yy < HEIGHT) & (xx >= 0) & (xx < WIDTH))[:, None]
        offsets = state + (yy * WIDTH + xx)[:, None]
        x_in = _tanh(tl.load(pre + offsets, mask=valid, other=0.0).to(tl.float32))
        h_in = tl.load(hidden + offsets, mask=valid, other=0.0).to(tl.float32)
        taps = conv_w + (slot * 9 + tap) * Z * Z
        z = tl.dot(x_in, tl.load(taps + ch[:, None] * Z + zc[None, :]), z, input_precision="ieee")
        z = tl.dot(h_in, tl.load(taps + (CH + ch[:, None]) * Z + zc[None, :]), z, input_precision="ieee")
    rows = slot * cols + video * (HEIGHT * WIDTH) + p  # position-major scratch rows
    for part in tl.static_range(3):  # q, k, v
        w = tl.load(qkv_w + slot * Z * 3 * Z + zc[:, None] * (3 * Z) + part * Z + zc[None, :])
        r = tl.dot(z, w, input_precision="ieee")
        if part < 2:
            norm = tl.sqrt_rn(tl.sum(r * r, axis=1))
            r = tl.div_rn(r, norm[:, None])
            if part == 0:
                r = r * tl.load(scales + slot * Z + zc)[None, :]
        tl.store(qkv_out + rows[:, None] * (3 * Z) + part * Z + zc[None, :], r, mask=in_grid[:, None])
    for gate in tl.static_range(4):  # i, f, o, g
        w = tl.load(gate_zw + slot * 4 * CH * Z + (gate * CH + ch[None, :]) * Z + zc[:, None])  # (Z, CH)
        g = tl.dot(z, w, input_precision="ieee") + tl.load(gate_b + slot * 4 * CH + gate * CH + ch)[None, :]
        tl.store(gz_out + rows[:, None] * (4 * CH) + gate * CH + ch[None, :], g, mask=in_grid[:, None])


@triton.jit
def _gate(a, w_gates, z_part, q_mask, GATE: tl.constexpr, CH: tl.constexpr, Z: tl.constexpr):
    """Pre-activation of one gate (BLOCK_Q, CH): its z part (read) + a @ gate_aw[gate rows]^T."""
    ch = tl.arange(0, CH)
    w = tl.load(w_gates + (GATE * CH + ch[None, :]) * Z + tl.arange(0, Z)[:, None])  # (Z, CH)
    z_part = tl.load(z_part + GATE * CH + ch[None, :], mask=q_mask[:, None], other=0.0)
    return tl.dot(a, w, z_part, input_precision="ieee")


@triton.jit
def attention_lstm_kernel(slots, qkv, gz, gate_aw, cell, hidden_out, cols,
                          POS: tl.constexpr, CH: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_K: tl.constexpr):
    """slots: (n,) int32 slot of each program_id(2); qkv: (32, cols, 6*CH) float32 (q, k normalised); gz: (32, cols, 4*CH) float32; gate_aw: (32, 4*CH, 2*CH)
    float32; cell: (32, CH, cols) float32, updated in place; hidden_out: (32, CH, cols) any float dtype."""
    block = tl.program_id(0)
    video = tl.program_id(1)
    slot = tl.load(slots + tl.program_id(2)).to(tl.int64)
    Z: tl.constexpr = 2 * CH
    queries = block * BLOCK_Q + tl.arange(0, BLOCK_Q)
    q_mask = queries < POS
    zc = tl.arange(0, Z)
    ch = tl.arange(0, CH)
    first = slot * cols + video * POS  # scratch row of the video's position 0
    q = tl.load(qkv + (first + queries)[:, None] * (3 * Z) + zc[None, :], mask=q_mask[:, None], other=0.0)
    top = tl.full((BLOCK_Q,), float("-inf"), dtype=tl.float32)
    total = tl.zeros((BLOCK_Q,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_Q, Z), dtype=tl.float32)
    for start in tl.range(0, POS, BLOCK_K):
        keys = start + tl.arange(0, BLOCK_K)
        k_mask = keys < POS
        rows = (first + keys)[:, None] * (3 * Z)
        k = tl.load(qkv + rows + Z + zc[None, :], mask=k_mask[:, None], other=0.0)
        v = tl.load(qkv + rows + 2 * Z + zc[None, :], mask=k_mask[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision="ieee")
        s = tl.where(k_mask[None, :], s, float("-inf"))
        new_top = tl.maximum(top, tl.max(s, axis=1))
        alpha = tl.exp(top - new_top)
        weights = tl.exp(s - new_top[:, None])
        total = total * alpha + tl.sum(weights, axis=1)
        acc = tl.dot(weights, v, acc * alpha[:, None], input_precision="ieee")
        top = new_top
    a = tl.div_rn(acc, total[:, None])
    gate_rows = (first + queries)[:, None] * (4 * CH)
    w_gates = gate_aw + slot * 4 * CH * Z
    i = _gate(a, w_gates, gz + gate_rows, q_mask, 0, CH, Z)
    f = _gate(a, w_gates, gz + gate_rows, q_mask, 1, CH, Z)
    o = _gate(a, w_gates, gz + gate_rows, q_mask, 2, CH, Z)
    g = _gate(a, w_gates, gz + gate_rows, q_mask, 3, CH, Z)
    state = slot * CH * cols + ch[None, :] * cols + (video * POS + queries)[:, None]  # (BLOCK_Q, CH)
    c = tl.load(cell + state, mask=q_mask[:, None], other=0.0)
    c = tl.sigmoid(f) * c + tl.sigmoid(i) * _tanh(g)
    h = tl.sigmoid(o) * _tanh(c)
    tl.store(cell + state, c, mask=q_mask[:, None])
    tl.store(hidden_out + state, h.to(hidden_out.dtype.element_ty), mask=q_mask[:, None])


@dataclass
class StepWeights:
    """The cell's float32 weights laid out for the kernels (``step_weights``)."""

    conv_w: Tensor  # (32, 9, 64, 64) [slot, tap, in, out]
    qkv_w: Tensor  # (32, 64, 192)
    scales: Tensor  # (32, 64)
    gate_zw: Tensor  # (32, 128, 64)
    gate_aw: Tensor  # (32, 128, 64)
    gate_b: Tensor  # (32, 128)
    all_slots: Tensor  # (32,) int32 0..31: every program's slot


def step_weights(conv_w: Tensor, qkv_w: Tensor, scales: Tensor, gate_zw: Tensor, gate_aw: Tensor, gate_b: Tensor
                 ) -> StepWeights:
    """Recurrent's buffers (conv_w (2048, 64, 3, 3), qkv_w (32, 64, 192), scales (32, 1, 1, 64), gate_zw and
    gate_aw (32, 128, 64), gate_b (32, 128, 1)) -> contiguous float32 kernel operands."""
    taps = conv_w.float().view(SLOTS, 2 * CHANNELS, 2 * CHANNELS, 9).permute(0, 3, 2, 1)  # [slot, tap, in, out]
    return StepWeights(conv_w=taps.contiguous(), qkv_w=qkv_w.float().contiguous(),
                       scales=scales.float().reshape(SLOTS, 2 * CHANNELS).contiguous(),
                       gate_zw=gate_zw.float().contiguous(), gate_aw=gate_aw.float().contiguous(),
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
    return {"conv_qkv": {"HEIGHT": HEIGHT, "WIDTH": WIDTH, "CH": CHANNELS, "BLOCK_P": launch.block_p},
            "attention_lstm": {"POS": POSITIONS, "CH": CHANNELS, "BLOCK_Q": launch.block_q,
                               "BLOCK_K": launch.block_k}}


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
        slots, pre, hidden, weights.conv_w, weights.qkv_w, weights.scales, weights.gate_zw, weights.gate_b, qkv, gz, cols,
        HEIGHT=HEIGHT, WIDTH=WIDTH, CH=CHANNELS, BLOCK_P=launch.block_p, num_warps=launch.conv_warps)
    attention = attention_lstm_kernel[(triton.cdiv(POSITIONS, launch.block_q), batch, slots.numel())](
        slots, qkv, gz, weights.gate_aw, cell, hidden_out, cols, POS=POSITIONS, CH=CHANNELS, BLOCK_Q=launch.block_q,
        BLOCK_K=launch.block_k, num_warps=launch.attention_warps)
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
