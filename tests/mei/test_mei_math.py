"""berg_ray.mei's pure math and its optimisation loop, on a tiny differentiable stand-in model (linear filter + exp
per unit; the real model's path is tested in tests/test_mei_experiment.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH
from berg_ray.errors import InvalidArgumentError
from berg_ray.mei import MeiSettings, optimise
from berg_ray.mei.objective import mean_log_rate, own_unit_rates
from berg_ray.mei.optimizer import clip_step
from berg_ray.mei.penalty import blur_penalty, gaussian_blur, gaussian_kernel
from berg_ray.mei.schedule import cosine_lr
from berg_ray.mei.stimulus import init_params, render, unit_rms, unit_seed


def test_gaussian_kernel_is_normalised_symmetric_and_reaches_the_cutoff():
    kernel = gaussian_kernel(2.0, 4.0)
    assert kernel.numel() == 2 * 8 + 1 and math.isclose(float(kernel.sum()), 1.0, rel_tol=1e-6)
    assert torch.equal(kernel, kernel.flip(0)) and int(kernel.argmax()) == 8
    assert torch.equal(gaussian_kernel(0.0, 4.0), torch.ones(1))


def test_blur_keeps_constants_and_the_penalty_prefers_smooth_images():
    constant = torch.full((2, 3, FRAME_HEIGHT, FRAME_WIDTH), 0.7)
    torch.testing.assert_close(gaussian_blur(constant, 2.0, 1.0, 4.0), constant)
    assert blur_penalty(constant, 2.0, 1.0, 4.0).abs().max() < 1e-6
    noise = unit_rms(torch.randn(1, 1, FRAME_HEIGHT, FRAME_WIDTH, generator=torch.Generator().manual_seed(0)))
    cols = torch.arange(FRAME_WIDTH, dtype=torch.float32)
    smooth = unit_rms(torch.sin(2 * math.pi * cols / 40).expand(1, 1, FRAME_HEIGHT, -1).clone())
    rough, fine = float(blur_penalty(noise, 2.0, 0.0, 4.0)), float(blur_penalty(smooth, 2.0, 0.0, 4.0))
    assert rough > 0.5 * FRAME_HEIGHT * FRAME_WIDTH and fine < 0.01 * rough
    # per frame: a video of identical frames costs what one frame does
    assert math.isclose(float(blur_penalty(noise.expand(1, 5, -1, -1), 2.0, 1.0, 4.0)), rough, rel_tol=1e-4)


def test_unit_rms_render_and_seeds():
    raw = torch.randn(3, 2, FRAME_HEIGHT, FRAME_WIDTH) * torch.tensor([0.1, 5.0, 40.0])[:, None, None, None]
    pixels = unit_rms(raw)
    torch.testing.assert_close(pixels.pow(2).flatten(1).mean(1), torch.ones(3))
    video = render(pixels[:, :1], torch.tensor([0.1, 1.0, 100.0]), torch.zeros(3), frames=4)
    assert video.shape == (3, 4, FRAME_HEIGHT, FRAME_WIDTH) and torch.equal(video[:, 0], video[:, 3])
    assert 0 <= float(video.min()) and float(video.max()) <= 255
    assert float(video[0].std()) < 8  # gain 0.1: near grey
    assert unit_seed(0, "session-8_scan-5", 3) == unit_seed(0, "session-8_scan-5", 3)
    assert len({unit_seed(0, "session-8_scan-5", 3), unit_seed(1, "session-8_scan-5", 3),
                unit_seed(0, "session-4_scan-7", 3), unit_seed(0, "session-8_scan-5", 4)}) == 4


def test_clip_step_bounds_each_row_by_its_own_norm():
    param = torch.tensor([[3.0, 4.0], [0.0, 0.0], [30.0, 40.0]])
    grad = torch.tensor([[-1e6, 0.0], [1e6, 0.0], [0.0, 1e-9]])
    new = clip_step(param, grad, lr=10.0, clip=0.01, eps=1e-3)
    steps = (new - param).norm(dim=1)
    torch.testing.assert_close(steps[0], torch.tensor(10.0 * 0.01 * 5.0))  # lr x clip x ||p||
    torch.testing.assert_close(steps[1], torch.tensor(10.0 * 1e-3 * math.sqrt(2)))  # the floor at p = 0
    torch.testing.assert_close(steps[2], torch.tensor(10.0 * 1e-9))  # small gradients are not scaled up
    assert float(new[0, 0]) > 3.0  # descent: against the gradient
    torch.testing.assert_close(clip_step(param[:1], grad[:1], 10.0, 0.01, 1e-3), new[:1])


def test_cosine_schedule():
    assert cosine_lr(0, 10, 2.0) == 2.0 and math.isclose(cosine_lr(5, 10, 2.0), 1.0)
    assert 0 < cosine_lr(9, 10, 2.0) < 0.1


def test_objective_picks_each_videos_own_unit_after_the_burn_in():
    responses = torch.arange(1, 2 * 3 * 2 + 1, dtype=torch.float32).view(2, 3, 2)  # (B, F, B)
    own = own_unit_rates(responses)
    torch.testing.assert_close(own, torch.stack([responses[0, :, 0], responses[1, :, 1]]))
    torch.testing.assert_close(mean_log_rate(own, 1), own[:, 1:].log().mean(1))


def test_settings_refuse_bad_values_naming_the_flag():
    with pytest.raises(InvalidArgumentError, match="--frames 4 must be more than --burn-in-frames 4"):
        MeiSettings(frames=4, burn_in=4)
    with pytest.raises(InvalidArgumentError, match="--steps"):
        MeiSettings(steps=0)
    with pytest.raises(InvalidArgumentError, match="--lr"):
        MeiSettings(lr=float("nan"))
    assert "chunk_frames" not in MeiSettings().record()


class StandIn:
    """Unit u's rate: exp of a smooth random filter's response to the contrast image, per frame."""

    def __init__(self, n_units: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        coarse = torch.randn(n_units, 1, 9, 16, generator=generator)
        self.filters = torch.nn.functional.interpolate(coarse, size=(FRAME_HEIGHT, FRAME_WIDTH), mode="bicubic")[:, 0]
        self.filters /= self.filters.flatten(1).norm(dim=1)[:, None, None]

    def rates(self, video: torch.Tensor) -> torch.Tensor:
        """(B, F, H, W) pixel values -> (B, F, U)."""
        contrast = video / 127.5 - 1.0
        return torch.exp(0.02 * torch.einsum("bfhw,uhw->bfu", contrast, self.filters))


def _run(model: StandIn, units: list[int], settings: MeiSettings):
    index = torch.tensor(units)
    params = init_params([unit_seed(settings.seed, "s", u) for u in units], settings.frames, settings.static,
                         settings.init_gain)
    return optimise(lambda video: own_unit_rates(model.rates(video)[:, :, index]), params, settings)


@pytest.mark.parametrize("static", [True, False])
def test_optimise_drives_each_unit_beyond_the_others_meis(static: bool):
    model, units = StandIn(4), [0, 1, 2, 3]
    settings = MeiSettings(frames=3, burn_in=1, steps=25, static=static, clip=3e-7)
    result = _run(model, units, settings)
    assert result.videos.dtype == np.uint8 and result.videos.shape == (4, 3, FRAME_HEIGHT, FRAME_WIDTH)
    assert result.history.shape == (25, 4) and (result.history[-1] > result.history[0] + 0.5).all()
    if static:
        assert (result.videos == result.videos[:, :1]).all()
    else:
        assert not (result.videos == result.videos[:, :1]).all()
    matrix = model.rates(torch.from_numpy(result.videos).float())[:, 1:].mean(1)  # (MEI, unit)
    assert (matrix.argmax(dim=0) == torch.arange(4)).all()  # each unit's best MEI is its own
    grey = model.rates(torch.full((1, 1, FRAME_HEIGHT, FRAME_WIDTH), 127.5))[0, 0]
    assert (matrix.diagonal() > 2 * grey).all()


def test_same_seed_same_bytes_and_batches_do_not_change_a_units_mei():
    model, settings = StandIn(3), MeiSettings(frames=2, burn_in=1, steps=8)
    batch = _run(model, [0, 1, 2], settings)
    assert np.array_equal(batch.videos, _run(model, [0, 1, 2], settings).videos)
    alone = _run(model, [1], settings)
    assert np.abs(alone.videos[0].astype(int) - batch.videos[1].astype(int)).max() <= 1
    other_seed = _run(model, [1], MeiSettings(frames=2, burn_in=1, steps=8, seed=1))
    assert not np.array_equal(other_seed.videos, alone.videos)
