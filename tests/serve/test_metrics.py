"""The service's metrics end to end: ``berg-ray serve --metrics-export-port`` (real CLI, its own local Ray cluster,
real Serve HTTP proxy on 127.0.0.1), a known number of videos and frames for two scans plus bad requests, then
``GET http://127.0.0.1:PORT/metrics`` (Ray's metrics agent) until the counters arrive: they must equal what was
sent, per scan, and the 4xx answers by status. Ray's export interval is lowered to 1 s for the test
(``RAY_metrics_report_interval_ms``, which Ray 2.60 honours: the first values appear ~1.5 s after a record instead
of ~11 s). Also the scraped names: Ray prefixes ``ray_`` and adds ``_total`` / ``_bucket`` (berg_ray.cluster.metrics).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from berg_ray.cluster.metrics import METRICS, prometheus_names
from berg_ray.serve.cli import free_port
from berg_ray.serve.protocol import encode_npy
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
TOKEN = "metrics-token-1234"
MAX_BODY = 2 * 1024 * 1024  # 2 MiB: 57 frames; a 60-frame video gets 413
SCANS = ("session-8_scan-5", "session-4_scan-7")
# (scan, videos, frames per video): 4 videos / 40 frames of the first scan, 3 videos / 19 frames of the second
ENCODES = [(SCANS[0], 2, 10), (SCANS[0], 1, 12), (SCANS[0], 1, 8), (SCANS[1], 1, 9), (SCANS[1], 2, 5)]
START_TIMEOUT_S = 420
SCRAPE_TIMEOUT_S = 90  # Ray exports every second here; generous for a busy 2-core machine
REQUEST_TIMEOUT_S = 240
ENCODE_ROUTE = "POST /v1/encode"


def write_config(path: Path) -> Path:
    """deployments/local-cpu.yaml with a 2 MiB body limit and one torch thread (a shared 2-core machine)."""
    config = yaml.safe_load((REPO_ROOT / "deployments" / "local-cpu.yaml").read_text())
    args = config["applications"][0]["args"]
    args["max_body_bytes"] = MAX_BODY
    args["core"]["torch_threads"] = 1
    args["batching"]["chunk_frames"] = 8
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def service(fixture_berg_dir, tmp_path_factory) -> Iterator[tuple[str, int]]:
    """(URL, metrics port) of `berg-ray serve` with a token and a metrics port; stopped with SIGTERM."""
    work = tmp_path_factory.mktemp("metrics_service")
    ray_tmp = Path(tempfile.mkdtemp(prefix="brm-"))  # this service's own Ray temp root (short: socket paths)
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(BERG_RAY_TEST_TOKEN=TOKEN, RAY_TMPDIR=str(ray_tmp), RAY_metrics_report_interval_ms="1000")
    command = [sys.executable, "-m", "berg_ray.cli", "serve", "--berg-dir", str(fixture_berg_dir), "--port",
               str(port), "--config", str(write_config(work / "serve.yaml")), "--token-env", "BERG_RAY_TEST_TOKEN",
               "--metrics-export-port", str(metrics_port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work,
                               env=env)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any("Prometheus metrics" in line for line in lines):
            assert process.poll() is None, "berg-ray serve exited:\n" + "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "berg-ray serve not ready:\n" + "".join(lines)[-4000:]
            time.sleep(0.5)
        assert f"http://127.0.0.1:{metrics_port}/metrics" in "".join(lines)
        yield f"http://127.0.0.1:{port}", metrics_port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def request(url: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
            headers: dict | None = None) -> int:
    """The HTTP status of one request (POST with ``body``, else GET)."""
    headers = dict(headers or {}, **({"Authorization": f"Bearer {token}"} if token else {}))
    req = urllib.request.Request(url + path, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def scrape(metrics_port: int) -> dict[str, dict[tuple, float]]:
    """Prometheus samples of berg_ray's metrics: name -> {label items without Ray's own labels: value summed over
    processes (Ray labels each series with its WorkerId)}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as response:
        text = response.read().decode()
    ray_labels = {"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "otel_scope_name",
                  "otel_scope_schema_url", "otel_scope_version", "JobId"}
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("ray_berg_ray_"):
                key = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ray_labels))
                series = samples.setdefault(sample.name, {})
                series[key] = series.get(key, 0.0) + sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """Sum of the series of ``name`` whose labels include ``labels``."""
    return sum(v for key, v in samples.get(name, {}).items() if set(labels.items()) <= set(key))


def scrape_until(metrics_port: int, done, timeout_s: float = SCRAPE_TIMEOUT_S) -> dict:
    """Scrape every second until ``done(samples)`` or ``timeout_s`` (then the last samples, for the asserts)."""
    deadline, samples = time.monotonic() + timeout_s, {}
    for _ in range(int(timeout_s) + 1):
        samples = scrape(metrics_port)
        if done(samples) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return samples


