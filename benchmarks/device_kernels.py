"""The readout's fused Triton kernel against the torch readout at real shapes (issue 20 B, readout part).

    python benchmarks/device_kernels.py --out OUT                 # on a CUDA GPU (H100/H200): ~1-2 min
    python benchmarks/device_kernels.py --device cpu --out OUT    # tiny shapes under Triton's interpreter (CI)

One process, no Ray and no pydantic: without pydantic (the GPU machine's image has torch, triton and numpy) the
model's readout modules are imported without berg_ray's package __init__ (which loads the Serve and storage side).
For each unit layout (``uniform`` positions over the feature grid, ``central``: clustered as trained positions are)
and precision (float32: float32 features, TF32 off; bfloat16: bf16 features under autocast, as the core returns
them), B x chunk frames (32 x 32) x 9,941 units, it prints JSON lines (each with the machine) and appends them to
OUT/device_kernels.jsonl:

- ``readout``: ms per call and us per video-frame of the torch readout (grid_sample + per-unit dot, the model's
  accelerator path) and of the kernel in each launch configuration, the speed-up, and agreement: the largest
  relative difference kernel vs torch (goal 1e-5: both accumulate the same float32 values), also on a 150-unit
  subset;
- ``registers``: each launch configuration compiled for this GPU: registers per thread and spill bytes (ptxas).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZES = {"cuda": {"batch": 32, "chunk": 32, "units": 9941, "subset": 150, "reps": 20},
         "cpu": {"batch": 1, "chunk": 3, "units": 6, "subset": 3, "reps": 1}}


def import_readout(light: bool):
    """berg_ray.model.readout and the kernel module; ``light`` (or no pydantic installed): without running the
    package __init__s of berg_ray, berg_ray.model and berg_ray.config (whose Serve options need pydantic)."""
    sys.path.insert(0, str(REPO_ROOT))
    if light or importlib.util.find_spec("pydantic") is None:
        root = REPO_ROOT / "berg_ray"
        for name, path in [("berg_ray", root), ("berg_ray.model", root / "model"), ("berg_ray.config", root / "config")]:
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
        import berg_ray.config.model as model_config

        sys.modules["berg_ray.config"].__dict__.update(
            {k: v for k, v in vars(model_config).items() if not k.startswith("_")})
    import berg_ray.model.readout as readout
    from berg_ray.model.kernels import compile_check, readout_triton

    return readout, readout_triton, compile_check


def machine(device: torch.device) -> dict:
    import triton

    record = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
              "triton": triton.__version__, "interpreter": os.environ.get("TRITON_INTERPRET") == "1"}
    if device.type == "cuda":
        record.update(gpu=torch.cuda.get_device_name(device), capability=list(torch.cuda.get_device_capability(device)),
                      cuda=torch.version.cuda)
    return record


def readout_params(units: int, layout: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Release-format readout parameters: positions uniform over the grid or clustered near its centre."""
    if layout == "uniform":
        positions = torch.rand(units, 2, generator=generator) * 2 - 1
    else:
        positions = (0.35 * torch.randn(units, 2, generator=generator)).clamp(-1, 1)
    params = {"readout.position.mu": torch.atanh(positions.clamp(-0.999999, 0.999999))}
    for s in range(4):
        params[f"readout.feature.weights.{s}"] = 0.02 * torch.randn(units, 1, 128, generator=generator)
        params[f"readout.biases.{s}"] = 0.1 * torch.randn(units, 1, generator=generator)
    return params


