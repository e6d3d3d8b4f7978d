"""The readout's fused Triton kernel against the torch readout at real shapes (issue 20 B, readout part).

    python benchmarks/device_kernels.py --out OUT                 # on a CUDA GPU (H100/H200): ~7 min
    python benchmarks/device_kernels.py --device cpu --out OUT    # tiny shapes under Triton's interpreter (CI)

One process, no Ray and no pydantic (the GPU machine's image has torch, triton, numpy and pyarrow): without
pydantic, berg_ray's modules are imported without its package __init__s (``import_modules``). Prints JSON lines,
each with the machine, and appends them to OUT/device_kernels.jsonl. Sections:

1. ``registers``: each launch configuration compiled for this GPU: registers per thread and spill bytes (ptxas).
2. ``readout``: B x chunk frames (32 x 32) x 9,941 units, for each unit layout (``uniform`` over the feature grid,
   ``central``: clustered as trained positions are) and variant (``float32``: TF32 off; ``bfloat16``: the model's
   float32 features under bf16 autocast; ``bfloat16_features``: bf16 features, half the reads): ms per call and
   us per video-frame of the torch readout (grid_sample + per-unit dot, the model's accelerator path) and of the
   kernel in each launch configuration (and on channels-last features, the conversion timed), the speed-up, and
   the largest relative difference kernel vs torch (goal 1e-5: both accumulate the same float32 products), also
   on a 150-unit subset.
3. ``end_to_end``: the whole model (encode_videos, B=32 x T=300, generated release of 9,941 units), kernels torch
   vs triton: frames/s per precision and the largest relative difference of the responses.
4. ``fidelity``: float32 with kernels="triton" against the reference's golden outputs (goal 1e-5).
5. ``step``: the recurrent step's kernels against ``Recurrent._step`` (benchmarks/device_kernels_step.py).
6. ``parts``: time per part (readout, recurrent loop with and without CUDA graphs, feed-forward glue, convs, the
   whole feed-forward pass) torch vs triton at B x chunk (device_kernels_parts.py).
7. ``throughput``: end-to-end frames/s and peak memory for B in 8, 32, 64, 128 x T=300, bf16 and float32, torch vs
   triton vs triton + CUDA graphs, within ``--throughput-budget-s`` (device_kernels_throughput.py).

On an H200 the whole command should take about 7 minutes (estimate: registers, readout, end_to_end and fidelity
~3, parts ~1, throughput within its 200 s budget).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

import numpy as np
import torch
from device_kernels_step import step_section  # (this script's folder is on sys.path)

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "wang2025-reference"
FIXTURE_SCANS = ("session-8_scan-5", "session-4_scan-7")
SCAN = FIXTURE_SCANS[0]  # the generated release's scan (9,941 units on the GPU, as released)
SIZES = {"cuda": {"batch": 32, "chunk": 32, "units": 9941, "subset": 150, "reps": 20, "e2e_batch": 32,
                  "e2e_frames": 300},
         "cpu": {"batch": 1, "chunk": 3, "units": 4, "subset": 2, "reps": 1, "e2e_batch": 1, "e2e_frames": 3}}


def import_modules(light: bool) -> dict:
    """The model's readout and the kernel modules. ``light`` (or no pydantic installed): berg_ray's modules are
    imported without the package __init__s of berg_ray, berg_ray.model and berg_ray.config (the package __init__
    loads the BERG facade; the config package the Serve and sweep options, which need pydantic: it gets the names
    of every other config area)."""
    sys.path.insert(0, str(REPO_ROOT))
    if light or importlib.util.find_spec("pydantic") is None:
        root = REPO_ROOT / "berg_ray"
        for name, path in [("berg_ray", root), ("berg_ray.model", root / "model"),
                           ("berg_ray.config", root / "config")]:
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
        config = sys.modules["berg_ray.config"]
        for source in sorted((root / "config").glob("[!_]*.py")):  # every area but those that need pydantic
            if "pydantic" not in source.read_text():
                area = importlib.import_module(f"berg_ray.config.{source.stem}")
                config.__dict__.update({k: v for k, v in vars(area).items() if not k.startswith("_")})
    import berg_ray.model.readout as readout
    from berg_ray.model.kernels import compile_check, glue_triton, readout_triton, recurrent_triton

    if os.environ.get("TRITON_INTERPRET") == "1":  # the interpreter's cost is per program: large glue tiles
        glue_triton.DEFAULT_LAUNCH = glue_triton.LaunchConfig(block_gelu=1 << 18, block_rows=1 << 12)
    return {"readout": readout, "readout_triton": readout_triton, "compile_check": compile_check,
            "recurrent_triton": recurrent_triton}


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


def use_kernels(model, kernels: str, device: torch.device) -> None:
    """model.set_kernels on a GPU; on CPU (interpreter mode) the readouts' switch is set directly, since
    set_kernels refuses the CPU."""
    if device.type == "cuda":
        model.set_kernels(kernels)
    else:
        for readout in model.readouts.values():
            readout.kernels = kernels
        model.core.feedforward.kernels = kernels


def demo_model(device: torch.device, sizes: dict):
    """The model of a generated release of one scan with the released unit count (``sizes["units"]`` on a GPU)."""
    from berg_ray.checkpoint.demo import write_demo_release
    from berg_ray.checkpoint.release import load_model

    with tempfile.TemporaryDirectory() as tmp:
        release = write_demo_release(Path(tmp) / "berg", [SCAN], n_units=sizes["units"], seed=7)
        return load_model(release, [SCAN], device=device.type)


def parts_and_throughput(emit, device: torch.device, sizes: dict, budget_s: float, wanted: set[str]) -> None:
    """Sections ``parts`` and ``throughput`` on one generated model (their own modules)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from device_kernels_parts import parts_section
    from device_kernels_throughput import throughput_section

    model = demo_model(device, sizes)
    for name, run in (("parts", lambda: parts_section(emit, device, sizes, model, SCAN, time_ms, relative)),
                      ("throughput", lambda: throughput_section(emit, device, model, SCAN, relative, budget_s))):
        if name in wanted:
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - one failing section must not hide the others
                emit(name, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-2000:])


