"""Gradients with respect to the stimulus (berg_ray.model.gradients): the recorded path's forward equals the
reference's goldens and the inference path, its gradient equals central finite differences in float64, and
checkpointing, chunking and causality hold."""

import numpy as np
import pytest
import torch

from berg_ray.checkpoint.release import load_model
from berg_ray.model.gradients import differentiable_responses

SCAN = "session-8_scan-5"
REL_TOL = 1e-5


def rel_error(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


@pytest.fixture(scope="module")
def model(fixture_berg_dir):
    return load_model(fixture_berg_dir, [SCAN], device="cpu")


@pytest.mark.parametrize("chunk", [5, 12])
def test_recorded_forward_matches_reference_goldens(model, fixture_stimuli, fixture_expected, chunk):
    videos = torch.from_numpy(fixture_stimuli[:2, :12]).float().requires_grad_(True)
    responses = differentiable_responses(model, videos, SCAN, chunk_frames=chunk)
    assert responses.requires_grad and responses.dtype == torch.float32
    assert rel_error(responses.detach(), fixture_expected[SCAN][:2, :12]) <= REL_TOL


def test_recorded_forward_equals_inference(model, fixture_stimuli):
    frames = torch.from_numpy(fixture_stimuli[:1, :6])
    units = torch.tensor([3, 0, 17])
    with torch.no_grad():
        inference = torch.cat([r[0] for _, r in model.encode_chunks(frames, [SCAN], 4, {SCAN: units})])
    recorded = differentiable_responses(model, frames.float().requires_grad_(True), SCAN, units, chunk_frames=4)
    assert rel_error(recorded[0].detach(), inference) <= REL_TOL
    untracked = differentiable_responses(model, frames.float(), SCAN, units)  # no grad: the inference rewritings
    assert rel_error(untracked[0], inference) <= 1e-6


@pytest.fixture(scope="module")
def model64(fixture_berg_dir):
    return load_model(fixture_berg_dir, [SCAN], device="cpu").double()


@pytest.mark.slow  # float64 gradients and finite differences (~12 s); scripts/test.sh --quick leaves it out
def test_gradient_matches_central_differences_float64(model64):
    """d/dv of the mean log-rate of two units over frames 1-2 along random directions, against central
    differences (the model is smooth: GELU, tanh, sigmoid, bilinear sampling away from pixel-grid kinks)."""
    generator = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, 144, 256, generator=generator, dtype=torch.float64) * 200 + 20
    units = torch.tensor([0, 5])

    def objective(v):
        return differentiable_responses(model64, v, SCAN, units, chunk_frames=2).log()[:, 1:].mean()

    leaf = video.clone().requires_grad_(True)
    objective(leaf).backward()
    assert leaf.grad.dtype == torch.float64 and leaf.grad.abs().sum() > 0
    for _ in range(2):
        direction = torch.randn(video.shape, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            numeric = (objective(video + 1e-3 * direction) - objective(video - 1e-3 * direction)) / 2e-3
        analytic = (leaf.grad * direction).sum()
        assert abs(float(analytic - numeric)) <= 1e-5 * abs(float(numeric)), (float(analytic), float(numeric))


@pytest.mark.slow  # several recorded backward passes (~12 s); scripts/test.sh --quick leaves it out
def test_checkpointing_and_chunking_do_not_change_the_gradient(model, fixture_stimuli):
    frames = torch.from_numpy(fixture_stimuli[:2, :5]).float()
    grads = []
    for chunk, checkpointed in ((5, False), (2, True), (3, True)):
        leaf = frames.clone().requires_grad_(True)
        differentiable_responses(model, leaf, SCAN, torch.tensor([1, 2]), chunk, checkpointed).log().sum().backward()
        grads.append(leaf.grad)
    for grad in grads[1:]:
        assert torch.allclose(grad, grads[0], rtol=1e-4, atol=1e-4 * float(grads[0].abs().max()))


@pytest.mark.slow  # recorded backward passes (~5 s); scripts/test.sh --quick leaves it out
def test_gradient_is_causal(model, fixture_stimuli):
    """A response at frame t depends on frames 0..t only: its gradient on later frames is exactly zero, and on
    every video but its own too."""
    leaf = torch.from_numpy(fixture_stimuli[:2, :5]).float().requires_grad_(True)
    differentiable_responses(model, leaf, SCAN, torch.tensor([4]), chunk_frames=2)[0, 2, 0].backward()
    assert leaf.grad[0, :3].abs().sum() > 0
    assert torch.count_nonzero(leaf.grad[0, 3:]) == 0 and torch.count_nonzero(leaf.grad[1]) == 0


@pytest.mark.parametrize("videos, error", [
    (torch.zeros(1, 2, 144, 256, dtype=torch.uint8), "float32 or float64"),
    (torch.zeros(2, 144, 256), r"\(B, F, 144, 256\)"),
    (torch.zeros(1, 0, 144, 256), r"\(B, F, 144, 256\)"),
])
def test_refuses_bad_videos(model, videos, error):
    with pytest.raises((TypeError, ValueError), match=error):
        differentiable_responses(model, videos, SCAN)


def test_float_pixels_equal_the_uint8_table():
    """Float frames at integer values become exactly the pixels uint8 frames do (k/255 correctly rounded)."""
    from berg_ray.model.functional import pixels_to_unit

    levels = torch.arange(256)
    assert torch.equal(pixels_to_unit(levels.float()), pixels_to_unit(levels.to(torch.uint8)))
