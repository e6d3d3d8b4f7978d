"""Serve wiring without a cluster: config validation, the application graph, the batching plan and its exactness."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest
import torch

from berg_ray.checkpoint.release import load_model
from berg_ray.config import ServeArgs
from berg_ray.errors import (BergRayError, InvalidSelectionError, InvalidSessionError, InvalidStimulusError,
                             ScanNotAvailableError)
from berg_ray.inference import encode_videos
from berg_ray.serve.app import build_app, take_token_digest
from berg_ray.serve.client import _error_of, _selection_query
from berg_ray.serve.core import VideoJob, plan_segments, run_batch, take_rows
from berg_ray.serve.protocol import (OverloadedError, ReplicaLostError, RequestTooLargeError, UnauthorizedError,
                                     check_token, decode_encode_body, decode_npy, encode_npy, encode_npz, status_of,
                                     token_digest)


def test_serve_args_refuse_unknown_keys_and_bad_sessions():
    with pytest.raises(ValueError, match="extra"):
        ServeArgs.model_validate({"berg_dir": "x", "batching": {"max_batch": 4}})
    with pytest.raises(ValueError, match="session-8_scan-99"):
        ServeArgs(berg_dir="x", sessions=["session-8_scan-99"])
    assert ServeArgs(berg_dir="x", sessions=["session8_scan5"]).sessions == ["session-8_scan-5"]


def test_build_app_graph(fixture_berg_dir, monkeypatch):
    monkeypatch.setenv("BERG_TEST_TOKEN", "s3cret")
    args = {"berg_dir": str(fixture_berg_dir), "token_env": "BERG_TEST_TOKEN", "core": {"num_gpus": 0},
            "ingress": {"min_replicas": 1, "max_replicas": 3}, "batching": {"max_batch_size": 5}}
    app = build_app(args)
    ingress = app._bound_deployment
    assert ingress.name == "Ingress"
    assert ingress._deployment_config.autoscaling_config.max_replicas == 3
    sessions, digest, core = ingress.init_args[1:]
    assert sessions == ["session-4_scan-7", "session-8_scan-5"] and digest == token_digest("s3cret")
    assert core._bound_deployment.name == "CoreServer"
    assert core._bound_deployment._deployment_config.user_config["max_batch_size"] == 5
    assert core._bound_deployment.ray_actor_options["num_gpus"] == 0
    per_scan = build_app(dict(args, heads="per_scan"))
    heads = per_scan._bound_deployment.init_args[3]._bound_deployment.init_args[4]
    assert sorted(h._bound_deployment.name for h in heads.values()) == [
        "ReadoutServer_session-4_scan-7", "ReadoutServer_session-8_scan-5"]
    auto_cpu = build_app(args)._bound_deployment.init_args[3]._bound_deployment.init_args[4]
    assert auto_cpu._bound_deployment.name == "ReadoutServer"  # auto without a GPU: the multiplexed CPU head
    in_core = build_app(dict(args, heads="in_core"))._bound_deployment.init_args[3]._bound_deployment.init_args[4]
    assert in_core is None


def test_core_replicas_fixed_or_autoscaled_one_gpu_each(fixture_berg_dir):
    def core(options: dict):
        app = build_app({"berg_dir": str(fixture_berg_dir), "core": dict(options, num_gpus=1)})
        return app._bound_deployment.init_args[3]._bound_deployment

    single = core({})
    assert single._deployment_config.num_replicas == 1 and single._deployment_config.autoscaling_config is None
    fixed = core({"min_replicas": 2, "max_replicas": 2})
    assert fixed._deployment_config.num_replicas == 2 and fixed.ray_actor_options["num_gpus"] == 1
    scaled = core({"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16})._deployment_config
    assert (scaled.autoscaling_config.min_replicas, scaled.autoscaling_config.max_replicas) == (1, 4)
    assert scaled.autoscaling_config.target_ongoing_requests == 16
    assert core({"min_replicas": 1, "max_replicas": 4}).ray_actor_options["num_gpus"] == 1  # per replica
    for part in ("core", "ingress", "readout"):
        with pytest.raises(ValueError, match=f"{part}\\n.*min_replicas 3 > max_replicas 2"):
            ServeArgs.model_validate({"berg_dir": "x", part: {"min_replicas": 3, "max_replicas": 2}})


def test_serve_refuses_an_unknown_proxy_location(fixture_berg_dir, tmp_path, capsys):
    from berg_ray.cli import main

    config = tmp_path / "serve.yaml"
    config.write_text("proxy_location: Everywhere\n")
    assert main(["serve", "--berg-dir", str(fixture_berg_dir), "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == ("error: config: proxy_location 'Everywhere' must be one of HeadOnly, "
                                               "EveryNode, Disabled")


def test_heads_placement_follows_the_core_device():
    from berg_ray.serve.app import heads_placement

    assert heads_placement("auto", 1.0) == "in_core" and heads_placement("auto", 0.0) == "multiplexed"
    assert heads_placement("per_scan", 1.0) == "per_scan" and heads_placement("in_core", 0.0) == "in_core"
    with pytest.raises(ValueError, match="heads"):
        ServeArgs.model_validate({"berg_dir": "x", "heads": "gpu"})


@pytest.mark.slow  # whole-video model runs (~5 s); scripts/test.sh --quick leaves it out
def test_readout_in_core_equals_the_local_api(fixture_berg_dir, fixture_stimuli):
    """heads=in_core: the core replica computes the readout on its device (a unit subset too) and returns the
    responses that the local API gives."""
    from berg_ray.config import CoreArgs
    from berg_ray.serve.core import CoreServer

    scans = ["session-8_scan-5", "session-4_scan-7"]
    server = CoreServer(str(fixture_berg_dir), scans, "cpu", CoreArgs(), None)
    server._chunk_frames = 2  # several segments: state carried across them
    videos, units = fixture_stimuli[:2, :5], np.array([3, 0, 7])
    model = load_model(fixture_berg_dir)
    for scan, subset in ((scans[0], units), (scans[1], None)):  # the batch body of _run_jobs (@serve.batch)
        parts = asyncio.run(server._run([VideoJob(video, scan, subset) for video in videos]))
        got = np.stack([np.concatenate(p) for p in parts])
        want = np.stack(encode_videos(model, videos, [scan] * 2, {scan: subset}))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    assert asyncio.run(server.ready()) == scans


@pytest.mark.slow  # whole-video model runs (~5 s); scripts/test.sh --quick leaves it out
def test_a_cohort_keeps_each_videos_behaviour(fixture_berg_dir, fixture_stimuli):
    """One cohort of videos with both inputs, none, and modulations only (lengths 5, 3, 5 in 2-frame segments,
    so rows are dropped mid-way): each video's responses equal the local API run with its own behaviour alone."""
    from berg_ray.config import CoreArgs
    from berg_ray.serve.core import CoreServer

    scan = "session-8_scan-5"
    server = CoreServer(str(fixture_berg_dir), [scan], "cpu", CoreArgs(), None)
    server._chunk_frames = 2
    rng = np.random.default_rng(5)
    inputs = [(rng.normal(size=(5, 2)), rng.normal(size=(5, 2))), (None, None), (None, rng.normal(size=(5, 2)))]
    inputs = [tuple(None if x is None else x.astype(np.float32) for x in pair) for pair in inputs]
    lengths = (5, 3, 5)
    jobs = [VideoJob(fixture_stimuli[i, :t], scan, None, p, m) for i, (t, (p, m)) in enumerate(zip(lengths, inputs))]
    parts = asyncio.run(server._run(jobs))
    model = load_model(fixture_berg_dir, [scan])
    for job, job_parts in zip(jobs, parts):
        given = {k: v[None] for k, v in (("perspectives", job.perspectives), ("modulations", job.modulations))
                 if v is not None}
        alone = encode_videos(model, job.frames[None], [scan], **given)[0]
        np.testing.assert_allclose(np.concatenate(job_parts), alone, rtol=1e-6, atol=0)
        if given:
            assert not np.allclose(alone, encode_videos(model, job.frames[None], [scan])[0], rtol=1e-4, atol=0)


