"""A sweep's metrics: a small sweep (two scans, one corrupt input) in a driver process that starts its own local
cluster with a metrics port (``berg_ray.cluster.local.ray_session(metrics_export_port=...)``, the path of
``--metrics-export-port``), runs ``berg_ray.sweep.run`` on it, prints the SweepResult and keeps the cluster up until
the test has scraped ``http://127.0.0.1:PORT/metrics`` (a ``berg-ray sweep`` ends its cluster with the run, so the
test holds it open instead). The counters must equal the SweepResult: rows per scan, frames, bytes, failed inputs.
Also the CLI's one-line refusals of a bad or misplaced port.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from berg_ray.serve.cli import free_port
from tests.conftest import REPO_ROOT
from tests.serve.test_metrics import scrape_until, value
from tests.sweep.helpers import npy_bytes

SCANS = ["session-8_scan-5", "session-4_scan-7"]
DRIVER = textwrap.dedent("""
    import json, sys
    from berg_ray.cluster.local import ray_session
    from berg_ray.sweep import run

    berg_dir, input, output, port = sys.argv[1:5]
    with ray_session(None, num_cpus=2, metrics_export_port=int(port)):
        result = run(berg_dir=berg_dir, input=input, output=output, sessions=%r, batch_size=2,
                     show_progress=False)
        print("RESULT " + json.dumps({"output": result.output, "files": result.files_written,
                                      "frame_scans": result.frame_scans, "bytes": result.bytes_written,
                                      "errors": len(result.errors), "stimuli": result.stimuli}), flush=True)
        sys.stdin.read()  # the test closes stdin once it has scraped
""" % (SCANS,))
RUN_TIMEOUT_S = 600


@pytest.mark.slow
def test_sweep_counters_equal_the_sweep_result(tmp_path, fixture_berg_dir, fixture_stimuli):
    inputs = tmp_path / "stimuli"
    inputs.mkdir()
    for index, frames in enumerate((12, 9, 7)):
        (inputs / f"video{index}.npy").write_bytes(npy_bytes(fixture_stimuli[index, :frames]))
    (inputs / "broken.npy").write_bytes(b"\x93NUMPY corrupt")
    ray_tmp = Path(tempfile.mkdtemp(prefix="brs-"))  # this driver's own Ray temp root (short: socket paths)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(ray_tmp), RAY_metrics_report_interval_ms="1000",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    process = subprocess.Popen([sys.executable, "-c", DRIVER, str(fixture_berg_dir), str(inputs),
                                str(tmp_path / "out"), str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    try:
        result, lines, deadline = None, [], time.monotonic() + RUN_TIMEOUT_S
        while result is None and time.monotonic() < deadline:  # readline returns "" at EOF: the loop then ends
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("RESULT "):
                result = json.loads(line.removeprefix("RESULT "))
        assert result is not None, "the sweep driver printed no result:\n" + "".join(lines)[-4000:]
        assert result["errors"] == 1 and result["files"] == 2 * len(SCANS)  # 3 videos in micro-batches of 2
        output = result["output"]

        def arrived(samples: dict) -> bool:
            return (value(samples, "ray_berg_ray_sweep_bytes_written_total", output=output) == result["bytes"]
                    and value(samples, "ray_berg_ray_sweep_inputs_failed_total", output=output) == 1)

        samples = scrape_until(port, arrived)
    finally:
        if process.stdin and not process.stdin.closed:
            process.stdin.close()
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    for scan in SCANS:
        assert value(samples, "ray_berg_ray_sweep_inputs_done_total", scan=scan, output=output) == 3, scan
        assert value(samples, "ray_berg_ray_sweep_frames_encoded_total", scan=scan, output=output) == 12 + 9 + 7
    assert value(samples, "ray_berg_ray_sweep_frames_encoded_total", output=output) == result["frame_scans"]
    assert value(samples, "ray_berg_ray_sweep_bytes_written_total", output=output) == result["bytes"] > 0
    assert value(samples, "ray_berg_ray_sweep_inputs_failed_total", output=output) == result["errors"] == 1


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize(("argv", "words"), [
    (["--metrics-export-port", "0"], "is not a port number in 1..65535"),
    (["--metrics-export-port", "http"], "is not a port number in 1..65535"),
    (["--metrics-export-port", "9100", "--address", "127.0.0.1:6379"], "a joined cluster"),
])
def test_sweep_metrics_port_errors_are_one_line(tmp_path, fixture_berg_dir, argv, words):
    done = subprocess.run([sys.executable, "-m", "berg_ray.cli", "sweep", "--berg-dir", str(fixture_berg_dir),
                           "--input", str(tmp_path), "--out", str(tmp_path / "out"), *argv],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    assert words in lines[0] and not (tmp_path / "out").exists(), lines[0]


def test_metrics_port_checks():
    from berg_ray.errors import BergRayError
    from berg_ray.cluster.session import check_metrics_export_port, metrics_port_from

    assert metrics_port_from(None) is None and metrics_port_from("9100") == 9100
    for text in ("0", "65536", "-1", "9100.0", ""):
        with pytest.raises(BergRayError, match="1..65535"):
            metrics_port_from(text)
    with pytest.raises(BergRayError, match="joined cluster"):
        check_metrics_export_port(9100, "127.0.0.1:6379")
    check_metrics_export_port(None, "127.0.0.1:6379")  # no port: nothing to check


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_experiment_refuses_a_bad_metrics_port_before_generating_stimuli(tmp_path, fixture_berg_dir):
    done = subprocess.run([sys.executable, "-m", "berg_ray.cli", "experiment", "domains", "--berg-dir",
                           str(fixture_berg_dir), "--out", str(tmp_path / "out"), "--metrics-export-port", "70000"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == ("error: --metrics-export-port '70000' is not a port "
                                                            "number in 1..65535 (ASCII digits)"), done.stderr[-2000:]
    assert not (tmp_path / "out").exists()
