"""The shared core (spec §3.4, §3.6): a causal 3-D conv feed-forward network and a convolutional-attention LSTM.

All 4 streams run together. The feed-forward part keeps activations channels-last, as (positions, channels) row
matrices: the 3x3x3 temporal convs are grouped oneDNN convolutions over the whole chunk of frames (the time axis
is a conv axis, spec §4.3), and the 1x1 maps are per-stream matmuls on column blocks. Weight normalisation and the
GELU gain are folded into the weights once, at construction. Temporal state (2 past frames per temporal conv, and
the LSTM's h and c) is carried in a :class:`CoreState`, so a video split into chunks gives the same result as one
pass; long chunks are also split internally so that memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from berg_ray.config import N_STREAMS
from berg_ray.model.device_plan import (
    DEFAULT_KERNELS, batched_row_ops, differentiable, graphed_loop, pass_shape, temporal_pairs, triton_glue,
)
from berg_ray.model.functional import (
    GELU_GAMMA, from_rows, gelu_padded, grouped_affine, grouped_linear_, interleave_rows, pool_rows, to_rows,
)
from berg_ray.model.graphs import LoopGraph, graph_key
from berg_ray.model.modulation import ModulationState
from berg_ray.model.params import row_weights, stacked_biases, stacked_weights
from berg_ray.model.recurrent import Recurrent, from_columns, to_columns
from berg_ray.model.temporal_pairs import causal_conv_pairs, pair_layout, pair_weights

S = N_STREAMS
BLOCKS = ((32, 1, 2), (64, 2, 2), (128, 4, 1))  # (channels C, groups G, spatial pool) per dense block
STEM_SIZE = (64, 96)  # stem output (H, W)


@dataclass
class CoreState:
    """Temporal state carried between chunks of the same videos.

    Attributes:
        frame: index of the next frame (selects the modulation drive).
        history: per temporal conv (6), its last 2 input frames (B, C, 2, H, W) after GELU (without the gain).
        hidden, cell: LSTM state (B, 32 slots, 32, 384 positions).
        modulation: state of the modulation LSTMs of videos given a non-zero modulation input (None while every
            video follows the default trajectory); set by the network, not the core.
    """

    frame: int
    history: list[Tensor]
    hidden: Tensor
    cell: Tensor
    modulation: ModulationState | None = None


class FeedForward(nn.Module):
    """Retina images (B, 1, T, 128, 192) -> features as rows (B*T*16*24, 512), causal in time."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        p = "core.feedforward"
        self.register_buffer("stem_w", torch.cat([params[f"{p}.inputs.0.weights.{s}"] for s in range(S)]))
        self.register_buffer("stem_b", stacked_biases(params, f"{p}.inputs.0"))
        for b, (_, groups, _) in enumerate(BLOCKS):
            for layer in (0, 1):  # the gain of the GELU before each conv is folded into its weights
                weight = stacked_weights(params, f"{p}.blocks.{b}.convs.{layer}") * GELU_GAMMA
                weight = weight.contiguous(memory_format=torch.channels_last_3d)  # the inputs' layout: no reorder
                self.register_buffer(f"block{b}_conv{layer}_w", weight)
                self.register_buffer(f"block{b}_conv{layer}_b", stacked_biases(params, f"{p}.blocks.{b}.convs.{layer}"))
                for k, kernel in enumerate(pair_weights(weight)):  # the same conv by frame pairs (temporal_pairs.py)
                    self.register_buffer(f"block{b}_conv{layer}_pair{k}_w", kernel)
            skip = stacked_weights(params, f"{p}.blocks.{b}.skips.1") * GELU_GAMMA
            self.register_buffer(f"block{b}_skip_w", row_weights(skip, S * groups))  # (S*G, C/G, C/G)
        for name, prefix in (("proj1", "inputs.1"), ("proj2", "inputs.2"), ("out", "out")):
            self.register_buffer(f"{name}_w", row_weights(stacked_weights(params, f"{p}.{prefix}"), S))  # (S, I, O)
            self.register_buffer(f"{name}_b", stacked_biases(params, f"{p}.{prefix}").view(S, -1))
        # "torch" or "triton" (set through EncodingModel.set_kernels, which checks the device): with "triton" the
        # glue between the convs runs as Triton kernels on accelerators (device_plan.triton_glue)
        self.kernels = DEFAULT_KERNELS

    def initial_history(self, batch: int) -> list[Tensor]:
        """Zero history of the 6 temporal convs for ``batch`` videos (zeros before frame 0, spec §4.2)."""
        history, (height, width) = [], STEM_SIZE
        for channels, _, pool in BLOCKS:
            for _ in range(2):
                zeros = self.stem_w.new_zeros(batch, S * channels, 2, height, width)
                history.append(zeros.contiguous(memory_format=torch.channels_last_3d))
            height, width = height // pool, width // pool
        return history

    def forward(self, retina: Tensor, history: list[Tensor], first_frame: int) -> tuple[Tensor, list[Tensor]]:
        """Args: retina (B, 1, T, 128, 192); history from :meth:`initial_history` or the previous chunk;
        first_frame: the video's frame index of retina's first frame (aligns the frame pairs of ``temporal_pairs``).
        Returns: (features as rows (B*T*16*24, 512), position-major per frame; the new history, as views into
        this pass's activations: copy them before they are needed beyond the next pass)."""
        x = F.pad(retina, (2, 2, 2, 2, 0, 0), mode="replicate")  # (B, 1, T, 132, 196)
        x = x.as_strided(x.shape, (x[0].numel(), 1, *x.stride()[2:]))  # same memory, marked channels-last
        x = F.conv3d(x, self.stem_w, self.stem_b, stride=(1, 2, 2))  # (B, 128, T, 64, 96)
        x = x.contiguous(memory_format=torch.channels_last_3d)
        new_history: list[Tensor] = []
        for b in range(len(BLOCKS)):
            x, block_history = self._block(b, x, history[2 * b: 2 * b + 2], first_frame)
            new_history += block_history
        return x, new_history

    def _causal_conv(self, b: int, layer: int, x: Tensor, history: Tensor, first_frame: int) -> tuple[Tensor, Tensor]:
        """GELU, causal padding and temporal conv ``layer`` of block b.

        Args: x (B, C, T, H, W); history (B, C, 2, H, W) activated past frames; first_frame: x's first frame index.
        Returns: (the conv input [history, GELU(x)] (B, C, T+2, H, W), the conv output (B, C, T, H, W)). On CPU the
        conv runs by aligned frame pairs (``temporal_pairs``), on accelerators as one 3-D conv.
        """
        weight = getattr(self, f"block{b}_conv{layer}_w")
        bias = getattr(self, f"block{b}_conv{layer}_b")
        groups, frames = S * BLOCKS[b][1], x.shape[2]
        if differentiable(x) or not temporal_pairs(x.device):
            padded = _glue().gelu_padded(x, history) if triton_glue(self.kernels, x) else gelu_padded(x, history)
            return padded, F.conv3d(padded, weight, bias, padding=(0, 1, 1), groups=groups)
        lead, pairs = pair_layout(first_frame, frames)
        padded = gelu_padded(x, history, lead, 2 * pairs - lead - frames)
        kernels = [getattr(self, f"block{b}_conv{layer}_pair{k}_w") for k in range(4)]
        out = causal_conv_pairs(padded, kernels, bias, groups)
        return padded[:, :, lead:lead + frames + 2], out[:, :, lead:lead + frames]

    def _block(self, b: int, x0: Tensor, history: list[Tensor], first_frame: int) -> tuple[Tensor, list[Tensor]]:
        """Dense block (spec §3.4) and the 1x1 projection after it.

        x1 = conv0(gelu x0); x2 = conv1(gelu x1) + skip(gelu x0); z = pool(x0 (+) x1 (+) x2); returns proj(z) as
        (B, C', T, H', W') channels-last for blocks 0-1, as rows (B*T*H*W, 512) for block 2.
        """
        channels, groups, pool = BLOCKS[b]
        batch, _, frames, height, width = x0.shape
        y0, x1 = self._causal_conv(b, 0, x0, history[0], first_frame)  # y0: (B, S*C, T+2, H, W)
        y1, x2 = self._causal_conv(b, 1, x1, history[1], first_frame)
        x2 = x2.contiguous(memory_format=torch.channels_last_3d)
        x2_rows = to_rows(x2)
        per_call = batch if batched_row_ops(x0.device) else 1
        for v in range(0, batch, per_call):  # conv1 output (bias included) + skip, in that order
            rows = slice(v * x2_rows.shape[0] // batch, (v + per_call) * x2_rows.shape[0] // batch)
            skip_in = y0[v:v + per_call, :, 2:]  # a row view for one video; several videos need a copy
            skip_in = to_rows(skip_in) if per_call == 1 else skip_in.permute(0, 2, 3, 4, 1).reshape(-1, y0.shape[1])
            grouped_linear_(x2_rows[rows], skip_in, getattr(self, f"block{b}_skip_w"))
        parts = [to_rows(x0), to_rows(x1.contiguous(memory_format=torch.channels_last_3d)), x2_rows]
        if triton_glue(self.kernels, x0):  # one kernel: pooled window sums written to their slots of z
            z = _glue().pool_interleave(parts, height, width, pool, S * groups)
        else:
            if pool > 1:  # pooling is per channel, so pooling before interleaving is exact and moves less data
                parts = [pool_rows(part, height, width, pool) for part in parts]
            z = interleave_rows(parts, S * groups)  # (N, 3*S*C): per slot [x0_g, x1_g, x2_g]
        history = [y0[:, :, -2:], y1[:, :, -2:]]  # views: the caller copies them into its state
        if b == len(BLOCKS) - 1:
            return grouped_affine(z, self.out_w, self.out_b), history
        out = grouped_affine(z, getattr(self, f"proj{b + 1}_w"), getattr(self, f"proj{b + 1}_b"))
        return from_rows(out, batch, frames, height // pool, width // pool), history


def _glue():
    """The Triton glue kernels' module, imported on first use (it needs triton: kernels="triton" only)."""
    from berg_ray.model.kernels import glue_triton

    return glue_triton


class VideoCore(nn.Module):
    """Shared core: retina (B, 1, T, 128, 192) + modulation drive (B, T, S, 256) -> (B, T, 512, 16, 24)."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.feedforward = FeedForward(params)
        self.recurrent = Recurrent(params)
        # whether the recurrent loop replays CUDA graphs (set through EncodingModel.set_cuda_graphs, which checks
        # the device; graphs.py), and the captured graphs by (batch, frames, dtype, autocast)
        self.cuda_graphs = False
        self.loop_graphs: dict[tuple, LoopGraph] = {}

    def initial_state(self, batch: int) -> CoreState:
        hidden, cell = self.recurrent.initial_state(batch)
        return CoreState(0, self.feedforward.initial_history(batch), hidden, cell)

    def forward(self, retina: Tensor, drive: Tensor, state: CoreState) -> tuple[Tensor, CoreState]:
        """Run one chunk: retina (B, 1, T, 128, 192), drive (B, T, S, 256) -> ((B, T, 512, 16, 24), new state).

        The feed-forward part runs in passes of a few frames (on CPU also one video at a time, so that its large
        activations stay small enough for the allocator to reuse them); after each pass the recurrent loop runs
        those frames for all videos at once.
        """
        if differentiable(retina):
            return self._forward_recorded(retina, drive, state)
        batch, _, frames = retina.shape[:3]
        videos_per_pass, frames_per_pass = pass_shape(retina.device, batch)
        out = retina.new_empty(batch, frames, S * 128, 16, 24)
        history = [h.clone() for h in state.history]  # updated in place, one pass at a time
        columns = (to_columns(state.hidden), to_columns(state.cell))  # (32, 32, B*P), updated in place
        buffers = None
        for start in range(0, frames, frames_per_pass):
            stop = min(start + frames_per_pass, frames)
            features = [self._feedforward_pass(retina[v:v + videos_per_pass, :, start:stop], history, v,
                                                  state.frame + start)
                        for v in range(0, batch, videos_per_pass)]
            features = features[0] if len(features) == 1 else torch.cat(features)
            if graphed_loop(self.cuda_graphs, retina):
                graph = self.loop_graph(batch, stop - start, features.dtype)
                self.recurrent(features, drive[:, start:stop], columns, graph.buffers, out[:, start:stop], graph)
                continue
            if buffers is None:  # sized and typed after the first pass (autocast decides the activations' dtype)
                buffers = self.recurrent.buffers(batch, min(frames, frames_per_pass), features.dtype)
            self.recurrent(features, drive[:, start:stop], columns, buffers, out[:, start:stop])
        hidden, cell = (from_columns(c, batch) for c in columns)
        return out, CoreState(state.frame + frames, history, hidden, cell)

    def loop_graph(self, batch: int, frames: int, dtype: torch.dtype, capture_graph: bool = True) -> LoopGraph:
        """The recurrent loop's CUDA graph for ``batch`` videos x ``frames`` frames in ``dtype``, captured on first
        use (``capture_graph=False``: an eager LoopGraph, for the CPU tests) and kept until cuda_graphs is turned
        off (each holds its StepBuffers and memory pool)."""
        key = graph_key(batch, frames, dtype, self.recurrent.feed_w.device)
        if key not in self.loop_graphs:
            self.loop_graphs[key] = LoopGraph(self.recurrent, batch, frames, dtype, capture_graph)
        return self.loop_graphs[key]

    def _forward_recorded(self, retina: Tensor, drive: Tensor, state: CoreState) -> tuple[Tensor, CoreState]:
        """:meth:`forward` in the layers' out-of-place forms, for autograd: one feed-forward pass over the chunk,
        then the recurrent cell (``Recurrent.run``). Memory grows with the chunk: callers bound it by chunking
        (berg_ray.model.gradients)."""
        features, history = self.feedforward(retina, state.history, state.frame)
        history = [h.clone() for h in history]  # own storage: the views would keep the chunk's activations alive
        out, hidden, cell = self.recurrent.run(features, drive, state.hidden, state.cell)
        return out, CoreState(state.frame + retina.shape[2], history, hidden, cell)

    def _feedforward_pass(self, retina: Tensor, history: list[Tensor], first: int, frame: int) -> Tensor:
        """Feed-forward part for videos first..first+n-1 of the batch, from their frame ``frame`` on; their rows of
        ``history`` are updated."""
        videos = slice(first, first + retina.shape[0])
        features, new_history = self.feedforward(retina, [h[videos] for h in history], frame)
        for h, new in zip(history, new_history):
            h[videos] = new
        return features

