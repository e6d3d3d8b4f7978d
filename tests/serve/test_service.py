"""The service end to end: real Ray, real Serve, real HTTP on 127.0.0.1 (one deployment for the whole module)."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from berg_ray.checkpoint.release import load_model, read_scan_units
from berg_ray.config import SERVE_APP_NAME
from berg_ray.errors import InvalidBehaviourError, ScanNotAvailableError
from berg_ray.inference import encode_videos
from berg_ray.serve.cli import free_port
from berg_ray.serve.client import BergClient
from berg_ray.serve.protocol import OverloadedError, encode_npy, encode_npz
from berg_ray.units import select_units

pytestmark = pytest.mark.slow
TOKEN = "test-token-1234"
MAX_BODY = 4 * 1024 * 1024
SCANS = ("session-8_scan-5", "session-4_scan-7")


@pytest.fixture(scope="module")
def service(ray_cluster, fixture_berg_dir):
    """(url, handle) of the app with a token, 8-frame chunks, a 4 MiB body limit and a small core queue."""
    import os

    from ray import serve

    from berg_ray.serve.app import build_app

    os.environ["BERG_RAY_TEST_TOKEN"] = TOKEN
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_app({"berg_dir": str(fixture_berg_dir), "token_env": "BERG_RAY_TEST_TOKEN", "max_body_bytes": MAX_BODY,
                     "batching": {"max_batch_size": 8, "batch_wait_timeout_s": 0.05, "chunk_frames": 8},
                     "core": {"num_gpus": 0, "torch_threads": 2, "max_ongoing_requests": 4,
                              "max_queued_requests": 4}})
    handle = serve.run(app, name=SERVE_APP_NAME, route_prefix="/")
    yield f"http://127.0.0.1:{port}", handle
    serve.delete(SERVE_APP_NAME)


@pytest.fixture(scope="module")
def model(fixture_berg_dir):
    return load_model(fixture_berg_dir, SCANS)


@pytest.fixture(scope="module")
def local(model, fixture_stimuli):
    """Local-API responses (36 frames): fixture videos 0-1 for session-8_scan-5, video 0 for session-4_scan-7."""
    return {SCANS[0]: np.stack(encode_videos(model, fixture_stimuli[:2], [SCANS[0]] * 2)),
            SCANS[1]: np.stack(encode_videos(model, fixture_stimuli[:1], [SCANS[1]]))}


@pytest.fixture(scope="module")
def client(service):
    return BergClient(service[0], token=TOKEN)


def test_health_sessions_metadata(client, fixture_berg_dir):
    assert client.health() == {"status": "ok", "sessions": sorted(SCANS)}
    sessions = {s["train_session"]: s for s in client.sessions()}
    assert sessions[SCANS[0]]["n_units"] == 320 and sessions[SCANS[1]]["n_units"] == 96
    assert sessions[SCANS[0]]["fields"] == list(range(1, 9))
    metadata = client.metadata("session8_scan5")
    units = read_scan_units(fixture_berg_dir, SCANS[0])
    assert metadata["calcium_2p"]["unit_id"] == units.metadata["calcium_2p"]["unit_id"].tolist()


def test_http_and_handle_equal_local_api(service, client, local, fixture_berg_dir, fixture_stimuli):
    np.testing.assert_allclose(client.encode(SCANS[0], fixture_stimuli[:2]), local[SCANS[0]], rtol=1e-6, atol=0)
    selection = {"roi": ["V1", "LM"], "field": 2}
    columns = select_units(read_scan_units(fixture_berg_dir, SCANS[1]), selection)
    served = service[1].encode.remote(SCANS[1], fixture_stimuli[0], selection).result()
    np.testing.assert_allclose(served, local[SCANS[1]][0][:, columns], rtol=1e-6, atol=0)


def test_concurrent_mixed_requests_are_correct_and_batched(client, local, fixture_stimuli):
    """16 requests from 4 client threads, mixed scans and lengths; the core batches across them."""
    before = client.stats()["batch_videos_histogram"]
    jobs = [(SCANS[i % 2], (i // 2) % 2 if i % 2 == 0 else 0, (8, 9, 10, 12)[i % 4]) for i in range(16)]

    def run(job):
        scan, video, frames = job
        return client.encode(scan, fixture_stimuli[video, :frames])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, jobs))
    for (scan, video, frames), result in zip(jobs, results):
        np.testing.assert_allclose(result, local[scan][video, :frames], rtol=1e-6, atol=0)
    after = client.stats()["batch_videos_histogram"]
    new = {int(k): v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    assert max(new) > 1, f"the core never batched videos together: {new}"


def test_npz_unit_index_over_http_equals_local_selection(service, client, local, fixture_berg_dir, fixture_stimuli):
    """unit_index travels in an .npz body and joins the roi / field query selection (BERG union)."""
    units = read_scan_units(fixture_berg_dir, SCANS[1])
    mask = np.zeros(units.n_units, dtype=np.uint8)
    mask[[0, 5, units.n_units - 1]] = 1
    selection = {"unit_index": mask, "roi": "AL"}
    columns = select_units(units, selection)
    assert 3 < len(columns) < units.n_units  # the union adds the AL units to the three chosen ones
    served = client.encode(SCANS[1], fixture_stimuli[0], selection=selection)
    np.testing.assert_allclose(served, local[SCANS[1]][0][:, columns], rtol=1e-6, atol=0)
    code, payload, headers = _post(service[0], f"/v1/encode?train_session={SCANS[1]}",
                                   encode_npz(fixture_stimuli[0, :9], mask.astype(bool)))
    assert code == 200 and headers["content-type"].startswith("application/x-npy")
    np.testing.assert_allclose(np.load(io.BytesIO(payload)), local[SCANS[1]][0][:9, np.flatnonzero(mask)],
                               rtol=1e-6, atol=0)


BEHAVIOUR_FRAMES = 12
_RNG = np.random.default_rng(17)
PERSPECTIVES, MODULATIONS = (_RNG.normal(size=(2, BEHAVIOUR_FRAMES, 2)).astype(np.float32) for _ in range(2))


@pytest.fixture(scope="module")
def local_behaviour(model, fixture_stimuli):
    """Local-API responses of fixture videos 0-1 (12 frames, session-8_scan-5) with both behaviour inputs
    ("both") and with modulations only ("modulations")."""
    videos = fixture_stimuli[:2, :BEHAVIOUR_FRAMES]
    return {"both": np.stack(encode_videos(model, videos, [SCANS[0]] * 2, perspectives=PERSPECTIVES,
                                           modulations=MODULATIONS)),
            "modulations": np.stack(encode_videos(model, videos, [SCANS[0]] * 2, modulations=MODULATIONS))}


def test_behaviour_over_http_and_handle_equals_local_api(service, client, local, local_behaviour, fixture_stimuli):
    videos = fixture_stimuli[:2, :BEHAVIOUR_FRAMES]
    assert not np.allclose(local_behaviour["both"], local[SCANS[0]][:, :BEHAVIOUR_FRAMES], rtol=1e-4, atol=0)
    batch = client.encode(SCANS[0], videos, perspectives=PERSPECTIVES, modulations=MODULATIONS)
    np.testing.assert_allclose(batch, local_behaviour["both"], rtol=1e-6, atol=0)
    single = client.encode(SCANS[0], videos[1], perspectives=PERSPECTIVES[1], modulations=MODULATIONS[1])
    np.testing.assert_allclose(single, local_behaviour["both"][1], rtol=1e-6, atol=0)
    served = service[1].encode.remote(SCANS[0], videos[0], modulations=MODULATIONS[0]).result()
    np.testing.assert_allclose(served, local_behaviour["modulations"][0], rtol=1e-6, atol=0)
    zeros = client.encode(SCANS[0], videos[0], perspectives=np.zeros((BEHAVIOUR_FRAMES, 2)),
                          modulations=np.zeros((BEHAVIOUR_FRAMES, 2)))
    np.testing.assert_allclose(zeros, local[SCANS[0]][0, :BEHAVIOUR_FRAMES], rtol=1e-6, atol=0)  # 0: the default


def test_concurrent_clients_with_and_without_behaviour_get_their_own(client, local, local_behaviour,
                                                                    fixture_stimuli):
    """Six clients at once, every other one with behaviour: the core batches them, each row keeps its own input."""
    before = client.stats()["batch_videos_histogram"]
    barrier = threading.Barrier(6)

    def run(i):
        video = i % 2
        behaviour = {"perspectives": PERSPECTIVES[video], "modulations": MODULATIONS[video]} if i % 3 else {}
        barrier.wait()
        for _ in range(20):  # the fixture's core queue holds 4: a 503 is the bound working; retry as clients do
            try:
                return client.encode(SCANS[0], fixture_stimuli[video, :BEHAVIOUR_FRAMES], **behaviour)
            except OverloadedError:
                time.sleep(0.5)
        raise AssertionError("the service stayed at capacity for 10 s")

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run, range(6)))
    for i, result in enumerate(results):
        want = local_behaviour["both"][i % 2] if i % 3 else local[SCANS[0]][i % 2, :BEHAVIOUR_FRAMES]
        np.testing.assert_allclose(result, want, rtol=1e-6, atol=0)
    after = client.stats()["batch_videos_histogram"]
    new = {int(k): v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    assert max(new) > 1, f"the core never batched videos together: {new}"


_CLIP, _TRACE = np.zeros((3, 144, 256), np.uint8), np.zeros((3, 2), np.float32)
BAD_BEHAVIOUR = [  # (members beside the stimulus, stimulus, words the error must hold)
    ({"perspectives": np.zeros((2, 2))}, _CLIP, ("perspectives", "[2, 2]", "[3, 2]", "one row per stimulus frame")),
    ({"modulations": np.zeros((4, 2))}, _CLIP, ("modulations", "[4, 2]", "[3, 2]")),
    ({"modulations": np.zeros((3, 3))}, _CLIP, ("modulations", "[3, 3]", "2 columns")),
    ({"perspectives": np.full((3, 2), np.nan)}, _CLIP, ("perspectives", "NaN", "[0, 0]")),
    ({"modulations": np.array([0, 1, np.inf, 0, 0, 0]).reshape(3, 2)}, _CLIP, ("modulations", "infinite", "[1, 0]")),
    ({"perspectives": np.full((3, 2), "a")}, _CLIP, ("perspectives", "dtype <U1", "real numbers")),
    ({"modulations": np.ones((3, 2), bool)}, _CLIP, ("modulations", "dtype bool")),
    ({"modulations": np.zeros((3, 3, 2))}, np.stack([_CLIP, _CLIP]), ("modulations", "[3, 3, 2]", "[2, 3, 2]")),
    ({"perspectives": _TRACE}, np.stack([_CLIP, _CLIP]), ("perspectives", "[3, 2]", "[B, T, 2] = [2, 3, 2]")),
    ({"perspectives": _TRACE[None]}, _CLIP, ("perspectives", "[1, 3, 2]", "[T, 2] = [3, 2]")),
    ({"perspective": _TRACE}, _CLIP, ("unknown: 'perspective' (shape [3, 2], float32)", "'perspectives' and "
                                      "'modulations' (float [t,2], or [b,t,2] for a batch)")),
]


@pytest.mark.parametrize(("members", "stimulus", "words"), BAD_BEHAVIOUR)
def test_bad_behaviour_gets_400_json_naming_it(service, members, stimulus, words):
    code, payload, _ = _post(service[0], f"/v1/encode?train_session={SCANS[0]}", _npz(stimulus=stimulus, **members))
    assert code == 400, payload
    error = json.loads(payload)
    assert error["type"] in ("InvalidBehaviourError", "InvalidStimulusError")
    for word in words:
        assert word.lower() in error["error"].lower(), error


def test_bad_behaviour_through_the_client_and_the_handle(service, client):
    with pytest.raises(InvalidBehaviourError, match=r"HTTP 400: modulations .*shape \[3, 1\]"):
        client.encode(SCANS[0], _CLIP, modulations=np.zeros((3, 1)))
    with pytest.raises(InvalidBehaviourError, match=r"perspectives .*shape \[2, 2\]"):
        service[1].encode.remote(SCANS[0], _CLIP, perspectives=np.zeros((2, 2))).result()


def _npz(**members) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def _zip_bomb(limit: int) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, stimulus=np.zeros((limit // (144 * 256) + 1, 144, 256), np.uint8))
    return buffer.getvalue()


VIDEO = np.zeros((2, 144, 256), np.uint8)
BAD_NPZ_REQUESTS = [
    (_npz(unit_index=np.ones(96, np.uint8)), 400, "no member 'stimulus'"),
    (_npz(stimulus=VIDEO, extra=np.ones(3)), 400, "extra"),
    (_npz(stimulus=VIDEO, unit_index=np.ones(96)), 400, "bool or integer"),
    (_npz(stimulus=VIDEO, unit_index=np.ones((2, 48), np.uint8)), 400, "1-D"),
    (_npz(stimulus=VIDEO, unit_index=np.ones(95, np.uint8)), 400, "length 96"),
    (_npz(stimulus=VIDEO, unit_index=np.full(96, 2, np.uint8)), 400, "only 0 and 1"),
    (_npz(stimulus=VIDEO, unit_index=np.array([None] * 96, dtype=object)), 400, "not a valid plain .npy"),
    (_npz(stimulus=VIDEO.astype(np.float32) + 0.5), 400, "integer"),
    (b"PK\x03\x04 but not a zip archive", 400, "not a valid .npz"),
    (_zip_bomb(MAX_BODY), 413, "decompresses"),
]


@pytest.mark.parametrize(("body", "status", "words"), BAD_NPZ_REQUESTS)
def test_bad_npz_bodies_get_json_errors(service, body, status, words):
    assert len(body) < MAX_BODY
    code, payload, _ = _post(service[0], "/v1/encode?train_session=session-4_scan-7", body)
    assert code == status, payload
    assert words.lower() in json.loads(payload)["error"].lower()


def _post(url, path, body=b"", token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url + path, data=body, method="POST" if body is not None else "GET",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), {k.lower(): v for k, v in exc.headers.items()}


BAD_REQUESTS = [
    ("?train_session=session-8_scan-5", b"garbage, not npy", 400, "npy"),
    ("?train_session=session-8_scan-5", encode_npy(np.zeros((2, 100, 100), np.uint8)), 400, "144"),
    ("?train_session=session-8_scan-5", encode_npy(np.full((2, 144, 256), 0.5)), 400, "integer"),
    ("?train_session=session-8_scan-5", encode_npy(np.full((2, 144, 256), 300, np.int16)), 400, "255"),
    ("?train_session=session-8_scan-5", encode_npy(np.full((2, 144, 256), np.nan)), 400, "NaN"),
    ("?train_session=session-8_scan-5", encode_npy(np.zeros((0, 144, 256), np.uint8)), 400, "frame"),
    ("?train_session=session-8_scan-5&roi=XX", encode_npy(np.zeros((2, 144, 256), np.uint8)), 400, "XX"),
    ("?train_session=session-8_scan-5&field=x", encode_npy(np.zeros((2, 144, 256), np.uint8)), 400, "field"),
    ("", encode_npy(np.zeros((2, 144, 256), np.uint8)), 400, "train_session"),
    ("?train_session=session-9_scan-6", encode_npy(np.zeros((2, 144, 256), np.uint8)), 404, "not loaded"),
    ("?train_session=nonsense", encode_npy(np.zeros((2, 144, 256), np.uint8)), 400, "nonsense"),
    ("?train_session=session-8_scan-5", encode_npy(np.zeros((120, 144, 256), np.uint8)), 413, "limit"),
]


@pytest.mark.parametrize(("query", "body", "status", "words"), BAD_REQUESTS)
def test_bad_requests_get_json_errors(service, query, body, status, words):
    code, payload, _ = _post(service[0], "/v1/encode" + query, body)
    assert code == status, payload
    assert words.lower() in json.loads(payload)["error"].lower()


def test_auth_and_unknown_routes(service):
    url = service[0]
    body = encode_npy(np.zeros((2, 144, 256), np.uint8))
    for token in (None, "wrong-token"):
        code, payload, _ = _post(url, "/v1/encode?train_session=session-8_scan-5", body, token=token)
        assert code == 401 and "token" in json.loads(payload)["error"]
        assert _post(url, "/v1/sessions", None, token=token)[0] == 401
    assert _post(url, "/healthz", None, token=None)[0] == 200  # health is open to probes
    code, payload, _ = _post(url, "/v2/whatever", None)
    assert code == 404 and "no route" in json.loads(payload)["error"]
    with pytest.raises(ScanNotAvailableError, match="HTTP 404"):
        BergClient(url, token=TOKEN).metadata("session-9_scan-6")


def test_overload_gets_503_with_retry_after_then_recovers(service, client, local, fixture_stimuli):
    body = encode_npy(fixture_stimuli[0, :2])
    barrier = threading.Barrier(24)

    def fire(_):
        barrier.wait()
        return _post(service[0], "/v1/encode?train_session=session-8_scan-5", body)

    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(fire, range(24)))
    codes = sorted(code for code, _, _ in results)
    assert set(codes) <= {200, 503} and 503 in codes and 200 in codes, codes
    rejected = next(r for r in results if r[0] == 503)
    assert rejected[2].get("retry-after") == "1" and "capacity" in json.loads(rejected[1])["error"]
    np.testing.assert_allclose(client.encode(SCANS[0], fixture_stimuli[1, :8]), local[SCANS[0]][1, :8],
                               rtol=1e-6, atol=0)
