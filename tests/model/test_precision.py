"""The precision switch (berg_ray.runtime.precision) on CPU: float32 stays exact, bfloat16 runs under autocast and stays
close, and what the device cannot run is refused before any file is read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from berg_ray import BERG, load_model
from berg_ray.errors import BergRayError, PrecisionError
from berg_ray.inference import encode_videos
from berg_ray.runtime.precision import PRECISIONS, check_precision, precision_mode

SCAN = "session-8_scan-5"


def test_precisions_listed():
    assert PRECISIONS == ("float32", "tf32", "bfloat16")


@pytest.mark.parametrize("bad", ["fp16", "float64", "", None, 32])
def test_unknown_precision_refused(bad):
    with pytest.raises(PrecisionError, match="use one of float32, tf32, bfloat16"):
        check_precision(bad, torch.device("cpu"))


def test_tf32_refused_on_cpu(fixture_berg_dir, tmp_path):
    with pytest.raises(PrecisionError, match="tf32.*GPU"):
        load_model(fixture_berg_dir, [SCAN], device="cpu", precision="tf32")
    with pytest.raises(PrecisionError, match="tf32"):  # checked before any file is read
        load_model(tmp_path, [SCAN], device="cpu", precision="tf32")
    assert issubclass(PrecisionError, BergRayError)


def test_precision_mode_restores_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with precision_mode("bfloat16", torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


@pytest.mark.slow  # whole-video model runs in two precisions (~15 s); scripts/test.sh --quick leaves it out
def test_bfloat16_agrees_with_float32(fixture_berg_dir, fixture_stimuli, fixture_expected):
    """bfloat16 on CPU: output float32, per-unit correlation with float32 >= 0.99 over the fixture's frames."""
    model = load_model(fixture_berg_dir, [SCAN], device="cpu", precision="bfloat16")
    assert model.precision == "bfloat16"
    videos = fixture_stimuli[:1, :12]
    fast = encode_videos(model, videos, [SCAN])[0]
    exact = fixture_expected[SCAN][0, :12]
    assert fast.dtype == np.float32 and fast.shape == exact.shape and np.all(fast > 0)
    a, b = fast - fast.mean(0), exact - exact.mean(0)
    corr = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    assert np.median(corr) >= 0.999 and corr.min() >= 0.99
    assert not np.array_equal(fast, exact)  # it really ran in another precision
    model.set_precision("float32")
    exact_again = encode_videos(model, videos, [SCAN])[0]
    assert np.max(np.abs(exact_again - exact) / exact) <= 1e-5


@pytest.mark.slow  # whole-video model runs (~5 s; test_core keeps a quick bf16 check); --quick leaves it out
def test_berg_api_precision(fixture_berg_dir, fixture_stimuli, fixture_expected):
    berg = BERG(fixture_berg_dir)
    handle = berg.get_encoding_model("calcium_2p-wang_2025-3DCNN", SCAN, device="cpu")
    assert handle.model.precision == "float32"
    fast = berg.get_encoding_model("calcium_2p-wang_2025-3DCNN", SCAN, device="cpu", precision="bfloat16")
    assert fast.model.precision == "bfloat16"
    responses = berg.encode(fast, fixture_stimuli[0, :4])
    assert responses.dtype == np.float32 and responses.shape == (4, 320)
    with pytest.raises(PrecisionError, match="tf32"):
        berg.get_encoding_model("calcium_2p-wang_2025-3DCNN", SCAN, device="cpu", precision="tf32")
