"""A sweep whose inputs carry behaviour (issue 17 A) on the shared Ray cluster: .npz files with ``stimulus`` plus
``perspectives`` / ``modulations`` are encoded with it (batched with inputs without behaviour), the rows say what
was given, and a file with bad behaviour is listed as that file's error."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from berg_ray.sweep import run
from tests.sweep.helpers import npy_bytes
from tests.sweep.test_sweep_e2e import _local_api

pytestmark = pytest.mark.slow
SCAN = "session-4_scan-7"  # the smaller fixture scan (96 units)
T = 8


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_sweep_encodes_the_behaviour_its_inputs_carry(ray_cluster, fixture_berg_dir, fixture_stimuli, tmp_path):
    from berg_ray.checkpoint.release import load_model
    from berg_ray.inference import encode_videos

    rng = np.random.default_rng(5)
    videos = fixture_stimuli[:, :T]
    eye, mod = rng.normal(0, 1, (T, 2)).astype(np.float32), rng.normal(0, 1, (T, 2)).astype(np.float32)
    source = tmp_path / "in"
    source.mkdir()
    files = {"plain.npy": npy_bytes(videos[0]), "eye.npz": _npz(stimulus=videos[1], perspectives=eye),
             "run.npz": _npz(stimulus=videos[2], modulations=mod),
             "both.npz": _npz(stimulus=videos[0], perspectives=eye, modulations=mod),
             "bad.npz": _npz(stimulus=videos[1], modulations=mod[:-1])}
    for name, data in files.items():
        (source / name).write_bytes(data)
    result = run(berg_dir=str(fixture_berg_dir), input=str(source), output=str(tmp_path / "out"), sessions=[SCAN],
                 batch_size=8, show_progress=False)
    assert not result.ok and [(e["stimulus_id"], e["error_type"]) for e in result.errors] == [
        ("bad", "InvalidBehaviourError")]
    assert "bad.npz: modulations (pupil radius, treadmill speed) has shape [7, 2]" in result.errors[0]["error"]
    table = pq.read_table(tmp_path / "out").to_pandas().set_index("stimulus_id")
    assert sorted(table.index) == ["both", "eye", "plain", "run"]
    assert table.perspectives_given.to_dict() == {"both": True, "eye": True, "plain": False, "run": False}
    assert table.modulations_given.to_dict() == {"both": True, "eye": False, "plain": False, "run": True}
    model = load_model(fixture_berg_dir, [SCAN])
    expected = {"plain": _local_api(fixture_berg_dir, videos[:1], SCAN)[0],
                "eye": encode_videos(model, videos[1:2], [SCAN], perspectives=eye[None])[0],
                "run": encode_videos(model, videos[2:3], [SCAN], modulations=mod[None])[0],
                "both": encode_videos(model, videos[:1], [SCAN], perspectives=eye[None], modulations=mod[None])[0]}
    for stimulus_id, want in expected.items():
        got = np.stack(table.responses[stimulus_id]).astype(np.float32)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=stimulus_id)
    assert np.abs(expected["both"] - expected["plain"]).max() > 1e-3  # the behaviour reached the model