def test_build_app_fails_loudly(fixture_berg_dir, monkeypatch):
    monkeypatch.delenv("BERG_TEST_TOKEN", raising=False)
    with pytest.raises(BergRayError, match="BERG_TEST_TOKEN"):
        build_app({"berg_dir": str(fixture_berg_dir), "token_env": "BERG_TEST_TOKEN"})
    with pytest.raises(ScanNotAvailableError, match="session-9_scan-6"):
        build_app({"berg_dir": str(fixture_berg_dir), "sessions": ["session-9_scan-6"]})


def test_take_token_digest_leaves_the_token_out_of_the_environment(monkeypatch):
    """``berg-ray serve`` takes the token before Ray starts (tests/serve/test_secrets.py runs the whole command)."""
    monkeypatch.setenv("BERG_TEST_TOKEN", "s3cret")
    assert take_token_digest("BERG_TEST_TOKEN") == token_digest("s3cret") and "BERG_TEST_TOKEN" not in os.environ
    assert take_token_digest(None) is None
    with pytest.raises(BergRayError, match="BERG_TEST_TOKEN"):
        take_token_digest("BERG_TEST_TOKEN")


def test_plan_segments_cuts_at_ends_and_chunks():
    assert plan_segments([8, 12, 36], 16) == [(0, 8), (8, 12), (12, 16), (16, 32), (32, 36)]
    assert plan_segments([5], 16) == [(0, 5)]


