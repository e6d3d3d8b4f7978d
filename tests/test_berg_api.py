"""The BERG-compatible facade: selection semantics, accepted inputs, and every error a user can cause."""

from __future__ import annotations

import re

import numpy as np
import pytest

from berg_ray import BERG
from berg_ray.config import MODEL_ID
from berg_ray.errors import (BergRayError, DeviceError, InvalidArgumentError, InvalidSelectionError,
                             InvalidSessionError, InvalidStimulusError, ScanNotAvailableError, UnknownModelError)
from berg_ray.units import GENERATED_KEY

SESSION = "session-8_scan-5"


@pytest.fixture(scope="module")
def berg(demo_berg_dir):
    return BERG(demo_berg_dir)


@pytest.fixture(scope="module")
def model(berg):
    return berg.get_encoding_model(MODEL_ID, train_session=SESSION, device="cpu")


@pytest.fixture(scope="module")
def video():
    return np.random.default_rng(1).integers(0, 256, (4, 144, 256), dtype=np.uint8)


@pytest.fixture(scope="module")
def full_responses(berg, model, video):
    return berg.encode(model, video)


def test_single_and_batched_shapes(berg, model, video, full_responses):
    assert full_responses.shape == (4, 64) and full_responses.dtype == np.float32 and (full_responses > 0).all()
    batched = berg.encode(model, np.stack([video, video[::-1]]))
    assert batched.shape == (2, 4, 64)
    np.testing.assert_allclose(batched[0], full_responses, rtol=1e-6)
    assert not np.allclose(batched[1], batched[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.int64, np.uint16])
def test_integer_valued_numbers_of_any_dtype_equal_uint8(berg, model, video, full_responses, dtype):
    np.testing.assert_array_equal(berg.encode(model, video.astype(dtype)), full_responses)


def test_selection_is_the_union_of_masks_in_readout_order(berg, model, video, full_responses):
    units = model.units
    unit_index = np.zeros(units.n_units, dtype=int)
    unit_index[[0, 5]] = 1
    selection = {"roi": ["V1", "AL"], "field": 2, "unit_index": unit_index}
    chosen = berg.get_encoding_model(MODEL_ID, train_session="session8_scan5", selection=selection, device="cpu")
    expected = np.isin(units.area, ["V1", "AL"]) | (units.field == 2) | unit_index.astype(bool)
    responses, metadata = berg.encode(chosen, video, return_metadata=True)
    np.testing.assert_array_equal(responses, full_responses[:, expected])
    np.testing.assert_array_equal(metadata["calcium_2p"]["unit_id"], units.unit_id[expected])


def test_metadata_is_in_readout_order(berg, model):
    metadata = berg.get_model_metadata(MODEL_ID, train_session=SESSION)
    np.testing.assert_array_equal(metadata["calcium_2p"]["unit_id"], model.units.unit_id)
    assert set(metadata) == {"calcium_2p", "encoding_model", GENERATED_KEY}  # BERG's keys + the generated mark


def test_progress_bar_shows_frames(berg, model, video, capsys):
    berg.encode(model, video, show_progress=True)
    assert "frame" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, error, message", [
    ({"model_id": "calcium_2p-other"}, UnknownModelError, "unknown model id 'calcium_2p-other'"),
    ({"train_session": "session-3_scan-1"}, InvalidSessionError, "not a released scan"),
    ({"train_session": "V1"}, InvalidSessionError, "malformed"),
    ({"train_session": "session-9_scan-6"}, ScanNotAvailableError, "session-9_scan-6 is a valid scan"),
    ({"selection": {"area": "V1"}}, InvalidSelectionError, r"unknown selection key\(s\) \['area'\]"),
    ({"selection": {"roi": "V7"}}, InvalidSelectionError, "selection roi 'V7' is invalid"),
    ({"selection": {"field": 9}}, InvalidSelectionError, "selection field 9 is invalid"),
    ({"selection": {"unit_index": [1, 0]}}, InvalidSelectionError, "length 64"),
    ({"selection": {"unit_index": [2] * 64}}, InvalidSelectionError, "only 0 and 1"),
    ({"selection": {"unit_index": [0] * 64}}, InvalidSelectionError, "selects no unit"),
    ({"device": "tpu"}, DeviceError, "device 'tpu'"),
])
def test_get_encoding_model_errors(berg, kwargs, error, message):
    arguments = {"model_id": MODEL_ID, "train_session": SESSION, "device": "cpu"} | kwargs
    with pytest.raises(error, match=message):
        berg.get_encoding_model(**arguments)


