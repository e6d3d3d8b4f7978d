"""Where encoders run (berg_ray.cluster.accelerators, berg_ray.sweep.scaling): the device decision and its reason, the
autoscaler's capacity from its config, the monitor's config found on the head, the wait for GPUs and its timeout
on a cluster that has none (the session's local CPU cluster: nothing written, a one-line error)."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest

from berg_ray.cluster.accelerators import Capacity, choose_device, node_types_capacity, read_monitor_config
from berg_ray.errors import BergRayError
from berg_ray.sweep import run
from berg_ray.sweep.scaling import StatusLine


def ours(stderr: str) -> list[str]:
    """The sweep's own lines (the session's shared cluster also forwards its workers' logs to this stderr)."""
    return [line for line in stderr.splitlines() if line.startswith(("encoders on ", "waiting for ", "1 GPU "))]


def test_auto_uses_gpus_that_are_up_or_startable_and_says_why():
    up = choose_device("auto", Capacity("GPU", 4.0, None, "no autoscaler config was found on the head node"))
    assert up.on_accelerator and up.reason == "--device auto: the cluster has 4 GPU now"
    at_rest = choose_device("auto", Capacity("GPU", 0.0, 16.0, "autoscaler config /x.yaml"))
    assert at_rest.on_accelerator
    assert at_rest.reason == ("--device auto: no GPU node is up, but its autoscaler can start up to 16 GPU "
                              "(autoscaler config /x.yaml)")
    assert "unbounded" in choose_device("auto", Capacity("GPU", 0.0, math.inf, "Ray's cluster config")).reason
    cpu = choose_device("auto", Capacity("GPU", 0.0, None, "no autoscaler config was found on the head node"))
    assert not cpu.on_accelerator and cpu.device == "cpu"
    assert cpu.reason == ("--device auto: the cluster has no GPU and no autoscaler config was found on the head "
                          "node; pass --device cuda to request GPU anyway")
    none_startable = choose_device("auto", Capacity("GPU", 0.0, 0.0, "no node type of its autoscaler config x"))
    assert not none_startable.on_accelerator
    forced = choose_device("cuda", Capacity("GPU", 0.0, None, "no autoscaler config was found on the head node"))
    assert forced.on_accelerator and forced.reason.startswith("--device cuda; the cluster has no GPU")
    assert choose_device("cpu", Capacity("GPU", 8.0, None, "")).device == "cpu"
    with pytest.raises(BergRayError, match="no GPU can ever come.*--device cpu"):  # fails at once, no wait
        choose_device("cuda", Capacity("GPU", 0.0, 0.0, "no node type of its autoscaler config x offers it"))
    with pytest.raises(ValueError, match="gpu"):
        choose_device("gpu", Capacity("GPU", 0.0, None, ""))


def test_capacity_of_an_autoscaler_config():
    config = {"max_workers": 10, "head_node_type": "head", "available_node_types": {
        "head": {"resources": {"CPU": 8, "GPU": 1}, "max_workers": 0},
        "gpu4": {"resources": {"CPU": 32, "GPU": 4}, "min_workers": 0, "max_workers": 2},
        "gpu1": {"resources": {"CPU": 8, "GPU": 1}, "min_workers": 0, "max_workers": 3},
        "cpu": {"resources": {"CPU": 16}, "max_workers": 20}}}
    assert node_types_capacity(config, "GPU") == 4 * 2 + 1 * 3  # the head is counted as "now", not here
    assert node_types_capacity(config, "TPU") == 0
    config["max_workers"] = 1
    assert node_types_capacity(config, "GPU") == 4  # the cluster-wide cap: one node of the largest type
    del config["max_workers"]
    del config["available_node_types"]["gpu1"]["max_workers"]
    assert node_types_capacity(config, "GPU") == math.inf  # no bound anywhere