def end_to_end_section(emit, device: torch.device, sizes: dict, modules: dict) -> None:
    """The whole model through the library's inference path (encode_videos) on a generated release with the
    released unit count, kernels torch vs triton: frames/s per precision and the largest relative difference."""
    from berg_ray.checkpoint.demo import write_demo_release
    from berg_ray.checkpoint.release import load_model
    from berg_ray.inference import encode_videos

    batch, frames = sizes["e2e_batch"], sizes["e2e_frames"]
    videos = torch.randint(0, 256, (batch, frames, 144, 256), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(3)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        release = write_demo_release(Path(tmp) / "berg", [SCAN], n_units=sizes["units"], seed=7)
        model = load_model(release, [SCAN], device=device.type)
    for precision in ("float32", "bfloat16") if device.type == "cuda" else ("float32",):  # (bf16 is slow on CPU)
        model.set_precision(precision)
        seconds, outputs = {}, {}
        for kernels in ("torch", "triton"):
            use_kernels(model, kernels, device)
            if device.type == "cuda":
                encode_videos(model, videos[:, :8], [SCAN] * batch)  # warm-up (compiles, cuDNN plans)
                torch.cuda.synchronize(device)
            begin = time.perf_counter()
            outputs[kernels] = np.stack(encode_videos(model, videos, [SCAN] * batch))
            seconds[kernels] = time.perf_counter() - begin
        emit("end_to_end", precision=precision, batch=batch, frames=frames, units=sizes["units"],
             fps_torch=batch * frames / seconds["torch"], fps_triton=batch * frames / seconds["triton"],
             speedup=seconds["torch"] / seconds["triton"],
             max_rel_diff=relative(torch.from_numpy(outputs["triton"]), torch.from_numpy(outputs["torch"])),
             # bf16 on CUDA: the core's bf16 convolutions need not repeat bit for bit between runs
             goal=1e-5 if precision == "float32" else 1e-4 if device.type == "cuda" else 1e-2)
    use_kernels(model, "torch", device)


def fidelity_section(emit, device: torch.device, modules: dict) -> None:
    """float32 with kernels="triton" against the reference's golden outputs (tests/fixtures/wang2025-reference)."""
    from berg_ray.checkpoint.release import load_model
    from berg_ray.inference import encode_videos

    stimuli = np.load(FIXTURE / "stimuli.npy")
    for scan in FIXTURE_SCANS:
        expected = np.load(FIXTURE / "expected" / f"{scan}.npy")
        model = load_model(FIXTURE / "berg", [scan], device=device.type, kernels="triton")
        got = np.stack(encode_videos(model, stimuli, [scan] * stimuli.shape[0]))
        emit("fidelity", scan=scan, kernels="triton", precision="float32", videos=stimuli.shape[0],
             frames=stimuli.shape[1], units=expected.shape[-1],
             max_rel_error=relative(torch.from_numpy(got), torch.from_numpy(expected)), goal=1e-5)


def registers_section(emit, device: torch.device, modules: dict) -> None:
    """Each launch configuration compiled for this GPU: registers per thread and spill bytes (ptxas -v)."""
    readout_triton, compile_check = modules["readout_triton"], modules["compile_check"]
    major, minor = torch.cuda.get_device_capability(device)
    target = compile_check.GPUTarget("cuda", 10 * major + minor, 32)
    for launch in launch_configs(readout_triton, device):
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


# (name, features dtype, autocast): the model in float32; in bfloat16 (the core returns float32 features, the
# readout runs under autocast); bf16 features (what a core emitting bf16 would hand over: half the reads)
VARIANTS = [("float32", torch.float32, False), ("bfloat16", torch.float32, True),
            ("bfloat16_features", torch.bfloat16, True)]


def readout_section(emit, device: torch.device, sizes: dict, modules: dict) -> None:
    """torch readout vs the kernel per unit layout, variant and launch configuration (see the module docstring)."""
    readout_module, readout_triton = modules["readout"], modules["readout_triton"]
    frames = sizes["batch"] * sizes["chunk"]
    generator = torch.Generator().manual_seed(0)
    for layout in ("uniform", "central") if device.type == "cuda" else ("central",):  # (the interpreter is slow)
        readout = readout_module.Readout(readout_params(sizes["units"], layout, generator)).to(device)
        subset = torch.randperm(sizes["units"], generator=generator)[:sizes["subset"]].to(device)
        features32 = torch.randn(frames, 512, 16, 24, generator=generator).to(device)
        plan = readout_triton.kernel_plan(readout.positions, readout.weights, readout.biases, 16, 24)
        for name, dtype, autocast_on in VARIANTS:
            features = features32.to(dtype)

            def run(kernels: str, units=None, launch=None, layout_fn=None):
                readout.kernels = kernels
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_on):
                    if launch is not None:
                        given = features if layout_fn is None else layout_fn(features)
                        return readout_triton.readout_responses(given, plan, launch)
                    return readout(features, units)

            reference_subset = run("torch", subset)
            torch_ms, reference = time_ms(lambda: run("torch"), device, sizes["reps"])
            record = {"layout": layout, "variant": name, "frames": frames, "units": sizes["units"],
                      "groups": int(plan.units.shape[0]), "torch_ms": torch_ms,
                      "torch_us_per_frame": 1e3 * torch_ms / frames,
                      "subset_max_rel_diff": relative(run("triton", subset), reference_subset),
                      # the CPU's torch path under bf16 autocast multiplies in bf16 (readout_cells' bmm); on CUDA
                      # grid_sample runs in float32 under autocast, as the kernel does
                      "goal": 1e-5 if device.type == "cuda" or not autocast_on else 1e-2}
            runs = [(launch, None) for launch in launch_configs(readout_triton, device)]
            runs.append((readout_triton.DEFAULT_LAUNCH, "channels_last"))  # the conversion copy is timed too
            for launch, converted in runs:
                layout_fn = (lambda x: x.contiguous(memory_format=torch.channels_last)) if converted else None
                try:
                    ms, responses = time_ms(lambda: run("triton", launch=launch, layout_fn=layout_fn), device,
                                            sizes["reps"])
                    with torch.no_grad():
                        compiled = readout_triton.launch_readout(features, plan, launch)[1]
                    emit("readout", **record, launch=vars(launch), features_layout=converted or "as_given",
                         triton_ms=ms, triton_us_per_frame=1e3 * ms / frames, speedup=torch_ms / ms,
                         max_rel_diff=relative(responses, reference), n_regs=getattr(compiled, "n_regs", None),
                         n_spills=getattr(compiled, "n_spills", None))
                except Exception as exc:  # noqa: BLE001 - one failing configuration must not hide the others
                    emit("readout", **record, launch=vars(launch), error=f"{type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, required=True, help="directory for device_kernels.jsonl")
    parser.add_argument("--light-imports", action="store_true",
                        help="import the readout without berg_ray's package __init__ even when pydantic is there")
    parser.add_argument("--throughput-budget-s", type=float, default=200.0,
                        help="time budget of the throughput section in seconds (default: %(default)s)")
    parser.add_argument("--sections", default="registers,readout,step,end_to_end,fidelity,parts,throughput",
                        help="comma list of sections to run (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available; use --device cpu")
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernel module is imported
    modules = import_modules(args.light_imports)
    device, sizes, wanted = torch.device(args.device), SIZES[args.device], set(args.sections.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    host = machine(device)
    started = time.perf_counter()

    def emit(section: str, **record) -> None:
        line = json.dumps({"section": section, **record, "elapsed_s": round(time.perf_counter() - started, 1),
                           "machine": host})
        print(line, flush=True)
        with open(args.out / "device_kernels.jsonl", "a") as file:
            file.write(line + "\n")

    emit("start", device=args.device, sizes=sizes, sections=sorted(wanted), pydantic_loaded="pydantic" in sys.modules,
         ray_loaded="ray" in sys.modules)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    sections = [("registers", registers_section, (device, modules)),
                ("readout", readout_section, (device, sizes, modules)),
                ("step", step_section, (device, time_ms, modules)),  # benchmarks/device_kernels_step.py
                ("end_to_end", end_to_end_section, (device, sizes, modules)),
                ("fidelity", fidelity_section, (device, modules))]
    for name, function, section_args in sections:
        if name not in wanted:
            continue
        if name in ("registers", "fidelity") and device.type != "cuda":
            emit(name, skipped=True, reason="CUDA only (the interpreter tests cover correctness on CPU)")
            continue
        try:
            function(emit, *section_args)
        except Exception as exc:  # noqa: BLE001 - one failing section must not hide the others
            emit(name, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-2000:])
    parts_and_throughput(emit, device, sizes, args.throughput_budget_s, wanted)
    emit("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
