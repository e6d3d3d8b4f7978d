"""The fused Triton readout (berg_ray/model/kernels/readout_triton.py) and the kernels switch, on CPU.

Correctness runs the kernel under Triton's interpreter in a subprocess (TRITON_INTERPRET=1 must be set before the
kernel module is imported and must not leak into other tests; readout_interpreter_cases.py) against the torch
readout. Register spills, which the interpreter cannot show, come from compiling the kernel for sm_90 (H100/H200)
with the wheel's ptxas. The switch refuses the CPU and a missing triton package with a clear error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from berg_ray.errors import KernelsError
from berg_ray.model import device_plan

from .support import run_interpreter_cases

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def interpreted() -> dict:
    """The interpreter cases' relative differences from the torch path (one subprocess for all cases)."""
    return run_interpreter_cases("readout_interpreter_cases", timeout=300)


@pytest.mark.slow  # Triton's interpreter in a whole Python process (~35 s); scripts/test.sh --quick leaves it out
@pytest.mark.parametrize("case", ["float32", "subset", "channels_last", "all_units_after_subset"])
def test_interpreted_kernel_matches_the_torch_readout_in_float32(interpreted, case):
    """37 frames (two frame blocks, the second partial), units on the border, the corners and exact cell edges,
    clustered units sharing groups; a unit subset; channels-last features; to float32 rounding."""
    assert interpreted[case] <= 1e-5


@pytest.mark.slow  # Triton's interpreter in a whole Python process (~35 s); scripts/test.sh --quick leaves it out
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_interpreted_kernel_reads_half_precision_features(interpreted, dtype):
    """Half-precision features are upcast on load: equal to the torch path on the same (upcast) values."""
    assert interpreted[f"{dtype}_vs_upcast"] <= 1e-5


@pytest.mark.slow  # Triton's interpreter in a whole Python process (~35 s); scripts/test.sh --quick leaves it out
def test_interpreted_kernel_on_float16_features_stays_close_to_float32(interpreted):
    assert interpreted["float16_vs_float32"] <= 2e-3


@pytest.mark.slow  # Triton's interpreter in a whole Python process (~35 s); scripts/test.sh --quick leaves it out
def test_readout_caches_a_kernel_plan_per_selection(interpreted):
    assert interpreted["plans"] == ["kernel", "subset:kernel"]


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
@pytest.mark.parametrize("feature_type", ["fp32", "bf16", "fp16"])
def test_kernel_compiles_for_sm90_without_register_spills(feature_type):
    """triton.compile for an H100/H200 (sm_90) on this CPU machine; ptxas's report must show no spills."""
    pytest.importorskip("triton", reason="triton is not installed (the test extra installs it)")
    from berg_ray.model.kernels.compile_check import SM90, compile_for, register_use
    from berg_ray.model.kernels.readout_triton import (
        DEFAULT_LAUNCH, kernel_constexprs, kernel_signature, readout_kernel,
    )

    compiled = compile_for(readout_kernel, kernel_signature(feature_type), kernel_constexprs(DEFAULT_LAUNCH), SM90,
                           num_warps=DEFAULT_LAUNCH.num_warps, num_stages=DEFAULT_LAUNCH.num_stages)
    use = register_use(compiled, SM90)
    ptx = compiled.asm["ptx"]
    assert "tf32" not in ptx and "mma" not in ptx and "fma.rn.f32" in ptx  # IEEE float32 FMAs, no tensor cores
    assert use.spills == 0 and use.stack_frame == 0, use.log
    assert use.registers <= 255


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_register_report_shows_spills_when_they_happen():
    """The spill check can fail: 32-channel tiles on 4 warps with 3 pipeline stages spill on sm_90."""
    pytest.importorskip("triton", reason="triton is not installed (the test extra installs it)")
    from berg_ray.model.kernels.compile_check import SM90, compile_for, register_use
    from berg_ray.model.kernels.readout_triton import LaunchConfig, kernel_constexprs, kernel_signature, readout_kernel

    spilling = LaunchConfig(block_n=32, block_c=32, num_warps=4, num_stages=3)
    compiled = compile_for(readout_kernel, kernel_signature("fp32"), kernel_constexprs(spilling), SM90,
                           num_warps=spilling.num_warps, num_stages=spilling.num_stages)
    assert register_use(compiled, SM90).spills > 0


