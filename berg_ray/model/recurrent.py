"""The recurrent half of the core (spec §3.6): a convolutional-attention LSTM over all 4 streams at once.

Per frame only the recurrent cell runs; everything that does not depend on the state (the feed-forward features'
projection into the recurrent input, the modulation drive, the output projection) is done for a whole chunk of
frames before or after the loop. Inside the loop, state lives in (B, slots, channels, positions) layout with the
32 (stream, group) slots as a batch dimension; the attention runs position-major through
``scaled_dot_product_attention``. Buffers for the conv input are preallocated per chunk and reused every frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from berg_ray.config import N_STREAMS
from berg_ray.model.device_plan import DEFAULT_KERNELS, batched_row_ops, triton_step
from berg_ray.model.functional import lstm_update, lstm_update_, normalized_attention, tanh_into, weight_norm
from berg_ray.model.params import stacked_biases, stacked_weights

S = N_STREAMS
REC_GROUPS, REC_WIDTH = 8, 32  # recurrent groups per stream, hidden channels per group
REC_SLOTS = S * REC_GROUPS  # 32 (stream, group) slots
POSITIONS = 16 * 24
_GATES = ("i", "f", "o", "g")  # row order of the fused gate weights: the 3 sigmoid gates first, then tanh


def inter_group_matrix(params: Mapping[str, Tensor], stream: int) -> Tensor:
    """Dense (256, 256) hidden -> input map of one stream (spec §2.5).

    Off-diagonal 32x32 blocks are the normalised weights placed at the stored mask's True positions in row-major
    order; the other blocks keep the stored ``zero`` buffer verbatim (it is not always zero).
    """
    p = "core.recurrent.proj_x.0"
    raw = params[f"{p}.weights.{stream}"]  # (O=8, J=7, a=32, b=32)
    n_out, n_other, width, _ = raw.shape
    per_row = raw.permute(0, 2, 1, 3).reshape(n_out * width, n_other * width)  # normalise over (j, b)
    normed = weight_norm(per_row, params[f"{p}.gains.{stream}"]).view(n_out, width, n_other, width)
    blocks = params[f"{p}.zero"].clone()  # (8, 8, 32, 32)
    mask = params[f"{p}.mask"].reshape(blocks.shape[:2]).bool()
    if int(mask.sum()) != n_out * n_other:
        raise ValueError(f"{p}.mask has {int(mask.sum())} True entries; the weights fill {n_out * n_other} blocks")
    blocks[mask] = normed.permute(0, 2, 1, 3).reshape(-1, width, width)
    return blocks.permute(0, 2, 1, 3).reshape(blocks.shape[0] * width, blocks.shape[1] * width)


@dataclass
class StepBuffers:
    """Preallocated scratch tensors of the recurrent loop (column layout: B videos x 384 positions = B*P columns).

    Attributes:
        feed: (T, S*256, B*P) feed-forward and modulation parts of the recurrent input, per frame; the step adds
            the hidden-state part in place.
        hiddens: (T, 32, 32, B*P) hidden state after each frame.
        conv_in: (B, 32, 64, P) input of the grouped 3x3 conv, [x_g, h_g] per slot.
        qkv: (32, B*P, 192) queries, keys and values, position-major.
        gates: (32, 128, B*P) LSTM gate pre-activations, rows [i, f, o, g].
        weights: inter_w, qkv_w, gate_zw, gate_aw, gate_b in the buffers' dtype.
    """

    feed: Tensor
    hiddens: Tensor
    conv_in: Tensor
    qkv: Tensor
    gates: Tensor
    weights: list[Tensor]


class Recurrent(nn.Module):
    """CvtLstm of all streams: features rows (B*T*384, 512) + drive (B, T, S, 256) -> (B, T, 512, 16, 24).

    Inside a chunk the state is kept in column layout (32 slots, 32 channels, B*384 columns), so every per-slot
    1x1 map is one batched matmul over the slots, whatever the number of videos.
    """

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        p = "core.recurrent"
        self.register_buffer("inter_w", torch.stack([inter_group_matrix(params, s) for s in range(S)]))  # (S,256,256)
        feed_w = stacked_weights(params, f"{p}.proj_x.1").view(S, 256, 128)
        self.register_buffer("feed_w", feed_w.transpose(1, 2).contiguous())  # (S, 128, 256): rows @ w
        self.register_buffer("feed_b", stacked_biases(params, f"{p}.proj_x.1").view(S, 256))
        self.register_buffer("drive_w", stacked_weights(params, f"{p}.proj_x.2").view(S, 256, 16))
        self.register_buffer("conv_w", stacked_weights(params, f"{p}.conv", gains=False).squeeze(2))  # (2048, 64, 3, 3)
        qkv = [stacked_weights(params, f"{p}.proj_{n}", gains=False).view(REC_SLOTS, 64, 64) for n in "qkv"]
        self.register_buffer("qkv_w", torch.cat(qkv, dim=1).transpose(1, 2).contiguous())  # (32, 64, 192): z^T @ w
        scales = torch.cat([params[f"{p}.scales.{s}"] for s in range(S)])
        self.register_buffer("scales", scales[:, None, None])  # (32, 1, 1, 64)
        gates = torch.cat([stacked_weights(params, f"{p}.proj_{g}").view(REC_SLOTS, REC_WIDTH, 128) for g in _GATES], 1)
        self.register_buffer("gate_zw", gates[:, :, :64].contiguous())  # (32, 128, 64) acting on z
        self.register_buffer("gate_aw", gates[:, :, 64:].contiguous())  # (32, 128, 64) acting on the attention
        gate_b = [stacked_biases(params, f"{p}.proj_{g}").view(REC_SLOTS, REC_WIDTH) for g in _GATES]
        self.register_buffer("gate_b", torch.cat(gate_b, dim=1)[:, :, None])  # (32, 128, 1)
        self.register_buffer("out_w", stacked_weights(params, f"{p}.out").view(S, 128, 256))
        self.register_buffer("out_b", stacked_biases(params, f"{p}.out").view(S, 128, 1))
        # "torch" or "triton" (set through EncodingModel.set_kernels, which checks the device)
        self.kernels = DEFAULT_KERNELS
        self._kernel_weights: tuple[int, object] | None = None  # (conv_w's address, the kernels' weight layout)

    def drive(self, modulation: Tensor) -> Tensor:
        """Modulation (..., S*16) -> its additive drive of the recurrent input (..., S, 256)."""
        m = modulation.unflatten(-1, (S, 16))[..., None]  # (..., S, 16, 1)
        return torch.matmul(self.drive_w, m)[..., 0]

    def initial_state(self, batch: int) -> tuple[Tensor, Tensor]:
        zeros = self.feed_w.new_zeros(batch, REC_SLOTS, REC_WIDTH, POSITIONS)
        return zeros, zeros.clone()

    def buffers(self, batch: int, frames: int, dtype: torch.dtype) -> StepBuffers:
        """Scratch space for chunks of up to ``frames`` frames of ``batch`` videos, reused by every frame.

        ``dtype`` is the precision of the activations (float32, or lower under autocast); the weights of the
        matmuls that write into these buffers are cast to it once here.
        """
        def empty(*shape: int) -> Tensor:
            return self.feed_w.new_empty(shape, dtype=dtype)
        cols = batch * POSITIONS
        return StepBuffers(feed=empty(frames, S * 256, cols), hiddens=empty(frames, REC_SLOTS, REC_WIDTH, cols),
                           conv_in=empty(batch, REC_SLOTS, 2 * REC_WIDTH, POSITIONS),
                           qkv=empty(REC_SLOTS, cols, 192), gates=empty(REC_SLOTS, 4 * REC_WIDTH, cols),
                           weights=[w.to(dtype) for w in (self.inter_w, self.qkv_w, self.gate_zw, self.gate_aw,
                                                          self.gate_b)])

    def forward(self, features: Tensor, drive: Tensor, state: tuple[Tensor, Tensor], buffers: StepBuffers,
                out: Tensor, graph=None) -> Tensor:
        """Run the cell over T frames.

        Args:
            features: feed-forward output rows (B*T*384, 512), ordered (video, frame, position).
            drive: modulation drive (B, T, S, 256).
            state: (hidden, cell) in column layout (32, 32, B*384), updated in place.
            buffers: from :meth:`buffers` for B videos and at least T frames.
            out: (B, T, 512, 16, 24) receives the core output (may be a slice of a larger tensor along T).
            graph: optional ``graphs.LoopGraph`` for B videos and exactly T frames: then the loop replays its
                captured CUDA graph on its own buffers (``buffers`` is not used).
        Returns:
            out.
        """
        batch, frames = drive.shape[:2]
        if graph is not None:
            self._feed(features, drive, graph.buffers.feed[:frames])
            graph.run(*state)
            return self._project(graph.buffers.hiddens[:frames], out)
        feed = self._feed(features, drive, buffers.feed[:frames])  # (T, S*256, B, P), time-parallel
        hidden, cell = state  # cell stays float32 even under autocast
        self.loop(feed, hidden, cell, buffers)
        return self._project(buffers.hiddens[:frames], out)

    def loop(self, feed: Tensor, hidden: Tensor, cell: Tensor, buffers: StepBuffers) -> None:
        """The per-frame loop over feed (T, S*256, B, P) as a function of static tensors only (what a CUDA graph
        captures, graphs.py): reads feed (spent in place), hidden and cell (32, 32, B*P, the state's dtype); writes
        buffers.hiddens[:T], cell and hidden (the last frame's)."""
        frames = feed.shape[0]
        for t in range(frames):
            previous = buffers.hiddens[t - 1] if t else hidden.to(feed.dtype)
            self._step(feed[t], previous, cell, buffers, buffers.hiddens[t])
        hidden.copy_(buffers.hiddens[frames - 1])

    def run(self, features: Tensor, drive: Tensor, hidden: Tensor, cell: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The cell's defining out-of-place form over T frames, which autograd records (:meth:`forward` is its
        in-place rewriting for inference; they agree to float32 rounding, tests/model/test_gradients.py).

        Args:
            features: feed-forward output rows (B*T*384, 512), ordered (video, frame, position).
            drive: modulation drive (B, T, S, 256).
            hidden, cell: LSTM state (B, 32, 32, 384).
        Returns:
            (core output (B, T, 512, 16, 24), hidden, cell after the last frame).
        """
        batch, frames = drive.shape[:2]
        rows = features.view(batch, frames, POSITIONS, S, 128)
        feed = torch.einsum("btpsi,sio->tsobp", rows, self.feed_w.to(rows.dtype))  # A F: (T, S, 256, B, P)
        feed = feed + (drive.permute(1, 2, 3, 0) + self.feed_b[..., None])[..., None]  # + b + B m
        feed = feed.reshape(frames, S, 256, batch * POSITIONS)
        hidden, cell = to_columns(hidden), to_columns(cell)  # (32, 32, B*P)
        hiddens = []
        for t in range(frames):
            hidden, cell = self._cell(feed[t], hidden.to(feed.dtype), cell, batch)
            hiddens.append(hidden)
        stacked = torch.stack(hiddens).view(frames, S, 256, batch, POSITIONS)
        out = torch.einsum("soh,tshbp->btsop", self.out_w.to(stacked.dtype), stacked) + self.out_b.to(stacked.dtype)
        return out.reshape(batch, frames, S * 128, 16, 24), from_columns(hidden, batch), from_columns(cell, batch)

    def _cell(self, feed: Tensor, hidden: Tensor, cell: Tensor, batch: int) -> tuple[Tensor, Tensor]:
        """One frame, out of place: feed (S, 256, B*P) feed-forward and modulation parts of the input, hidden and
        cell (32, 32, B*P) -> new (hidden, cell). The same steps as :meth:`_step`."""
        cols = feed.shape[-1]
        pre = feed + torch.bmm(self.inter_w.to(feed.dtype), hidden.reshape(S, 256, cols))
        slots = (REC_SLOTS, REC_WIDTH, batch, POSITIONS)
        conv_in = torch.cat([torch.tanh(pre).reshape(slots), hidden.reshape(slots)], dim=1)  # (32, 64, B, P)
        conv_in = conv_in.permute(2, 0, 1, 3).reshape(batch, REC_SLOTS * 64, 16, 24)
        z = F.conv2d(conv_in, self.conv_w.to(conv_in.dtype), padding=1, groups=REC_SLOTS)
        z = z.view(batch, REC_SLOTS, 64, POSITIONS).permute(1, 2, 0, 3).reshape(REC_SLOTS, 64, cols)
        qkv = torch.bmm(z.transpose(1, 2), self.qkv_w.to(z.dtype))  # (32, B*P, 192)
        q, k, v = qkv.view(REC_SLOTS, batch, POSITIONS, 192).split(64, dim=-1)
        a = normalized_attention(q, k, v, self.scales.to(q.dtype))  # (32, B, P, 64)
        gates = self.gate_b.to(z.dtype) + torch.bmm(self.gate_zw.to(z.dtype), z)
        gates = gates + torch.bmm(self.gate_aw.to(z.dtype), a.reshape(REC_SLOTS, cols, 64).transpose(1, 2))
        return lstm_update(gates, cell)

    def _project(self, hiddens: Tensor, out: Tensor) -> Tensor:
        """Output 1x1 map of the hidden states (T, 32, 32, B*P), accumulated in place into out (B, T, 512, 16, 24).

        Under autocast the hidden states may be of lower precision than ``out``: then a temporary is copied over.
        """
        frames, batch = hiddens.shape[0], out.shape[0]
        hiddens = hiddens.view(frames, S, 256, batch, POSITIONS)
        target = out if out.dtype == hiddens.dtype else out.new_empty(out.shape, dtype=hiddens.dtype)
        blocks = target.view(batch, frames, S, 128, POSITIONS)
        blocks.copy_(self.out_b.to(target.dtype))  # (S, 128, 1), broadcast
        weight = self.out_w.to(target.dtype)  # (S, 128, 256)
        for s in range(S):
            if batched_row_ops(out.device):  # one matmul for all videos, then one strided add
                mapped = torch.matmul(weight[s], hiddens[:, s].flatten(-2))  # (T, 128, B*P)
                blocks[:, :, s] += mapped.unflatten(-1, (batch, POSITIONS)).permute(2, 0, 1, 3)
                continue
            for v in range(batch):  # in place into the strided block of each video
                blocks[v, :, s].baddbmm_(weight[s].expand(frames, -1, -1), hiddens[:, s, :, v])
        return out if target is out else out.copy_(target)

    def _feed(self, features: Tensor, drive: Tensor, out: Tensor) -> Tensor:
        """Feed-forward and modulation parts of the recurrent input, A F + b + B m, written straight into ``out``.

        Args: features rows (B*T*P, S*128); drive (B, T, S, 256); out (T, S*256, B*P) buffer.
        Returns: out viewed as (T, S*256, B, P).
        """
        batch, frames = drive.shape[:2]
        feed = out.view(frames, S, 256, batch, POSITIONS)
        feed.copy_((drive.permute(1, 2, 3, 0) + self.feed_b[..., None])[..., None])  # b + B m, broadcast over P
        rows = features.view(batch, frames, POSITIONS, S, 128)
        weight = self.feed_w.to(out.dtype).transpose(1, 2)  # (S, 256, 128)
        for s in range(S):  # in-place accumulation into the strided blocks: no transposing copy of the result
            if batched_row_ops(out.device):  # one copy of the rows, then one matmul for all videos
                columns = rows[:, :, :, s].permute(1, 3, 0, 2).reshape(frames, 128, batch * POSITIONS)
                feed[:, s].flatten(-2).baddbmm_(weight[s].expand(frames, -1, -1), columns)
                continue
            for v in range(batch):
                feed[:, s, :, v].baddbmm_(weight[s].expand(frames, -1, -1), rows[v, :, :, s].transpose(1, 2))
        return feed.view(frames, S * 256, batch, POSITIONS)

    def kernel_weights(self):
        """The cell's weights laid out for the Triton step (``recurrent_triton.StepWeights``), made once per
        device (the buffers' storage) and cached."""
        from berg_ray.model.kernels.recurrent_triton import step_weights  # needs triton

        key = self.conv_w.data_ptr()
        if self._kernel_weights is None or self._kernel_weights[0] != key:
            made = step_weights(self.conv_w, self.qkv_w, self.scales, self.gate_zw, self.gate_aw, self.gate_b)
            self._kernel_weights = (key, made)
        return self._kernel_weights[1]

    def _step(self, feed: Tensor, hidden: Tensor, cell: Tensor, buffers: StepBuffers, hidden_out: Tensor) -> None:
        """One frame in column layout (B videos side by side along the last axis: B*P columns); with
        ``kernels="triton"`` as two fused Triton kernels after the inter-group matmul (``recurrent_triton.py``).

        Args: feed (S*256, B, P) feed-forward and modulation parts of the input; hidden (32, 32, B*P); cell
        (32, 32, B*P), updated in place; hidden_out (32, 32, B*P) receives the new hidden state.
        """
        batch, cols = feed.shape[1], feed.shape[1] * POSITIONS
        inter_w, qkv_w, gate_zw, gate_aw, gate_b = buffers.weights
        if triton_step(self.kernels, feed):
            from berg_ray.model.kernels.recurrent_triton import step_triton  # needs triton

            step_triton(feed, hidden, cell, hidden_out, inter_w, self.kernel_weights())
            return
        pre = feed.view(S, 256, cols).baddbmm_(inter_w, hidden.view(S, 256, cols))  # in place: feed[t] is spent
        conv_in = buffers.conv_in.permute(1, 2, 0, 3)  # (32, 64, B, P) view of the (B, 32, 64, P) conv input
        tanh_into(pre.view(REC_SLOTS, REC_WIDTH, batch, POSITIONS), conv_in[:, :REC_WIDTH])
        conv_in[:, REC_WIDTH:] = hidden.view(REC_SLOTS, REC_WIDTH, batch, POSITIONS)
        z = F.conv2d(buffers.conv_in.view(batch, REC_SLOTS * 64, 16, 24), self.conv_w, padding=1, groups=REC_SLOTS)
        z = z.view(batch, REC_SLOTS, 64, POSITIONS).permute(1, 2, 0, 3).reshape(REC_SLOTS, 64, cols)
        qkv = torch.bmm(z.transpose(1, 2), qkv_w, out=buffers.qkv)  # (32, B*P, 192), position-major
        q, k, v = qkv.view(REC_SLOTS, batch, POSITIONS, 192).split(64, dim=-1)
        a = normalized_attention(q, k, v, self.scales)  # (32, B, P, 64)
        gates = buffers.gates.copy_(gate_b).baddbmm_(gate_zw, z)  # (32, 128, B*P): b + W_z z + W_a a
        # reshape, not view: CUDA's attention kernels may return a (32, P, B, 64)-ordered layout for B > 1
        gates = gates.baddbmm_(gate_aw, a.reshape(REC_SLOTS, cols, 64).transpose(1, 2))
        lstm_update_(gates, cell, hidden_out)


def to_columns(state: Tensor) -> Tensor:
    """LSTM state (B, 32, 32, P) -> column layout (32, 32, B*P), a new tensor."""
    return state.permute(1, 2, 0, 3).reshape(REC_SLOTS, REC_WIDTH, -1).clone()


def from_columns(state: Tensor, batch: int) -> Tensor:
    """Column layout (32, 32, B*P) -> LSTM state (B, 32, 32, P), a new tensor."""
    return state.view(REC_SLOTS, REC_WIDTH, batch, POSITIONS).permute(2, 0, 1, 3).contiguous()
