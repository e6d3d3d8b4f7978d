"""The `berg-ray` command: encode, demo-release, and one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from berg_ray import BERG
from berg_ray.cli import main
from berg_ray.config import MODEL_ID


def test_encode_writes_the_same_responses_as_the_api(demo_berg_dir, tmp_path):
    video = np.random.default_rng(2).integers(0, 256, (3, 144, 256), dtype=np.uint8)
    np.save(tmp_path / "video.npy", video)
    code = main(["encode", "--berg-dir", str(demo_berg_dir), "--session", "session-4_scan-7", "--input",
                 str(tmp_path / "video.npy"), "--out", str(tmp_path / "out" / "r.npy"), "--roi", "V1",
                 "--roi", "LM", "--device", "cpu"])
    assert code == 0
    berg = BERG(demo_berg_dir)
    model = berg.get_encoding_model(MODEL_ID, train_session="session-4_scan-7", selection={"roi": ["V1", "LM"]},
                                    device="cpu")
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "r.npy"), berg.encode(model, video))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["r.npy"]  # no temp file left behind


def test_demo_release_writes_requested_scans(tmp_path):
    code = main(["demo-release", "--out", str(tmp_path / "rel"), "--sessions", "session9_scan6", "--units", "7"])
    assert code == 0
    berg = BERG(tmp_path / "rel")
    assert berg.get_encoding_model(MODEL_ID, train_session="session-9_scan-6", device="cpu").n_units == 7


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("args, message", [
    (["encode", "--berg-dir", "{rel}", "--session", "session-1_scan-1", "--input", "{video}", "--out", "{out}"],
     "error: --sessions names 'session-1_scan-1', not a scan in "),
    (["encode", "--berg-dir", "{rel}", "--session", "session-8_scan-5", "--input", "{missing}", "--out",
      "{out}"], "error: input"),
    (["encode", "--berg-dir", "{rel}", "--session", "session-8_scan-5", "--input", "{bad}", "--out", "{out}"],
     "error: {bad}: stimulus frames are 10x10"),
    (["demo-release", "--out", "{out}", "--units", "many"], "error: --units 'many'"),
    (["serve", "--berg-dir", "{missing}"], "error: berg_dir"),  # before Ray starts: no Ray log lines
])
def test_errors_print_one_line_and_exit_2(demo_berg_dir, tmp_path, args, message):
    np.save(tmp_path / "video.npy", np.zeros((2, 144, 256), np.uint8))
    np.save(tmp_path / "bad.npy", np.zeros((2, 10, 10), np.uint8))
    paths = {"rel": demo_berg_dir, "video": tmp_path / "video.npy", "out": tmp_path / "o.npy",
             "missing": tmp_path / "nope.npy", "bad": tmp_path / "bad.npy"}
    argv = [a.format(**paths) for a in args]
    result = subprocess.run([sys.executable, "-m", "berg_ray.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message.format(**paths)) and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "o.npy").exists()


def _run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "berg_ray.cli", *argv], capture_output=True, text=True)


def _assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0], lines[0]


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("make_input, message", [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00"), "not a readable .npy file"),
    (lambda p: np.savez(p.with_suffix(".npz"), video=np.zeros((2, 144, 256), np.uint8)) or
     p.with_suffix(".npz").replace(p), "is an .npz archive"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b"PK\x03\x04 not a zip"), "not a readable .npy file"),
])
def test_encode_unreadable_inputs(demo_berg_dir, tmp_path, make_input, message):
    video = tmp_path / "video.npy"
    make_input(video)
    result = _run_cli("encode", "--berg-dir", str(demo_berg_dir), "--session", "session-8_scan-5", "--input",
                      str(video), "--out", str(tmp_path / "o.npy"), "--device", "cpu")
    _assert_one_line_error(result, message)
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("output, message", [
    ("{tmp}", "is a directory"),
    ("/proc/berg-ray-test/o.npy", "cannot create directory /proc/berg-ray-test"),
    ("/proc/o.npy", "cannot write in /proc"),
    ("{tmp}/file.txt/o.npy", "{tmp}/file.txt is a file, not a directory"),
])
def test_encode_unwritable_output_fails_before_the_model_runs(demo_berg_dir, tmp_path, output, message):
    np.save(tmp_path / "video.npy", np.zeros((2, 144, 256), np.uint8))
    (tmp_path / "file.txt").write_text("keep me")
    result = _run_cli("encode", "--berg-dir", str(demo_berg_dir), "--session", "session-8_scan-5", "--input",
                      str(tmp_path / "video.npy"), "--out", output.format(tmp=tmp_path), "--device", "cpu")
    _assert_one_line_error(result, message.format(tmp=tmp_path))
    assert (tmp_path / "file.txt").read_text() == "keep me" and not Path("/proc/berg-ray-test").exists()


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_encode_chunk_frames_zero_is_refused(demo_berg_dir, tmp_path):
    np.save(tmp_path / "video.npy", np.zeros((2, 144, 256), np.uint8))
    result = _run_cli("encode", "--berg-dir", str(demo_berg_dir), "--session", "session-8_scan-5", "--input",
                      str(tmp_path / "video.npy"), "--out", str(tmp_path / "o.npy"), "--chunk-frames", "0")
    _assert_one_line_error(result, "chunk_frames must be a positive integer number of frames, got 0")


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("out, sessions, message", [
    ("{tmp}/file.txt", "session-8_scan-5", "--out {tmp}/file.txt is a file, not a directory"),
    ("{tmp}/file.txt/rel", "session-8_scan-5", "{tmp}/file.txt is a file, not a directory"),
    ("/proc/berg-ray-release", "session-8_scan-5", "cannot create directory /proc/berg-ray-release"),
    ("{tmp}/rel", ",", "--sessions ',' names no scan"),
    ("{tmp}/rel", " , ,", "--sessions ' , ,' names no scan"),
    ("{tmp}/rel", "session-8_scan-5,bogus", "train_session 'bogus' is malformed"),
])
def test_demo_release_bad_out_or_sessions(tmp_path, out, sessions, message):
    (tmp_path / "file.txt").write_text("keep me")
    result = _run_cli("demo-release", "--out", out.format(tmp=tmp_path), "--sessions", sessions, "--units", "4")
    _assert_one_line_error(result, message.format(tmp=tmp_path))
    assert (tmp_path / "file.txt").read_text() == "keep me" and not (tmp_path / "rel").exists()


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_encode_precision_flag(demo_berg_dir, tmp_path):
    """--precision bfloat16 runs on CPU and stays close to float32; tf32 on CPU is one line, exit 2."""
    np.save(tmp_path / "video.npy", np.random.default_rng(4).integers(0, 256, (3, 144, 256), dtype=np.uint8))
    common = ["encode", "--berg-dir", str(demo_berg_dir), "--session", "session-4_scan-7", "--input",
              str(tmp_path / "video.npy"), "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "fp32.npy")]) == 0
    assert main([*common, "--out", str(tmp_path / "bf16.npy"), "--precision", "bfloat16"]) == 0
    exact, fast = np.load(tmp_path / "fp32.npy"), np.load(tmp_path / "bf16.npy")
    assert fast.dtype == np.float32 and fast.shape == exact.shape and not np.array_equal(fast, exact)
    assert np.max(np.abs(fast - exact) / exact) < 0.05
    done = subprocess.run([sys.executable, "-m", "berg_ray.cli", *common, "--out", str(tmp_path / "t.npy"),
                           "--precision", "tf32"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.startswith("error: precision 'tf32'"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "t.npy").exists()


@pytest.mark.slow  # whole-video model runs (~4 s); the plain encode stays quick; scripts/test.sh --quick leaves it out
def test_encode_with_behaviour_matches_the_api(demo_berg_dir, tmp_path):
    """--behaviour FILE.npz: the same responses as BERG.encode with those inputs, for one video and a batch."""
    rng = np.random.default_rng(6)
    berg = BERG(demo_berg_dir)
    model = berg.get_encoding_model(MODEL_ID, train_session="session-4_scan-7", device="cpu")
    for video, members in [(rng.integers(0, 256, (4, 144, 256), dtype=np.uint8),
                            {"perspectives": rng.normal(0, 1, (4, 2)), "modulations": rng.normal(0, 1, (4, 2))}),
                           (rng.integers(0, 256, (2, 4, 144, 256), dtype=np.uint8),
                            {"modulations": rng.normal(0, 1, (2, 4, 2)).astype(np.float32)})]:
        np.save(tmp_path / "video.npy", video)
        np.savez(tmp_path / "behaviour.npz", **members)
        assert main(["encode", "--berg-dir", str(demo_berg_dir), "--session", "session-4_scan-7", "--input",
                     str(tmp_path / "video.npy"), "--behaviour", str(tmp_path / "behaviour.npz"), "--out",
                     str(tmp_path / "r.npy"), "--device", "cpu"]) == 0
        expected = berg.encode(model, video, **members)
        np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), expected)
        assert not np.allclose(expected, berg.encode(model, video))  # the behaviour reached the model


@pytest.mark.parametrize("make_behaviour, message", [
    (lambda p: np.savez(p, perspectives=np.zeros((3, 2)), speed=np.zeros(3), pupil=np.zeros(3)),
     "holds ['speed', 'pupil'] (unknown members); its members are perspectives and/or modulations"),
    (lambda p: np.savez(p), "holds no arrays"),
    (lambda p: np.savez(p, modulations=np.zeros((2, 2))), "--behaviour {p}: modulations (pupil radius, treadmill "
                                                          "speed) has shape [2, 2]; expected [T, 2] = [3, 2]"),
    (lambda p: np.savez(p, perspectives=np.zeros((3, 3))), "perspectives (pupil centre x, y) has shape [3, 3]"),
    (lambda p: np.savez(p, perspectives=np.full((3, 2), np.inf)), "perspectives contains NaN or infinite"),
    (lambda p: np.savez(p, modulations=np.zeros((1, 3, 2))), "has shape [1, 3, 2]; expected [T, 2]"),
    (lambda p: np.savez(p, modulations=np.array([[None, 1]] * 3, dtype=object)), "a member is not a readable array"),
    (lambda p: np.save(p, np.zeros((3, 2))) or p.with_suffix(".npz.npy").replace(p), "is one .npy array"),
    (lambda p: p.write_bytes(b"PK\x03\x04 not a zip"), "is not a readable .npz file"),
    (lambda p: None, "--behaviour {p} does not exist"),
])
def test_encode_bad_behaviour_file_is_one_line(demo_berg_dir, tmp_path, capsys, make_behaviour, message):
    np.save(tmp_path / "video.npy", np.zeros((3, 144, 256), np.uint8))
    path = tmp_path / "b.npz"
    make_behaviour(path)
    code = main(["encode", "--berg-dir", str(demo_berg_dir), "--session", "session-8_scan-5", "--input",
                 str(tmp_path / "video.npy"), "--behaviour", str(path), "--out", str(tmp_path / "o.npy"),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert message.format(p=path) in err and not (tmp_path / "o.npy").exists()