def test_kernels_switch_refuses_the_cpu_and_unknown_names():
    assert device_plan.check_kernels("torch", torch.device("cpu")) == "torch"
    with pytest.raises(KernelsError, match="kernels 'triton' needs a CUDA GPU.*use 'torch'"):
        device_plan.check_kernels("triton", torch.device("cpu"))
    with pytest.raises(KernelsError, match="kernels 'cuda' is not supported; use one of torch, triton"):
        device_plan.check_kernels("cuda", torch.device("cpu"))


def test_kernels_switch_refuses_a_missing_triton(monkeypatch):
    monkeypatch.setattr(device_plan.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(KernelsError, match="needs the triton package, which is not installed"):
        device_plan.check_kernels("triton", torch.device("cuda"))


def test_model_and_loader_take_the_switch(fixture_berg_dir, tmp_path):
    """set_kernels reaches every path that has kernels: the readouts, the feed-forward glue and the recurrent cell
    (refused on CPU: all stay "torch"; set_kernels("torch") resets a path set directly, as on a GPU)."""
    from berg_ray.checkpoint.release import load_model

    def switches(model) -> set[str]:
        paths = [*model.readouts.values(), model.core.feedforward, model.core.recurrent]
        return {path.kernels for path in paths}

    model = load_model(fixture_berg_dir, ["session-4_scan-7"], kernels="torch")
    assert model.kernels == "torch" and switches(model) == {"torch"}
    with pytest.raises(KernelsError, match="needs a CUDA GPU"):
        model.set_kernels("triton")
    assert model.kernels == "torch" and switches(model) == {"torch"}
    model.core.feedforward.kernels = model.core.recurrent.kernels = "triton"
    model.set_kernels("torch")
    assert switches(model) == {"torch"}
    with pytest.raises(KernelsError, match="needs a CUDA GPU"):  # checked before any file is read
        load_model(tmp_path / "no-release", kernels="triton")


@pytest.mark.slow  # runs a whole Python process (scripts/test.sh --quick leaves it out)
def test_importing_and_running_berg_ray_on_cpu_never_imports_triton(fixture_berg_dir):
    code = ("import sys, torch; from berg_ray.checkpoint.release import load_model; "
            f"m = load_model({str(fixture_berg_dir)!r}, ['session-4_scan-7']); "
            "r = m.forward_readout(torch.randn(1, 2, 512, 16, 24), 'session-4_scan-7'); "
            "assert r.shape == (1, 2, 96); print('triton' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


@pytest.mark.slow  # the device benchmark under the interpreter, in a subprocess
def test_device_benchmark_runs_on_cpu_without_pydantic(tmp_path):
    """benchmarks/device_kernels.py (the GPU measurement of the kernels) at tiny shapes under the interpreter,
    importing the model without berg_ray's package __init__ (the GPU machine has no pydantic): every section
    runs or is skipped as CUDA-only, without errors."""
    pytest.importorskip("triton", reason="triton is not installed (the test extra installs it)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRITON_INTERPRET")}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "device_kernels.py"), "--device", "cpu",
                           "--out", str(tmp_path), "--light-imports"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "device_kernels.jsonl").read_text().splitlines()]
    assert records[0]["pydantic_loaded"] is False and records[0]["ray_loaded"] is False
    assert [r for r in records if "error" in r] == []
    readouts = [r for r in records if r["section"] == "readout"]
    assert {(r["variant"], r["features_layout"]) for r in readouts} == {
        (v, f) for v in ("float32", "bfloat16", "bfloat16_features") for f in ("as_given", "channels_last")}
    assert all(r["max_rel_diff"] <= r["goal"] and r["subset_max_rel_diff"] <= r["goal"] for r in readouts)
    assert all(r["goal"] == 1e-5 for r in readouts if r["variant"] == "float32")
    end_to_end = [r for r in records if r["section"] == "end_to_end"]
    assert [r["precision"] for r in end_to_end] == ["float32"]  # (bfloat16 too on CUDA)
    assert all(r["max_rel_diff"] <= r["goal"] and r["fps_triton"] > 0 for r in end_to_end)
    assert {r["section"] for r in records if r.get("skipped")} == {"registers", "fidelity", "throughput"}
    assert [r["variant"] for r in records if r.get("skipped") and r["section"] == "throughput"] == [
        "triton", "triton_graphs"]  # (CPU: the end_to_end section runs the kernels)
    parts = {r["part"]: r for r in records if r["section"] == "parts"}
    assert set(parts) == {"recurrent", "glue_block2"}  # (CPU: a smoke run; every part on CUDA)
    assert parts["glue_block2"]["gelu_max_scaled_diff"] <= 1e-6 and parts["glue_block2"]["pool_max_rel_diff"] <= 1e-6
    throughput = [r for r in records if r["section"] == "throughput" and not r.get("skipped")]
    assert [r["variant"] for r in throughput] == ["torch"]
    assert all(r["fps"] > 0 and r["max_rel_diff_vs_torch"] <= r["goal"] for r in throughput)
    assert [r["of"] for r in records if r["section"] == "budget"] == ["throughput"]
    steps = [r for r in records if r["section"] == "step"]  # the recurrent step (benchmarks/device_kernels_step.py)
    assert [r["precision"] for r in steps] == ["float32"]  # (bfloat16 too on CUDA)
    assert all(r["hidden_vs_float32_torch"] <= r["goal"] and r["cell_vs_float32_torch"] <= r["goal"] for r in steps)
    assert records[-1]["section"] == "done"


