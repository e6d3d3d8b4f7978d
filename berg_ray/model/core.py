"""The shared core (spec §3.4, §3.6): a causal 3-D conv feed-forward network and a convolutional-attention LSTM.

All 4 streams run together: convolutions are grouped with the streams outermost, and the recurrent 1x1 maps are
batched matmuls over (stream, group) slots. Weight normalisation is applied once, at construction. The
feed-forward part processes a whole chunk of frames at once; only the recurrent cell loops over time. Temporal
state (2 past frames per temporal conv, and the LSTM's h and c) is carried in a :class:`CoreState`, so a video
split into chunks gives the same result as one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from berg_ray.config import N_STREAMS
from berg_ray.model.functional import causal_conv3d, gelu_gamma, interleave_slots, normalized_attention, weight_norm

S = N_STREAMS
BLOCKS = ((32, 1, 2), (64, 2, 2), (128, 4, 1))  # (channels C, groups G, spatial pool) per dense block
REC_GROUPS, REC_WIDTH = 8, 32  # recurrent groups per stream, hidden channels per group
REC_SLOTS = S * REC_GROUPS  # 32 (stream, group) slots
_GATES = ("i", "f", "g", "o")


def _stacked(params: Mapping[str, Tensor], prefix: str, gains: bool = True) -> Tensor:
    """Weight-normalised weights of all streams, concatenated along the output dim (stream-major)."""
    return torch.cat([weight_norm(params[f"{prefix}.weights.{s}"],
                                  params[f"{prefix}.gains.{s}"] if gains else None) for s in range(S)])


def _biases(params: Mapping[str, Tensor], prefix: str) -> Tensor:
    return torch.cat([params[f"{prefix}.biases.{s}"].reshape(-1) for s in range(S)])


@dataclass
class CoreState:
    """Temporal state carried between chunks of the same videos.

    Attributes:
        frame: index of the next frame (selects the modulation drive).
        history: per temporal conv (6), its last 2 input frames (B, C, 2, H, W).
        hidden, cell: LSTM state (B, 32 slots, 32, 384 positions).
    """

    frame: int
    history: list[Tensor]
    hidden: Tensor
    cell: Tensor


class FeedForward(nn.Module):
    """Retina images (B, 1, T, 128, 192) -> features (B, 512, T, 16, 24), causal in time."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        p = "core.feedforward"
        self.register_buffer("stem_w", torch.cat([params[f"{p}.inputs.0.weights.{s}"] for s in range(S)]))
        self.register_buffer("stem_b", _biases(params, f"{p}.inputs.0"))
        for i in (1, 2):
            self.register_buffer(f"proj{i}_w", _stacked(params, f"{p}.inputs.{i}"))
            self.register_buffer(f"proj{i}_b", _biases(params, f"{p}.inputs.{i}"))
        for b in range(len(BLOCKS)):
            for layer in (0, 1):
                self.register_buffer(f"block{b}_conv{layer}_w", _stacked(params, f"{p}.blocks.{b}.convs.{layer}"))
                self.register_buffer(f"block{b}_conv{layer}_b", _biases(params, f"{p}.blocks.{b}.convs.{layer}"))
            self.register_buffer(f"block{b}_skip_w", _stacked(params, f"{p}.blocks.{b}.skips.1"))
        self.register_buffer("out_w", _stacked(params, f"{p}.out"))
        self.register_buffer("out_b", _biases(params, f"{p}.out"))

    def initial_history(self, batch: int) -> list[Tensor]:
        """Zero history of the 6 temporal convs for ``batch`` videos (zeros before frame 0, spec §4.2)."""
        history, height, width = [], 64, 96
        for channels, _, pool in BLOCKS:
            history += [self.stem_w.new_zeros(batch, S * channels, 2, height, width) for _ in range(2)]
            height, width = height // pool, width // pool
        return history

    def forward(self, retina: Tensor, history: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        x = F.pad(retina, (2, 2, 2, 2, 0, 0), mode="replicate")  # (B, 1, T, 132, 196)
        x = F.conv3d(x, self.stem_w, self.stem_b, stride=(1, 2, 2))  # (B, 128, T, 64, 96)
        new_history: list[Tensor] = []
        for b, (channels, groups, pool) in enumerate(BLOCKS):
            x, block_history = self._block(b, x, groups, pool, history[2 * b: 2 * b + 2])
            new_history += block_history
            if b < 2:
                x = F.conv3d(x, getattr(self, f"proj{b + 1}_w"), getattr(self, f"proj{b + 1}_b"), groups=S)
        return F.conv3d(x, self.out_w, self.out_b, groups=S), new_history  # (B, 512, T, 16, 24)

    def _block(self, b: int, x0: Tensor, groups: int, pool: int, history: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Dense block: x1 = conv0(gelu x0); x2 = conv1(gelu x1) + skip(gelu x0); out = pool(x0 (+) x1 (+) x2)."""
        n_groups = S * groups
        y0 = gelu_gamma(x0)
        x1, hist0 = causal_conv3d(y0, history[0], getattr(self, f"block{b}_conv0_w"),
                                  getattr(self, f"block{b}_conv0_b"), n_groups)
        x2, hist1 = causal_conv3d(gelu_gamma(x1), history[1], getattr(self, f"block{b}_conv1_w"),
                                  getattr(self, f"block{b}_conv1_b"), n_groups)
        x2 = x2 + F.conv3d(y0, getattr(self, f"block{b}_skip_w"), groups=n_groups)
        parts = [x0, x1, x2]
        if pool > 1:  # pooling is per channel, so pooling before interleaving is exact and moves less data
            parts = [F.avg_pool3d(part, (1, pool, pool)) for part in parts]
        return interleave_slots(parts, n_groups), [hist0, hist1]


class Recurrent(nn.Module):
    """CvtLstm of all streams: features (B, 512, T, 16, 24) + modulation drive -> core output (B, T, 512, 16, 24)."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        p = "core.recurrent"
        self.register_buffer("inter_w", torch.stack([inter_group_matrix(params, s) for s in range(S)]))  # (S,256,256)
        self.register_buffer("feed_w", _stacked(params, f"{p}.proj_x.1").view(S, 256, 128))
        self.register_buffer("feed_b", _biases(params, f"{p}.proj_x.1").view(S, 256, 1))
        self.register_buffer("drive_w", _stacked(params, f"{p}.proj_x.2").view(S, 256, 16))
        self.register_buffer("conv_w", _stacked(params, f"{p}.conv", gains=False).squeeze(2))  # (2048, 64, 3, 3)
        qkv = [_stacked(params, f"{p}.proj_{n}", gains=False).view(REC_SLOTS, 64, 64) for n in "qkv"]
        self.register_buffer("qkv_w", torch.cat(qkv, dim=1))  # (32, 192, 64): rows [q | k | v] per slot
        self.register_buffer("scales", torch.cat([params[f"{p}.scales.{s}"] for s in range(S)]))  # (32, 64)
        gates = [_stacked(params, f"{p}.proj_{g}").view(REC_SLOTS, REC_WIDTH, 128) for g in _GATES]
        self.register_buffer("gate_w", torch.cat(gates, dim=1))  # (32, 128, 128): rows [i | f | g | o]
        gate_b = [_biases(params, f"{p}.proj_{g}").view(REC_SLOTS, REC_WIDTH) for g in _GATES]
        self.register_buffer("gate_b", torch.cat(gate_b, dim=1)[:, :, None])  # (32, 128, 1)
        self.register_buffer("out_w", _stacked(params, f"{p}.out").view(S, 128, 256))
        self.register_buffer("out_b", _biases(params, f"{p}.out").view(S, 128, 1))

    def drive(self, modulation: Tensor) -> Tensor:
        """Modulation (..., S*16) -> its additive drive of the recurrent input (..., S, 256)."""
        m = modulation.unflatten(-1, (S, 16))[..., None]  # (..., S, 16, 1)
        return torch.matmul(self.drive_w, m)[..., 0]

    def initial_state(self, batch: int) -> tuple[Tensor, Tensor]:
        zeros = self.feed_w.new_zeros(batch, REC_SLOTS, REC_WIDTH, 384)
        return zeros, zeros.clone()

    def forward(self, features: Tensor, drive: Tensor, hidden: Tensor, cell: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Args: features (B, 512, T, 16, 24); drive (B, T, S, 256); hidden, cell (B, 32, 32, 384).
        Returns: (core output (B, T, 512, 16, 24), hidden, cell)."""
        batch, _, frames, height, width = features.shape
        f = features.permute(0, 2, 1, 3, 4).reshape(batch, frames, S, 128, height * width)
        feed = torch.matmul(self.feed_w, f) + self.feed_b  # (B, T, S, 256, 384), time-parallel
        hiddens = feed.new_empty(batch, frames, S, 256, height * width)
        for t in range(frames):
            hidden, cell = self._step(feed[:, t], drive[:, t], hidden, cell, height, width)
            hiddens[:, t] = hidden.view(batch, S, 256, -1)
        out = torch.matmul(self.out_w, hiddens) + self.out_b  # (B, T, S, 128, 384)
        return out.view(batch, frames, S * 128, height, width), hidden, cell

    def _step(self, feed: Tensor, drive: Tensor, hidden: Tensor, cell: Tensor, height: int, width: int):
        batch = hidden.shape[0]
        h = hidden.view(batch, S, 256, -1)
        x = torch.tanh((torch.matmul(self.inter_w, h) + feed) + drive[..., None])  # (B, S, 256, 384)
        xh = torch.cat([x.view(hidden.shape), hidden], dim=2)  # (B, 32, 64, 384): [x_g, h_g] per slot
        z = F.conv2d(xh.view(batch, REC_SLOTS * 64, height, width), self.conv_w, padding=1, groups=REC_SLOTS)
        z = z.view(batch, REC_SLOTS, 64, -1)
        q, k, v = torch.matmul(self.qkv_w, z).split(64, dim=2)  # each (B, 32, 64, 384)
        a = normalized_attention(q, k, v, self.scales)
        gates = torch.matmul(self.gate_w, torch.cat([z, a], dim=2)) + self.gate_b  # (B, 32, 128, 384)
        i, f, g, o = gates.split(REC_WIDTH, dim=2)
        cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
        hidden = torch.sigmoid(o) * torch.tanh(cell)
        return hidden, cell


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


class VideoCore(nn.Module):
    """Shared core: retina (B, 1, T, 128, 192) + modulation drive (B, T, S, 256) -> (B, T, 512, 16, 24)."""

    def __init__(self, params: Mapping[str, Tensor]) -> None:
        super().__init__()
        self.feedforward = FeedForward(params)
        self.recurrent = Recurrent(params)

    def initial_state(self, batch: int) -> CoreState:
        hidden, cell = self.recurrent.initial_state(batch)
        return CoreState(0, self.feedforward.initial_history(batch), hidden, cell)

    def forward(self, retina: Tensor, drive: Tensor, state: CoreState) -> tuple[Tensor, CoreState]:
        features, history = self.feedforward(retina, state.history)
        out, hidden, cell = self.recurrent(features, drive, state.hidden, state.cell)
        return out, CoreState(state.frame + retina.shape[2], history, hidden, cell)
