"""Behaviour of the pure tensor functions in berg_ray.model.functional against direct formulas (float64)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from berg_ray.model.functional import (
    from_rows, gelu_padded, grouped_affine, grouped_linear_, interleave_rows, lstm_update_, normalized_attention, per_unit_dot,
    pixels_to_unit, pool_rows, to_rows, weight_norm,
)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("shape", [(8, 3, 3, 3, 3), (5, 16, 1, 1, 1), (7, 224)])
def test_weight_norm_matches_direct_formula(gen, shape):
    weight = torch.randn(shape, generator=gen, dtype=torch.float64)
    gain = torch.randn(shape[0], generator=gen, dtype=torch.float64)
    flat = weight.reshape(shape[0], -1)
    centred = flat - flat.mean(dim=1, keepdim=True)
    expected = centred / torch.sqrt((centred**2).sum(dim=1, keepdim=True) + 1e-5) * gain[:, None]
    torch.testing.assert_close(weight_norm(weight, gain).reshape(shape[0], -1), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weight_norm(weight).reshape(shape[0], -1), expected / gain[:, None], rtol=1e-12,
                               atol=1e-12)


def test_weight_norm_gains_are_flattened_row_major(gen):
    weight = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    gain = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(weight_norm(weight, gain), weight_norm(weight, gain.reshape(-1)))


def test_pixels_are_correctly_rounded_divisions():
    levels = torch.arange(256, dtype=torch.uint8)
    expected = (torch.arange(256, dtype=torch.float64) / 255.0).float()
    assert torch.equal(pixels_to_unit(levels), expected)


def test_rows_round_trip(gen):
    x = torch.randn(2, 6, 3, 4, 5, generator=gen).contiguous(memory_format=torch.channels_last_3d)
    rows = to_rows(x)
    assert rows.shape == (2 * 3 * 4 * 5, 6) and rows.data_ptr() == x.data_ptr()
    assert torch.equal(rows[7], x.permute(0, 2, 3, 4, 1).reshape(-1, 6)[7])
    assert torch.equal(from_rows(rows, 2, 3, 4, 5), x)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_gelu_padded_prepends_history_and_applies_exact_gelu(gen, layout):
    x = torch.randn(2, 4, 3, 5, 6, generator=gen).contiguous(memory_format=layout)
    history = torch.randn(2, 4, 2, 5, 6, generator=gen)
    padded = gelu_padded(x, history)
    assert padded.shape == (2, 4, 5, 5, 6) and padded.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(padded[:, :, :2], history)
    expected = 0.5 * x.double() * (1 + torch.erf(x.double() / math.sqrt(2)))  # exact erf form, no gamma
    torch.testing.assert_close(padded[:, :, 2:].double(), expected, rtol=1e-6, atol=1e-6)


def test_grouped_maps_match_grouped_conv(gen):
    groups, n_in, n_out, rows = 4, 3, 5, 11
    x = torch.randn(rows, groups * n_in, generator=gen, dtype=torch.float64)
    weight = torch.randn(groups, n_in, n_out, generator=gen, dtype=torch.float64)
    bias = torch.randn(groups, n_out, generator=gen, dtype=torch.float64)
    conv_w = weight.transpose(1, 2).reshape(groups * n_out, n_in, 1)  # (G*O, I, 1)
    expected = F.conv1d(x.T[None], conv_w, bias.reshape(-1), groups=groups)[0].T
    torch.testing.assert_close(grouped_affine(x, weight, bias), expected)
    base = torch.randn(rows, groups * n_out, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(grouped_linear_(base.clone(), x, weight), base + expected - bias.reshape(-1))


def test_interleave_rows_follows_spec_definition(gen):
    slots, rows = 3, 2
    parts = [torch.randn(rows, slots * width, generator=gen) for width in (2, 2, 2)]
    expected = torch.cat([p[:, k * 2:(k + 1) * 2] for k in range(slots) for p in parts], dim=1)
    assert torch.equal(interleave_rows(parts, slots), expected)


def test_pool_rows_matches_avg_pool(gen):
    images = torch.randn(3, 4, 6, 8, generator=gen)  # (B*T, C, H, W)
    rows = images.permute(0, 2, 3, 1).reshape(-1, 4)
    pooled = pool_rows(rows, 6, 8, 2).view(3, 3, 4, 4).permute(0, 3, 1, 2)
    torch.testing.assert_close(pooled, F.avg_pool2d(images, 2))


def test_normalized_attention_matches_formula(gen):
    q, k, v = (torch.randn(2, 3, 10, 4, generator=gen) for _ in range(3))
    scales = torch.rand(2, 1, 1, 4, generator=gen) * 5
    qd, kd, vd = q.double(), k.double(), v.double()
    logits = (qd / qd.norm(dim=-1, keepdim=True) * scales.double()) @ (kd / kd.norm(dim=-1, keepdim=True)).mT
    expected = torch.softmax(logits, dim=-1) @ vd
    torch.testing.assert_close(normalized_attention(q, k, v, scales).double(), expected, rtol=1e-5, atol=1e-6)


def test_lstm_update_matches_formula(gen):
    gates = torch.randn(2, 4 * 3, 5, generator=gen)  # rows [i, f, o, g]
    cell = torch.randn(2, 3, 5, generator=gen)
    i, f, o, g = gates.double().split(3, dim=1)
    expected_cell = torch.sigmoid(f) * cell.double() + torch.sigmoid(i) * torch.tanh(g)
    expected_hidden = torch.sigmoid(o) * torch.tanh(expected_cell)
    hidden = torch.empty_like(cell)
    lstm_update_(gates, cell, hidden)
    torch.testing.assert_close(cell.double(), expected_cell, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hidden.double(), expected_hidden, rtol=1e-6, atol=1e-6)


def test_per_unit_dot_matches_the_formula_and_does_not_depend_on_other_units():
    generator = torch.Generator().manual_seed(5)
    sampled = torch.randn(3, 4, 128, 50, generator=generator)
    weights = torch.randn(4, 128, 50, generator=generator)
    expected = torch.einsum("nscu,scu->nsu", sampled.double(), weights.double())
    result = per_unit_dot(sampled, weights)
    assert result.shape == (3, 4, 50)
    torch.testing.assert_close(result.double(), expected, rtol=1e-5, atol=1e-5)
    subset = torch.tensor([7, 0, 33])
    assert torch.equal(per_unit_dot(sampled[..., subset], weights[..., subset]), result[..., subset])