def test_counters_equal_what_was_sent(service, fixture_stimuli):
    url, metrics_port = service
    rng = np.random.default_rng(0)
    for scan, videos, frames in ENCODES:
        stimulus = fixture_stimuli[rng.integers(0, 3, videos), :frames]  # (B, T, 144, 256)
        assert request(url, f"/v1/encode?train_session={scan}", encode_npy(stimulus)) == 200
    video = encode_npy(np.zeros((2, 144, 256), np.uint8))
    bad = [("/v1/encode?train_session=session-8_scan-5", b"garbage, not npy", TOKEN, 400),
           ("/v1/encode?train_session=nonsense", video, TOKEN, 400),
           ("/v1/encode?train_session=session-9_scan-6", video, TOKEN, 404),
           ("/v1/encode?train_session=session-8_scan-5", video, "wrong-token", 401),
           ("/v1/encode?train_session=session-8_scan-5", video, None, 401),
           ("/v1/encode?train_session=session-8_scan-5", encode_npy(np.zeros((60, 144, 256), np.uint8)), TOKEN, 413)]
    for path, body, token, status in bad:
        assert request(url, path, body, token) == status, path
    assert request(url, "/v2/nothing-here", None) == 404
    sent = {scan: (sum(v for s, v, _ in ENCODES if s == scan), sum(v * f for s, v, f in ENCODES if s == scan))
            for scan in SCANS}

    def arrived(samples: dict) -> bool:
        return (all(value(samples, "ray_berg_ray_frames_encoded_total", scan=s) == sent[s][1] for s in SCANS)
                and value(samples, "ray_berg_ray_requests_total", route="unmatched") == 1
                and value(samples, "ray_berg_ray_request_seconds_count", route=ENCODE_ROUTE) == len(ENCODES) + 6)

    samples = scrape_until(metrics_port, arrived)
    for scan, (videos, frames) in sent.items():
        assert value(samples, "ray_berg_ray_videos_encoded_total", scan=scan, precision="float32") == videos, scan
        assert value(samples, "ray_berg_ray_frames_encoded_total", scan=scan, precision="float32") == frames, scan
    by_status = {status: value(samples, "ray_berg_ray_requests_total", route=ENCODE_ROUTE, status=str(status))
                 for status in (200, 400, 401, 404, 413, 503)}
    assert by_status == {200: len(ENCODES), 400: 2, 401: 2, 404: 1, 413: 1, 503: 0}, samples
    assert value(samples, "ray_berg_ray_requests_total", route="unmatched", status="404") == 1
    assert value(samples, "ray_berg_ray_request_seconds_count", route=ENCODE_ROUTE) == len(ENCODES) + 6
    assert value(samples, "ray_berg_ray_request_seconds_bucket", route=ENCODE_ROUTE, le="+Inf") == len(ENCODES) + 6
    total_videos = sum(videos for videos, _ in sent.values())
    assert value(samples, "ray_berg_ray_core_batch_videos_sum") == total_videos  # every video in one batch
    assert 1 <= value(samples, "ray_berg_ray_core_batch_videos_count") <= total_videos


def test_gauges_settle_and_names_are_the_documented_ones(service, fixture_stimuli):
    """After the requests, nothing is in progress; every series berg_ray exported has a name the catalogue
    (berg_ray.cluster.metrics.METRICS, the dashboard's source) gives it."""
    url, metrics_port = service
    assert request(url, "/healthz", None, token=None) == 200
    assert request(url, f"/v1/encode?train_session={SCANS[1]}", encode_npy(fixture_stimuli[0, :4])) == 200
    gauges = ("ray_berg_ray_ingress_uploads", "ray_berg_ray_ingress_encodes", "ray_berg_ray_core_queued_videos",
              "ray_berg_ray_core_ongoing_requests")
    seen: set[str] = set()  # Ray exports a gauge only in the intervals it was set in: it may come and go

    def settled(samples: dict) -> bool:
        seen.update(g for g in gauges if g in samples)
        return seen == set(gauges) and all(value(samples, g) == 0 for g in gauges) and value(
            samples, "ray_berg_ray_requests_total", route="GET /healthz", status="200") >= 1

    samples = scrape_until(metrics_port, settled)  # an export may lag the last change
    assert seen == set(gauges), set(gauges) - seen
    for gauge in gauges:
        assert value(samples, gauge) == 0, (gauge, samples.get(gauge))
    documented = {name for spec in METRICS for name in prometheus_names(spec)}
    assert set(samples) <= documented, set(samples) - documented
    assert value(samples, "ray_berg_ray_requests_total", route="GET /healthz", status="200") >= 1