@pytest.mark.parametrize("stimulus, message", [
    (np.zeros((144, 256), np.uint8), "2 dimensions"),
    (np.zeros((1, 1, 4, 144, 256), np.uint8), "5 dimensions"),
    (np.zeros((4, 256, 144), np.uint8), "frames are 256x144"),
    (np.zeros((0, 144, 256), np.uint8), "no frames"),
    (np.full((2, 144, 256), 256.0), r"span \[256.0, 256.0\]"),
    (np.full((2, 144, 256), -1, np.int32), r"span \[-1, -1\]"),
    (np.full((2, 144, 256), np.nan), "NaN or infinite"),
    (np.full((2, 144, 256), np.inf), "NaN or infinite"),
    (np.full((2, 144, 256), 0.5), "non-integer values"),
    (np.zeros((2, 144, 256), bool), "dtype bool is not supported"),
    (np.array([["a"] * 256] * 144)[None], "dtype <U1 is not supported"),
])
def test_bad_stimulus_errors(berg, model, stimulus, message):
    with pytest.raises(InvalidStimulusError, match=message):
        berg.encode(model, stimulus)


def test_errors_are_value_errors_of_the_package():
    assert issubclass(InvalidStimulusError, BergRayError) and issubclass(BergRayError, ValueError)


def test_bfloat16_and_float16_tensors_equal_uint8(berg, model, video, full_responses):
    torch = pytest.importorskip("torch")
    for dtype in (torch.bfloat16, torch.float16):
        np.testing.assert_array_equal(berg.encode(model, torch.from_numpy(video).to(dtype)), full_responses)


@pytest.mark.parametrize("make, message", [
    (lambda torch: torch.empty((2, 144, 256), device="meta"), "meta tensor"),
    (lambda torch: torch.zeros((2, 144, 256)).to_sparse(), "sparse_coo tensor.*to_dense"),
    (lambda torch: torch.full((2, 144, 256), 0.5, dtype=torch.bfloat16), "non-integer values"),
    (lambda torch: torch.zeros((2, 144, 256), dtype=torch.complex32), "dtype torch.complex32 is not supported"),
])
@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_unsupported_tensors_are_refused(berg, model, make, message):
    torch = pytest.importorskip("torch")
    with pytest.raises(InvalidStimulusError, match=message):
        berg.encode(model, make(torch))


@pytest.mark.parametrize("stimulus, message", [
    (np.zeros((2, 144, 256), "m8[s]"), "dtype timedelta64"),
    (np.zeros((2, 144, 256), "M8[s]"), "dtype datetime64"),
    (np.ma.masked_array(np.zeros((2, 144, 256), np.uint8), mask=True), "masked array"),
    (np.ma.masked_array(np.zeros((2, 144, 256), np.uint8)), "masked array"),
])
def test_timedelta_and_masked_stimuli_are_refused(berg, model, stimulus, message):
    with pytest.raises(InvalidStimulusError, match=message):
        berg.encode(model, stimulus)


@pytest.mark.parametrize("chunk_frames", ["abc", 0, -3, 2.5, True, None, np.float64(4)])
def test_bad_chunk_frames_is_refused_at_get_encoding_model(berg, chunk_frames):
    message = "chunk_frames must be a positive integer number of frames, got " + re.escape(repr(chunk_frames))
    with pytest.raises(InvalidArgumentError, match=message):
        berg.get_encoding_model(MODEL_ID, train_session=SESSION, device="cpu", chunk_frames=chunk_frames)


def test_numpy_integer_chunk_frames_is_accepted(berg, video, full_responses):
    chunked = berg.get_encoding_model(MODEL_ID, train_session=SESSION, device="cpu", chunk_frames=np.int64(3))
    assert chunked.chunk_frames == 3 and type(chunked.chunk_frames) is int
    np.testing.assert_allclose(berg.encode(chunked, video), full_responses, rtol=1e-6)