def test_take_rows_keeps_batch_rows_of_nested_state():
    state = {"skip": 3}
    assert take_rows(state, torch.tensor([0])) == state
    out = take_rows([torch.arange(6).view(3, 2), (torch.arange(3),)], torch.tensor([2, 0]))
    assert out[0].tolist() == [[4, 5], [0, 1]] and out[1][0].tolist() == [2, 0]


def test_run_batch_of_mixed_scans_and_lengths_is_exact(fixture_berg_dir, fixture_stimuli):
    """Lock-step segments with rows dropped as videos end give the same responses as one video at a time."""
    model = load_model(fixture_berg_dir)
    lengths, scans = [5, 9, 3], ["session-8_scan-5", "session-4_scan-7", "session-8_scan-5"]
    jobs = [VideoJob(fixture_stimuli[i, :t], s, None) for i, (t, s) in enumerate(zip(lengths, scans))]

    async def forward(active, start, stop, state):
        frames = torch.from_numpy(np.stack([jobs[i].frames[start:stop] for i in active]))
        with torch.inference_mode():
            features, state = model.forward_features(frames, [jobs[i].scan_id for i in active], state)
        return features.numpy(), state

    def send(job, features):
        with torch.inference_mode():
            return model.forward_readout(torch.from_numpy(features)[None], job.scan_id)[0].numpy()

    parts = asyncio.run(run_batch(jobs, 4, forward, send))
    for job, job_parts in zip(jobs, parts):
        alone = encode_videos(model, job.frames[None], [job.scan_id])[0]
        np.testing.assert_allclose(np.concatenate(job_parts), alone, rtol=1e-6, atol=0)


def test_protocol_round_trip_and_errors():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(decode_npy(encode_npy(array)), array)
    with pytest.raises(InvalidStimulusError, match="npy"):
        decode_npy(b"not an npy file")
    with pytest.raises(InvalidStimulusError, match="empty"):
        decode_npy(b"")
    assert [status_of(e("x")) for e in (UnauthorizedError, RequestTooLargeError, OverloadedError, ReplicaLostError,
                                         ScanNotAvailableError, InvalidSessionError, InvalidStimulusError,
                                         InvalidSelectionError, RuntimeError)] == [401, 413, 503, 503, 404, 404,
                                                                                   400, 400, 500]


def test_check_token():
    digest = token_digest("abc")
    check_token("Bearer abc", digest)
    check_token(None, None)
    for header in (None, "", "Bearer", "Basic abc", "Bearer abd"):
        with pytest.raises(UnauthorizedError):
            check_token(header, digest)