def time_ms(function, device: torch.device, reps: int) -> tuple[float, torch.Tensor]:
    """Median wall time of ``function()`` in ms (CUDA events on a GPU, after one warm-up call) and its result."""
    if device.type == "cuda":
        function()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = function()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            result = function()
            times.append(1e3 * (time.perf_counter() - begin))
    return sorted(times)[len(times) // 2], result


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float(((got.double() - want.double()).abs() / want.double().abs()).max())


def launch_configs(readout_triton, device: torch.device) -> list:
    config = readout_triton.LaunchConfig
    if device.type != "cuda":
        return [readout_triton.DEFAULT_LAUNCH]
    return [readout_triton.DEFAULT_LAUNCH, config(32, 32, 8, 1), config(64, 16, 8, 1), config(16, 32, 4, 1),
            config(32, 16, 4, 2), config(64, 32, 8, 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, required=True, help="directory for device_kernels.jsonl")
    parser.add_argument("--light-imports", action="store_true",
                        help="import the readout without berg_ray's package __init__ even when pydantic is there")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu")
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernel module is imported
    readout_module, readout_triton, compile_check = import_readout(args.light_imports)
    device, sizes = torch.device(args.device), SIZES[args.device]
    args.out.mkdir(parents=True, exist_ok=True)
    host = machine(device)

    def emit(section: str, **record) -> None:
        line = json.dumps({"section": section, **record, "machine": host})
        print(line, flush=True)
        with open(args.out / "device_kernels.jsonl", "a") as file:
            file.write(line + "\n")

    emit("start", device=args.device, sizes=sizes, pydantic_loaded="pydantic" in sys.modules,
         ray_loaded="ray" in sys.modules)
    configs = launch_configs(readout_triton, device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        target = compile_check.GPUTarget("cuda", 10 * major + minor, 32)
        for launch in configs:
            for feature_type in ("fp32", "bf16"):
                try:
                    compiled = compile_check.compile_for(
                        readout_triton.readout_kernel, readout_triton.kernel_signature(feature_type),
                        readout_triton.kernel_constexprs(launch), target, num_warps=launch.num_warps,
                        num_stages=launch.num_stages)
                    use = compile_check.register_use(compiled, target)
                    emit("registers", launch=vars(launch), features=feature_type, registers=use.registers,
                         spill_bytes=use.spills)
                except Exception as exc:  # noqa: BLE001 - report and go on
                    emit("registers", launch=vars(launch), features=feature_type, error=f"{type(exc).__name__}: {exc}")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    frames = sizes["batch"] * sizes["chunk"]
    generator = torch.Generator().manual_seed(0)
    for layout in ("uniform", "central"):
        readout = readout_module.Readout(readout_params(sizes["units"], layout, generator)).to(device)
        subset = torch.randperm(sizes["units"], generator=generator)[:sizes["subset"]].to(device)
        features32 = torch.randn(frames, 512, 16, 24, generator=generator).to(device)
        for precision in ("float32", "bfloat16"):
            features = features32 if precision == "float32" else features32.bfloat16()
            autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")

            def run(kernels: str, units=None, launch=None):
                readout.kernels = kernels
                with torch.no_grad(), autocast:
                    if kernels == "triton" and launch is not None:
                        plan = readout._plan("kernel", readout_triton.kernel_plan, None, readout.positions,
                                             readout.weights, readout.biases)
                        return readout_triton.readout_responses(features, plan, launch)
                    return readout(features, units)

            reference_subset = run("torch", subset)
            torch_ms, reference = time_ms(lambda: run("torch"), device, sizes["reps"])
            groups = readout_triton.kernel_plan(readout.positions, readout.weights, readout.biases, 16, 24).units
            record = {"layout": layout, "precision": precision, "frames": frames, "units": sizes["units"],
                      "groups": int(groups.shape[0]), "torch_ms": torch_ms,
                      "torch_us_per_frame": 1e3 * torch_ms / frames,
                      "subset_max_rel_diff": relative(run("triton", subset), reference_subset),
                      # the CPU's torch path under bf16 autocast multiplies in bf16 (readout_cells' bmm); on CUDA
                      # grid_sample runs in float32 under autocast, as the kernel does
                      "goal": 1e-5 if device.type == "cuda" or precision == "float32" else 1e-2}
            for launch in configs:
                try:
                    ms, responses = time_ms(lambda: run("triton", launch=launch), device, sizes["reps"])
                    emit("readout", **record, launch=vars(launch), triton_ms=ms, triton_us_per_frame=1e3 * ms / frames,
                         speedup=torch_ms / ms, max_rel_diff=relative(responses, reference))
                except Exception as exc:  # noqa: BLE001 - one failing configuration must not hide the others
                    emit("readout", **record, launch=vars(launch), error=f"{type(exc).__name__}: {exc}")
    emit("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
