"""Static images from files and arrays, grey blanks, and trial timing."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from berg_ray.errors import StimulusParameterError
from berg_ray.stimuli import blank, drifting_grating, static_image, trial, trial_sequence


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Encode an (H, W, 3) uint8 image as PNG with PyAV."""
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.height, stream.width, stream.pix_fmt = rgb.shape[0], rgb.shape[1], "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_static_image_from_png_is_grey_cropped_and_held(tmp_path: Path) -> None:
    # A 4:3 image (wider crop needed: rows are cut) with a dark left half and a bright right half, in colour.
    rgb = np.zeros((300, 400, 3), dtype=np.uint8)
    rgb[:, 200:] = (200, 100, 50)
    rgb[:75] = (255, 255, 255)  # top quarter: removed by the 16:9 centre crop (keeps rows 37..262)
    frames = static_image(write_png(tmp_path / "image.png", rgb), 5)
    assert frames.dtype == np.uint8 and frames.shape == (5, 144, 256) and (frames == frames[0]).all()
    grey = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert abs(int(frames[0, 100, 220]) - grey) <= 1 and frames[0, 100, 20] == 0
    assert frames[0, 0, 20] == 255 and frames[0, 30, 20] == 0  # crop: 75 - 37 = 38 source rows = 18 output rows
    assert (frames[0, 40:, :120] == 0).all()


def test_static_image_from_array_keeps_a_full_screen_image() -> None:
    image = np.tile(np.linspace(0, 255, 256), (144, 1))
    frames = static_image(image, 2)
    assert np.abs(frames[0].astype(float) - image).max() <= 1.0


@pytest.mark.parametrize("bad, word", [(np.full((10, 10), 300.0), r"\[0, 255\]"), (np.zeros(5), "shape")])
def test_static_image_rejects_bad_arrays(bad: np.ndarray, word: str) -> None:
    with pytest.raises(StimulusParameterError, match=word):
        static_image(bad, 2)


def test_static_image_rejects_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(StimulusParameterError, match="does not exist"):
        static_image(tmp_path / "missing.png", 2)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(StimulusParameterError, match="cannot decode"):
        static_image(tmp_path / "text.png", 2)


def test_blank_and_trial_timing() -> None:
    assert (blank(3, 60.0) == 60).all() and blank(0).shape == (0, 144, 256)
    stimulus = drifting_grating(0.0, 10)
    frames, timing = trial(stimulus, blank_before=4, blank_after=6, luminance=50.0)
    assert frames.shape == (20, 144, 256) and frames.dtype == np.uint8
    assert (frames[:4] == 50).all() and (frames[14:] == 50).all() and (frames[timing.stimulus_slice] == stimulus).all()
    assert (timing.onset, timing.offset, timing.start, timing.stop) == (4, 14, 0, 20)
    assert timing.onset_s == pytest.approx(4 / 30) and timing.offset_s == pytest.approx(14 / 30)


def test_trial_sequence_concatenates_trials_with_offsets() -> None:
    stimuli = [drifting_grating(0.0, 3), drifting_grating(90.0, 5)]
    frames, timings = trial_sequence(stimuli, blank_before=2, blank_after=1)
    assert frames.shape == (2 + 3 + 1 + 2 + 5 + 1, 144, 256)
    assert [(t.start, t.onset, t.stop) for t in timings] == [(0, 2, 6), (6, 8, 14)]
    for timing, stimulus in zip(timings, stimuli):
        assert (frames[timing.stimulus_slice] == stimulus).all()
    with pytest.raises(StimulusParameterError, match="uint8"):
        trial_sequence([np.zeros((3, 144, 256), dtype=np.float32)])