def test_client_helpers():
    assert _selection_query({"roi": "V1", "field": [1, 2]}) == [("roi", "V1"), ("field", "1"), ("field", "2")]
    with pytest.raises(InvalidSelectionError, match="unit_index"):
        _selection_query({"unit_index": np.ones(3)})
    error = _error_of(404, b'{"error": "scan x is not loaded", "type": "ScanNotAvailableError"}')
    assert isinstance(error, ScanNotAvailableError) and "HTTP 404" in str(error)
    assert type(_error_of(502, b"<html>bad gateway</html>")) is BergRayError


def test_cli_flags_override_the_config_file(tmp_path):
    from berg_ray.serve.cli import read_config, serve_args_from

    config = read_config("deployments/gpu.yaml")
    args = serve_args_from(config, str(tmp_path), "session8_scan5,session-4_scan-7", "MY_TOKEN")
    assert args.berg_dir == str(tmp_path) and args.sessions == ["session-8_scan-5", "session-4_scan-7"]
    assert args.token_env == "MY_TOKEN" and args.core.num_gpus == 1 and args.readout.max_replicas == 4
    assert serve_args_from(read_config("deployments/local-cpu.yaml"), "x", "all", None).sessions == "all"
    with pytest.raises(BergRayError, match="does not exist"):
        read_config(str(tmp_path / "missing.yaml"))


def test_encode_bodies_npy_and_npz():
    video = np.arange(2 * 144 * 256, dtype=np.int64).reshape(2, 144, 256) % 256
    plain = decode_encode_body(encode_npy(video), 10**7)
    np.testing.assert_array_equal(plain.stimulus, video)
    assert plain.unit_index is None
    mask = np.array([True, False, True])
    both = decode_encode_body(encode_npz(video, mask), 10**7)
    np.testing.assert_array_equal(both.stimulus, video)
    np.testing.assert_array_equal(both.unit_index, mask)
    assert decode_encode_body(encode_npz(video), 10**7).unit_index is None
    with pytest.raises(RequestTooLargeError, match="stimulus"):
        decode_encode_body(encode_npz(video), video.nbytes - 1)
    with pytest.raises(InvalidSelectionError, match="unit_index"):
        decode_encode_body(encode_npz(video, np.array(["a", "b"])), 10**7)


def test_core_precision_is_validated_and_used(fixture_berg_dir):
    from berg_ray.config import CoreArgs
    from berg_ray.serve.core import CoreServer

    assert ServeArgs(berg_dir="x").core.precision == "float32"
    with pytest.raises(ValueError, match="precision"):
        ServeArgs.model_validate({"berg_dir": "x", "core": {"precision": "fp16"}})
    server = CoreServer(str(fixture_berg_dir), ["session-8_scan-5"], "cpu", CoreArgs(precision="bfloat16"), {})
    assert server._model.precision == "bfloat16"
    with pytest.raises(BergRayError, match="tf32"):
        CoreServer(str(fixture_berg_dir), ["session-8_scan-5"], "cpu", CoreArgs(precision="tf32"), {})


def test_readout_head_loads_without_the_core(fixture_berg_dir, fixture_stimuli, tmp_path):
    """load_readout reads one scan's file only (a release without params_core.pt works) and computes exactly what
    the whole model's forward_readout computes."""
    import shutil

    from berg_ray.checkpoint.release import CORE_FILE, load_readout, weights_dir

    model = load_model(fixture_berg_dir, ["session-8_scan-5"])
    with torch.inference_mode():
        features, _ = model.forward_features(torch.from_numpy(fixture_stimuli[:1, :3]), ["session-8_scan-5"])
        expected = model.forward_readout(features, "session-8_scan-5", torch.tensor([5, 0, 7]))[0]
    shutil.copytree(fixture_berg_dir, tmp_path / "berg")
    (weights_dir(tmp_path / "berg") / CORE_FILE).unlink()
    readout = load_readout(tmp_path / "berg", "session8_scan5")
    with torch.inference_mode():
        torch.testing.assert_close(readout(features[0], torch.tensor([5, 0, 7])), expected, rtol=0, atol=0)
    with pytest.raises(ScanNotAvailableError, match="session-9_scan-6"):
        load_readout(tmp_path / "berg", "session-9_scan-6")
