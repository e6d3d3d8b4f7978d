"""Fidelity with behaviour inputs against the reference's golden outputs (tests/fixtures/wang2025-reference/behaviour).

The goldens were made by scripts/make_behaviour_goldens.py with the reference (cajal/fnn c34328c): perspectives
alone, modulations alone, both, and a batch mixing a default eye with moved ones; float32 must match to 1e-5
relative. All-zero behaviour must give exactly the output without it, and chunking must not change results.
"""

from __future__ import annotations

import numpy as np
import pytest

from berg_ray import load_model
from berg_ray.config import MODEL_ID
from berg_ray.errors import InvalidBehaviourError
from berg_ray.inference import encode_videos

from .conftest import FIXTURE_SCANS
from .test_fidelity import REL_TOL, berg, max_rel_error  # noqa: F401 - berg is a fixture


@pytest.fixture(scope="module")
def goldens(fixture_dir):
    return {sid: dict(np.load(fixture_dir / "behaviour" / f"{sid}.npz")) for sid in FIXTURE_SCANS}


@pytest.mark.parametrize("session", [  # the smaller scan stays in the quick suite
    pytest.param(FIXTURE_SCANS[0], marks=pytest.mark.slow), FIXTURE_SCANS[1]])
def test_each_input_alone_and_both_match_reference(berg, session, fixture_stimuli, fixture_expected, goldens):
    gold = goldens[session]
    model = berg.get_encoding_model(MODEL_ID, train_session=session, device="cpu")
    runs = {"perspectives": berg.encode(model, fixture_stimuli[0], perspectives=gold["perspectives"][0]),
            "modulations": berg.encode(model, fixture_stimuli[1], modulations=gold["modulations"][1]),
            "both": berg.encode(model, fixture_stimuli[2], perspectives=gold["perspectives"][2],
                                modulations=gold["modulations"][2])}
    for video, (name, responses) in enumerate(runs.items()):
        assert max_rel_error(responses, gold[f"expected_{name}"]) <= REL_TOL, name
        # the behaviour matters: far more than the tolerance away from the output without it
        assert max_rel_error(responses, fixture_expected[session][video]) > 100 * REL_TOL, name


@pytest.mark.slow  # whole-video model runs (~10 s each); scripts/test.sh --quick leaves it out
@pytest.mark.parametrize("session", FIXTURE_SCANS)
def test_batch_keeps_each_videos_behaviour(berg, session, fixture_stimuli, goldens):
    gold = goldens[session]
    model = berg.get_encoding_model(MODEL_ID, train_session=session, device="cpu", chunk_frames=7)
    responses = berg.encode(model, fixture_stimuli, perspectives=gold["batch_perspectives"],
                            modulations=gold["modulations"])
    assert responses.shape == gold["expected_batch"].shape
    assert max_rel_error(responses, gold["expected_batch"]) <= REL_TOL


@pytest.mark.slow  # whole-video model runs (~20 s); scripts/test.sh --quick leaves it out
def test_all_zero_behaviour_is_exactly_the_default(berg, fixture_stimuli):
    model = berg.get_encoding_model(MODEL_ID, train_session="session-8_scan-5", device="cpu")
    zeros = np.zeros((*fixture_stimuli.shape[:2], 2), np.float32)
    default = berg.encode(model, fixture_stimuli)
    np.testing.assert_array_equal(berg.encode(model, fixture_stimuli, perspectives=zeros, modulations=zeros), default)


@pytest.mark.slow  # whole-video model runs (~30 s); scripts/test.sh --quick leaves it out
def test_behaviour_starting_mid_video_and_chunking(fixture_berg_dir, fixture_stimuli, goldens):
    """A video whose inputs are zero for its first frames leaves the default trajectory mid-video (and mid-chunk
    or at a chunk boundary): every chunking gives the one-pass result, and rows of zeros in the same batch stay
    exactly on the default."""
    sid = "session-4_scan-7"
    model = load_model(fixture_berg_dir, [sid], device="cpu")
    videos = fixture_stimuli[:2]
    perspectives = goldens[sid]["perspectives"][:2].copy()
    modulations = goldens[sid]["modulations"][:2].copy()
    perspectives[0, :10] = modulations[0, :10] = 0  # video 0: behaviour from frame 10 on
    perspectives[1] = modulations[1] = 0  # video 1: none
    one_pass = encode_videos(model, videos, [sid] * 2, chunk_frames=36, perspectives=perspectives,
                             modulations=modulations)
    default = encode_videos(model, videos[1:], [sid], chunk_frames=36)[0]
    np.testing.assert_array_equal(one_pass[1], default)
    for chunk_frames in (5, 10, 11):
        chunked = encode_videos(model, videos, [sid] * 2, chunk_frames=chunk_frames, perspectives=perspectives,
                                modulations=modulations)
        np.testing.assert_allclose(chunked[0], one_pass[0], rtol=1e-6, atol=0)
        np.testing.assert_array_equal(chunked[1], default)
    # up to frame 10 video 0 is on the default trajectory; after it, the behaviour acts
    alone = encode_videos(model, videos[:1], [sid], chunk_frames=36)[0]
    np.testing.assert_array_equal(one_pass[0][:10], alone[:10])
    assert max_rel_error(one_pass[0][10:], alone[10:]) > 1e-3


@pytest.mark.parametrize("bad, message", [
    (np.zeros((35, 2)), "exactly one row per stimulus frame"),
    (np.zeros((36, 3)), "2 columns"),
    (np.zeros((1, 36, 2)), "expected [T, 2]"),
    (np.full((36, 2), np.nan), "NaN"),
    (np.zeros((36, 2), dtype=bool), "real numbers"),
    (np.array([["a", "b"]] * 36), "real numbers"),
])
def test_bad_behaviour_is_refused_clearly(berg, fixture_stimuli, bad, message):
    model = berg.get_encoding_model(MODEL_ID, train_session="session-8_scan-5", device="cpu")
    for name in ("perspectives", "modulations"):
        with pytest.raises(InvalidBehaviourError) as error:
            berg.encode(model, fixture_stimuli[0], **{name: bad})
        assert name in str(error.value) and message in str(error.value)


def test_batch_behaviour_must_match_the_batch(berg, fixture_stimuli):
    model = berg.get_encoding_model(MODEL_ID, train_session="session-8_scan-5", device="cpu")
    with pytest.raises(InvalidBehaviourError, match=r"modulations .* shape \[2, 36, 2\]; expected \[B, T, 2\] = "
                                                    r"\[3, 36, 2\]"):
        berg.encode(model, fixture_stimuli, modulations=np.zeros((2, 36, 2)))
    with pytest.raises(InvalidBehaviourError, match="one video's trace per stimulus video|one row per frame"):
        berg.encode(model, fixture_stimuli, perspectives=np.zeros((36, 2)))
