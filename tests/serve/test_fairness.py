"""Fair batching end to end (issue 16, finding 2): real Ray, real Serve, real HTTP on 127.0.0.1.

A long request (96 frames) and, once the core works on it, a short one (8 frames): the short one is answered
long before the long one (the core's cohorts take turns chunk by chunk; with lock-step batching it waited for the
whole long video), and both equal the local API. A request over ``max_frames_per_request`` gets 413 JSON naming
the limit, over HTTP and through the handle.
"""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from berg_ray.config import SERVE_APP_NAME
from berg_ray.serve.cli import free_port
from berg_ray.serve.protocol import encode_npy

pytestmark = pytest.mark.slow
SCAN = "session-8_scan-5"
FRAME_LIMIT = 120
LONG_FRAMES, SHORT_FRAMES = 96, 8


@pytest.fixture(scope="module")
def service(ray_cluster, fixture_berg_dir):
    """(url, handle): default batching but 8-frame chunks, a 120-frame limit per request, the core on the CPU."""
    from ray import serve

    from berg_ray.serve.app import build_app

    serve.shutdown()  # another module's Serve instance would keep its own HTTP port
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    handle = serve.run(build_app({"berg_dir": str(fixture_berg_dir), "max_frames_per_request": FRAME_LIMIT,
                                  "batching": {"chunk_frames": 8}, "core": {"num_gpus": 0, "torch_threads": 2}}),
                       name=SERVE_APP_NAME, route_prefix="/")
    yield f"http://127.0.0.1:{port}", handle
    serve.shutdown()


def post(url: str, body: bytes) -> tuple[int, bytes, float]:
    """(status, body, seconds) of POST /v1/encode for SCAN."""
    start = time.perf_counter()
    request = urllib.request.Request(f"{url}/v1/encode?train_session={SCAN}", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read(), time.perf_counter() - start
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), time.perf_counter() - start


def core_busy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/v1/stats", timeout=60) as response:
        return json.loads(response.read())["ongoing_requests"] > 0


def test_a_short_request_is_answered_while_a_long_one_runs(service, fixture_berg_dir):
    from berg_ray.checkpoint.release import load_model
    from berg_ray.inference import encode_videos

    url, _ = service
    rng = np.random.default_rng(16)
    long, short = (rng.integers(0, 256, (n, 144, 256), dtype=np.uint8) for n in (LONG_FRAMES, SHORT_FRAMES))
    with ThreadPoolExecutor(2) as pool:
        long_future = pool.submit(post, url, encode_npy(long))
        deadline = time.monotonic() + 120
        while not core_busy(url):  # the long video is in the core
            assert time.monotonic() < deadline and not long_future.done()
            time.sleep(0.05)
        short_status, short_body, short_s = post(url, encode_npy(short))
        short_done_first = not long_future.done()
        long_status, long_body, long_s = long_future.result()
    assert (short_status, long_status) == (200, 200), (short_body[:300], long_body[:300])
    print(f"short request {short_s:.2f} s while the long one ran (long: {long_s:.2f} s)")
    assert short_done_first, f"the short request ({short_s:.2f} s) waited for the long one ({long_s:.2f} s)"
    model = load_model(fixture_berg_dir, [SCAN])
    for video, body in ((long, long_body), (short, short_body)):
        served = np.load(io.BytesIO(body))
        np.testing.assert_allclose(served, encode_videos(model, video[None], [SCAN])[0], rtol=1e-5, atol=1e-6)


def test_a_request_over_the_frame_limit_gets_413(service):
    from berg_ray.serve.protocol import RequestTooLargeError

    url, handle = service
    status, body, _ = post(url, encode_npy(np.zeros((3, 41, 144, 256), np.uint8)))  # 123 frames > 120
    assert status == 413, body
    message = json.loads(body)["error"]
    assert "123 frames" in message and f"limit of {FRAME_LIMIT} frames per request" in message
    assert post(url, encode_npy(np.zeros((3, 40, 144, 256), np.uint8)))[0] == 200  # 120: at the limit
    with pytest.raises(RequestTooLargeError, match=f"limit of {FRAME_LIMIT} frames"):
        handle.encode.remote(SCAN, np.zeros((FRAME_LIMIT + 1, 144, 256), np.uint8)).result()