def test_serve_and_sweep_configs_carry_the_switch(fixture_berg_dir):
    """CoreArgs.kernels reaches the core replica's load_model, SweepArgs.kernels the encoder actors' (refused on
    CPU: the refusal proves the value arrived), and a CPU sweep refuses triton before any actor starts."""
    from berg_ray.config import CoreArgs, SweepArgs
    from berg_ray.errors import BergRayError
    from berg_ray.serve.core import CoreServer
    from berg_ray.sweep.pipeline import ShardEncoder
    from berg_ray.sweep.resources import size_workers

    assert CoreArgs().kernels == "torch" and SweepArgs(berg_dir="b", input="i", output="o").kernels == "torch"
    with pytest.raises(ValueError, match="kernels"):
        CoreArgs(kernels="cuda")
    with pytest.raises(KernelsError, match="needs a CUDA GPU"):
        CoreServer(str(fixture_berg_dir), ["session-4_scan-7"], "cpu", CoreArgs(kernels="triton"), None)
    with pytest.raises(KernelsError, match="needs a CUDA GPU"):
        ShardEncoder(str(fixture_berg_dir), ["session-4_scan-7"], None, {"precision": "float32"}, 8, 1.0,
                     device="cpu", kernels="triton")
    args = SweepArgs(berg_dir="b", input="i", output="o", kernels="triton")
    nodes = [{"CPU": 4.0, "memory": 16e9}]
    with pytest.raises(BergRayError, match="kernels 'triton' needs GPU encoder actors"):
        size_workers(args, n_shards=4, nodes=nodes, on_gpu=False)
    assert size_workers(args, n_shards=4, nodes=nodes, on_gpu=True).max_count >= 1


def test_recorded_readout_stays_on_the_torch_path(fixture_berg_dir):
    """When autograd records (gradients w.r.t. the stimulus), the readout runs its torch form even with
    kernels="triton" (the kernel has no backward): same values as the torch switch, and a gradient."""
    from berg_ray.checkpoint.release import load_model

    model = load_model(fixture_berg_dir, ["session-4_scan-7"])
    readout = model.readouts["session-4_scan-7"]
    features = torch.randn(2, 512, 16, 24, generator=torch.Generator().manual_seed(1), requires_grad=True)
    want = readout(features)
    readout.kernels = "triton"  # set directly: on CPU set_kernels refuses it
    got = readout(features)
    assert torch.equal(got, want) and got.grad_fn is not None and "kernel" not in readout._plans
    got.sum().backward()
    assert features.grad is not None and bool(features.grad.abs().sum() > 0)