def test_the_monitor_config_is_read_from_its_command_line(tmp_path):
    proc = tmp_path / "proc"
    config = tmp_path / "bootstrap.yaml"
    config.write_text("available_node_types:\n  gpu: {resources: {GPU: 2}, max_workers: 3}\n")
    for pid, argv in {"10": ["python", "/x/ray/autoscaler/_private/monitor.py", "--gcs-address=1.2.3.4:6379",
                             f"--autoscaling-config={config}"],
                      "11": ["python", "/x/ray/autoscaler/_private/monitor.py", "--gcs-address=9.9.9.9:6379",
                             "--autoscaling-config=/nope.yaml"],
                      "12": ["raylet", "--gcs-address=1.2.3.4:6379"]}.items():
        (proc / pid).mkdir(parents=True)
        (proc / pid / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "self").mkdir()
    path, parsed = read_monitor_config("1.2.3.4:6379", str(proc))
    assert path == str(config) and node_types_capacity(parsed, "GPU") == 6
    assert read_monitor_config("9.9.9.9:6379", str(proc)) is None  # its file is unreadable
    assert read_monitor_config("5.5.5.5:6379", str(proc)) is None  # no monitor of that cluster here


def test_status_line_rewrites_on_a_terminal_and_prints_changes_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    line = StatusLine(terminal)
    line.show("waiting for 1 GPU: 1 s", key="waiting")
    line.show("waiting for 1 GPU: 2 s", key="waiting")
    line.close()
    assert terminal.getvalue() == "\rwaiting for 1 GPU: 1 s\rwaiting for 1 GPU: 2 s\n"
    plain = io.StringIO()
    line = StatusLine(plain)
    for second in range(3):
        line.show(f"waiting for 1 GPU: {second} s", key="waiting")
    line.show("1 GPU available after 3 s", key="ready")
    assert plain.getvalue().splitlines() == ["waiting for 1 GPU: 0 s", "1 GPU available after 3 s"]
    quiet = io.StringIO()
    StatusLine(quiet, enabled=False).say("anything")
    assert quiet.getvalue() == ""


def test_cuda_on_a_cluster_without_gpus_waits_then_fails_having_written_nothing(ray_cluster, fixture_berg_dir,
                                                                               tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        np.save(tmp_path / "in" / f"{name}.npy", np.zeros((3, 144, 256), np.uint8))
    with pytest.raises(BergRayError, match=r"waited 3 s for 1 GPU \(1 encoder actor\(s\) of CPU 1, GPU 1\), "
                                           r".*--resource-wait-s.*--device cpu; nothing was written"):
        run(berg_dir=str(fixture_berg_dir), input=str(tmp_path / "in"), output=str(tmp_path / "out"),
            device="cuda", resource_wait_s=3, show_progress=True)
    lines = ours(capsys.readouterr().err)
    assert lines[0] == "encoders on GPU: --device cuda; the cluster has no GPU and no autoscaler config was found " \
                       "on the head node"
    assert re.fullmatch(r"waiting for 1 GPU, 0 up: [0-3] s of at most 3 s \(the autoscaler sees the demand\)",
                        lines[1]), lines
    assert len(lines) == 2, lines  # off a terminal: one line while nothing changes but the seconds
    assert not (tmp_path / "out").exists()  # a refused run leaves nothing: no rows, no lock file, no _tmp/
    import ray

    groups = ray.util.placement_group_table().values()  # of the session's cluster, which the sweep used
    assert any(g["name"] == "berg-ray-sweep-wait" for g in groups)
    assert all(g["state"] == "REMOVED" for g in groups if g["name"] == "berg-ray-sweep-wait")  # the demand is withdrawn: the autoscaler is not left starting nodes for nobody


def test_auto_on_a_cpu_cluster_runs_on_cpu_and_says_why(ray_cluster, fixture_berg_dir, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", np.zeros((3, 144, 256), np.uint8))
    result = run(berg_dir=str(fixture_berg_dir), input=str(tmp_path / "in"), output=str(tmp_path / "out"),
                 sessions=["session-8_scan-5"], show_progress=True)
    assert result.ok and result.files_written == 1
    first = ours(capsys.readouterr().err)[0]
    assert first == ("encoders on CPU: --device auto: the cluster has no GPU and no autoscaler config was found on "
                     "the head node; pass --device cuda to request GPU anyway")
