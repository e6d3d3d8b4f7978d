"""``berg-ray plot responses`` (issue 18): reads every input format a sweep reads (frames as the sweep saw them),
labels time from the video's start (``--skip-frames`` counted) and says whose weights made the responses."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from berg_ray.cli import main
from berg_ray.experiments.figures import draw_raster
from berg_ray.experiments.plot_cli import read_response_plot
from berg_ray.outputs import load_sweep
from berg_ray.stimuli import drifting_grating
from berg_ray.sweep import run
from tests.sweep.helpers import mp4_bytes

SCAN = "session-8_scan-5"
SKIP = 4


def png_title(data: bytes) -> str:
    from PIL import Image

    return Image.open(io.BytesIO(data)).text.get("Title", "")


@pytest.fixture(scope="module")
def swept(ray_cluster, demo_berg_dir: Path, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A --skip-frames 4 sweep of the generated release over an .mp4 input (and an .npy one)."""
    root = tmp_path_factory.mktemp("plot_responses")
    video = drifting_grating(45.0, 12)
    (root / "in" / "clips").mkdir(parents=True)
    (root / "in" / "clips" / "grating.mp4").write_bytes(mp4_bytes(video))
    np.save(root / "in" / "still.npy", video[:10])
    result = run(berg_dir=str(demo_berg_dir), input=str(root / "in"), output=str(root / "out"), sessions=[SCAN],
                 skip_frames=SKIP, device="cpu", num_workers=1, show_progress=False)
    assert result.ok, result.errors
    return root, video


def test_plot_responses_of_an_mp4_input_times_from_the_video_start(swept, tmp_path: Path, capsys) -> None:
    root, video = swept
    png = tmp_path / "raster.png"
    assert main(["plot", "responses", "--input", str(root / "out"), "--stimulus", "clips/grating", "--session", SCAN,
                 "--stimuli", str(root / "in"), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_title(png.read_bytes()) == f"{SCAN}: responses to clips/grating (generated weights)"
    assert "64 units x 8 frames (0.13-0.37 s of the video)" in capsys.readouterr().out

    plot = read_response_plot(str(root / "out"), "clips/grating", SCAN, stimuli=str(root / "in"))
    assert plot.weights == "generated weights" and plot.responses.shape == (8, 64)
    np.testing.assert_allclose(plot.times_s, (SKIP + np.arange(8)) / 30)
    assert plot.frames.shape == (8, 144, 256) and plot.frames.dtype == np.uint8
    assert np.abs(plot.frames.astype(int) - video[SKIP:]).mean() < 2  # the frames the rows saw (crf 0 H.264)
    figure = draw_raster(plot.responses, plot.frames, plot.title, plot.times_s)
    *thumbnails, raster, _ = figure.axes
    assert raster.get_xlim()[0] == pytest.approx(SKIP / 30) and raster.get_xlim()[1] == pytest.approx(12 / 30)
    assert thumbnails[0].get_title() == "t = 0.13 s" and thumbnails[-1].get_title() == "t = 0.37 s"
    assert "from the video's start" in raster.get_xlabel()
    assert load_sweep(str(root / "out")).units[SCAN].attrs["weights"] == "generated weights"


def test_plot_responses_reads_npy_inputs_and_names_a_missing_one(swept, tmp_path: Path, capsys) -> None:
    root, video = swept
    plot = read_response_plot(str(root / "out"), "still", SCAN, stimuli=str(root / "in"))
    assert (plot.frames == video[SKIP:10]).all() and plot.times_s[0] == pytest.approx(SKIP / 30)
    (root / "other").mkdir(exist_ok=True)
    np.save(root / "other" / "still.npy", video[:5])
    assert main(["plot", "responses", "--input", str(root / "out"), "--stimulus", "still", "--session", SCAN,
                 "--stimuli", str(root / "other"), "--out", str(tmp_path / "x.png")]) == 2
    assert "has 5 frames at 30 Hz, but the sweep's row covers 10" in capsys.readouterr().err
    assert main(["plot", "responses", "--input", str(root / "out"), "--stimulus", "still", "--session", SCAN,
                 "--stimuli", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "holds no input 'still'" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_frames_are_resized_when_the_sweep_resized(tmp_path: Path) -> None:
    from berg_ray.experiments.plot_cli import read_stimulus_frames
    from berg_ray.storage import open_store

    large = np.repeat(np.repeat(drifting_grating(0.0, 6), 2, axis=1), 2, axis=2)  # 288 x 512
    (tmp_path / "big.mp4").write_bytes(mp4_bytes(large))
    frames = read_stimulus_frames(open_store(str(tmp_path)), "big", 2, 4, resize=True)
    assert frames.shape == (4, 144, 256)
    assert np.abs(frames.astype(int) - drifting_grating(0.0, 6)[2:]).mean() < 8
