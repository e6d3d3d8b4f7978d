"""`berg-ray encode --input`: every format a sweep reads, read by the sweep's readers, with --resize; errors that
say what to do; a scan the release lacks is refused listing the scans present (issue 18)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from berg_ray import BERG
from berg_ray.cli import main
from berg_ray.config import MODEL_ID
from berg_ray.sweep.video import decode_video, resize_frames
from tests.sweep.helpers import mp4_bytes

SCAN = "session-4_scan-7"


@pytest.fixture(scope="module")
def model(demo_berg_dir):
    berg = BERG(demo_berg_dir)
    return berg, berg.get_encoding_model(MODEL_ID, train_session=SCAN, device="cpu")


def _encode(berg_dir, path, out, *extra: str) -> int:
    return main(["encode", "--berg-dir", str(berg_dir), "--session", SCAN, "--input", str(path), "--out",
                 str(out), "--device", "cpu", *extra])


def _one_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err.strip()


def test_encode_reads_an_mp4_as_a_sweep_does(demo_berg_dir, model, tmp_path):
    """An .mp4 is decoded to grey 30 Hz frames by the sweep's reader; encode gives the API's responses to them."""
    berg, handle = model
    source = np.random.default_rng(1).integers(0, 256, (4, 144, 256), dtype=np.uint8)
    data = mp4_bytes(source)
    (tmp_path / "clip.mp4").write_bytes(data)
    assert _encode(demo_berg_dir, tmp_path / "clip.mp4", tmp_path / "r.npy") == 0
    grey = decode_video("clip.mp4", data)
    assert grey.shape == (4, 144, 256) and np.abs(grey.astype(int) - source).max() <= 2  # near-lossless H.264
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), berg.encode(handle, grey))


def test_encode_reads_an_npz_with_its_behaviour(demo_berg_dir, model, tmp_path, capsys):
    """An .npz's video member and its perspectives / modulations reach the model; --behaviour may add the other
    input but not give one twice."""
    berg, handle = model
    rng = np.random.default_rng(2)
    video = rng.integers(0, 256, (3, 144, 256), dtype=np.uint8)
    eyes, motion = rng.normal(0, 1, (3, 2)).astype(np.float32), rng.normal(0, 1, (3, 2)).astype(np.float32)
    np.savez(tmp_path / "v.npz", stimulus=video, perspectives=eyes)
    assert _encode(demo_berg_dir, tmp_path / "v.npz", tmp_path / "r.npy") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), berg.encode(handle, video, perspectives=eyes))
    np.savez(tmp_path / "b.npz", modulations=motion)
    assert _encode(demo_berg_dir, tmp_path / "v.npz", tmp_path / "r2.npy", "--behaviour", str(tmp_path / "b.npz")) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "r2.npy"),
                                  berg.encode(handle, video, perspectives=eyes, modulations=motion))
    np.savez(tmp_path / "b.npz", perspectives=eyes)
    err = _one_error(capsys, _encode(demo_berg_dir, tmp_path / "v.npz", tmp_path / "r3.npy", "--behaviour",
                                     str(tmp_path / "b.npz")))
    assert "perspectives given twice" in err and "keep one" in err and not (tmp_path / "r3.npy").exists()


def test_encode_resizes_a_640x360_video(demo_berg_dir, model, tmp_path, capsys):
    """--resize: bilinear to 144x256 as sweeps resize (.mp4 and .npy); without it, the size and the fix."""
    berg, handle = model
    big = np.random.default_rng(3).integers(0, 256, (3, 360, 640), dtype=np.uint8)
    data = mp4_bytes(big)
    (tmp_path / "big.mp4").write_bytes(data)
    np.save(tmp_path / "big.npy", big)
    assert _encode(demo_berg_dir, tmp_path / "big.mp4", tmp_path / "m.npy", "--resize") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"),
                                  berg.encode(handle, decode_video("big.mp4", data, resize=True)))
    assert _encode(demo_berg_dir, tmp_path / "big.npy", tmp_path / "a.npy", "--resize") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), berg.encode(handle, resize_frames(big)))
    for name in ("big.mp4", "big.npy"):
        err = _one_error(capsys, _encode(demo_berg_dir, tmp_path / name, tmp_path / "o.npy"))
        assert "360x640" in err and "pass --resize" in err, err
    assert not (tmp_path / "o.npy").exists()


def test_encode_refuses_colour_arrays_saying_how_to_convert(demo_berg_dir, model, tmp_path, capsys):
    """An RGB [T, 144, 256, 3] array is refused as sweeps refuse it, naming the shape and the conversion; the
    conversion it names gives a video that encodes."""
    berg, handle = model
    rgb = np.random.default_rng(4).integers(0, 256, (3, 144, 256, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    err = _one_error(capsys, _encode(demo_berg_dir, tmp_path / "rgb.npy", tmp_path / "o.npy"))
    assert "(3, 144, 256, 3)" in err and "colour" in err and "convert" in err, err
    assert "256x3" not in err and not (tmp_path / "o.npy").exists()
    grey = np.rint(rgb[..., :3] @ [0.299, 0.587, 0.114]).astype(np.uint8)  # the conversion the message names
    np.save(tmp_path / "grey.npy", grey)
    assert _encode(demo_berg_dir, tmp_path / "grey.npy", tmp_path / "g.npy") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), berg.encode(handle, grey))


@pytest.mark.parametrize("name, write, message", [
    ("clip.mp4", lambda p: p.write_bytes(pickle.dumps({"frames": [1, 2]})), "cannot decode video"),
    ("video.npy", lambda p: p.write_bytes(pickle.dumps({"frames": [1, 2]})), "not a readable .npy file"),
    ("video.npy", lambda p: np.save(p, np.array([None, 1], dtype=object), allow_pickle=True), "never loaded"),
    ("video.gif", lambda p: p.write_bytes(b"GIF89a"), "berg-ray encode reads .npy, .npz, .mp4, .avi, .mov, .mkv"),
])
def test_encode_unreadable_files_never_advise_unpickling(demo_berg_dir, tmp_path, capsys, name, write, message):
    path = tmp_path / name
    write(path)
    err = _one_error(capsys, _encode(demo_berg_dir, path, tmp_path / "o.npy"))
    assert message in err and "allow_pickle" not in err and "unsafe" not in err, err


@pytest.mark.parametrize("session, message", [
    ("session-9_scan-6", "--sessions names 'session-9_scan-6', not a scan in "),  # released, not in this release
    ("session-1_scan-1", "--sessions names 'session-1_scan-1', not a scan in "),  # not a released scan at all
])
def test_encode_wrong_scan_lists_the_scans_present(demo_berg_dir, tmp_path, capsys, session, message):
    """One round trip: the error lists the scans whose weights this release holds, not all 13 released."""
    np.save(tmp_path / "v.npy", np.zeros((2, 144, 256), np.uint8))
    code = main(["encode", "--berg-dir", str(demo_berg_dir), "--session", session, "--input", str(tmp_path / "v.npy"),
                 "--out", str(tmp_path / "o.npy"), "--device", "cpu"])
    err = _one_error(capsys, code)
    assert message in err and "; scans in this release: session-4_scan-7, session-8_scan-5 (" in err, err
