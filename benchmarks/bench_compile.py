"""TorchInductor (torch.compile) against eager on CPU: the same ``encode_videos`` run, float32, side by side.

    python benchmarks/bench_compile.py --units 150 9941 --threads 2 --frames 90 --rounds 3
    python benchmarks/bench_compile.py --parts step feedforward --threads 1     # compile one part only

Issue 20 part C asked whether TorchInductor on CPU makes the feed-forward glue and the recurrent step faster. This
script answers it without changing the package: it patches one loaded model in its own process.

- ``feedforward``: ``FeedForward.forward`` compiled whole (``dynamic=False``: the 8-frame passes and the last, shorter
  pass of a video are two graphs). The package's inference forms write into strided views (``gelu.out`` into the
  padded conv input, ``add(out=)`` into the frame pairs' output), which dynamo cannot trace (one graph break per
  call), so while compiling this script substitutes out-of-place forms of ``gelu_padded`` and ``causal_conv_pairs``
  with the same operations in the same order (eager runs keep the package's forms).
- ``step``: the recurrent step replaced by the compiled out-of-place cell ``Recurrent._cell`` (already one
  functional graph; it uses torch.tanh instead of the expm1 form), whose results are copied into the step's state.

Each (units, threads) pair runs in two fresh processes sharing a new ``TORCHINDUCTOR_CACHE_DIR``: the first compiles
cold, the second finds the cache warm. In each, after a whole-video warm-up of both variants (the compiled warm-up
is timed: the compile cost), rounds alternate eager and compiled over the same video (wall and process CPU time per
frame) and the responses are compared (max relative difference). Prints one JSON line per process with the machine.
The readout is not compiled, so the unit count only changes how much uncompiled work dilutes the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCAN = "session-8_scan-5"
PARTS = ("feedforward", "step")


def _out_of_place_forms() -> None:
    """While dynamo traces, core.py's gelu_padded and causal_conv_pairs run out of place (eager keeps its forms)."""
    import torch
    import torch.nn.functional as F

    import berg_ray.model.core as core

    def gelu_padded(x, history, lead=0, trail=0):
        batch, channels, _, height, width = x.shape
        parts = [x.new_zeros(batch, channels, lead, height, width), history.to(x.dtype), F.gelu(x),
                 x.new_zeros(batch, channels, trail, height, width)]
        return torch.cat(parts, dim=2).contiguous(memory_format=torch.channels_last_3d)

    def causal_conv_pairs(padded, kernels, bias, groups):
        batch, _, length, height, width = padded.shape
        pairs = (length - 2) // 2
        d = padded.permute(0, 2, 3, 4, 1)
        d0, d1, d2, d3 = (d[:, j:j + 2 * pairs:2] for j in range(4))
        transformed = [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
        padding = (kernels[0].shape[2] // 2, kernels[0].shape[3] // 2)
        m = [F.conv2d(transformed[k].flatten(0, 1).permute(0, 3, 1, 2), kernels[k], bias if k == 1 else None,
                      padding=padding, groups=groups).permute(0, 2, 3, 1) for k in range(4)]
        m = [mk.reshape(batch, pairs, height, width, -1) for mk in m]
        out = torch.stack([(m[1] + m[2]) + m[0], (m[1] - m[2]) - m[3]], dim=2)  # (B, P, 2, H, W, O)
        return out.reshape(batch, 2 * pairs, height, width, -1).permute(0, 4, 1, 2, 3)

    eager_gelu, eager_pairs = core.gelu_padded, core.causal_conv_pairs
    core.gelu_padded = lambda *a: gelu_padded(*a) if torch.compiler.is_compiling() else eager_gelu(*a)
    core.causal_conv_pairs = lambda *a: causal_conv_pairs(*a) if torch.compiler.is_compiling() else eager_pairs(*a)


def _compile(model, parts: list[str]):
    """Patch ``model`` (in place) so that ``parts`` run compiled; returns a function that switches them on or off."""
    import torch

    from berg_ray.model.recurrent import POSITIONS, S

    core = next(m for m in model.modules() if type(m).__name__ == "VideoCore")
    ff, rec = core.feedforward, core.recurrent
    eager_step = rec._step
    compiled_ff = torch.compile(ff.forward, backend="inductor", dynamic=False, fullgraph=True)

    def cell(feed, hidden, state_cell):
        return rec._cell(feed, hidden, state_cell, feed.shape[-1] // POSITIONS)

    compiled_cell = torch.compile(cell, backend="inductor", dynamic=False, fullgraph=True)

    def compiled_step(feed, hidden, state_cell, buffers, hidden_out):
        new_hidden, new_cell = compiled_cell(feed.reshape(S, 256, -1), hidden, state_cell)
        state_cell.copy_(new_cell)
        hidden_out.copy_(new_hidden)

    def switch(on: bool) -> None:
        for name, module, compiled, eager in (("feedforward", ff, compiled_ff, None),
                                              ("step", rec, compiled_step, eager_step)):
            if name not in parts:
                continue
            if name == "feedforward":
                if on:
                    ff.forward = compiled
                else:
                    ff.__dict__.pop("forward", None)
            else:
                rec._step = compiled if on else eager
    return switch


def _child(args: argparse.Namespace) -> None:
    """One process: eager and compiled encode_videos of one video, alternating; prints one JSON line."""
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_model import machine

    from berg_ray import load_model
    from berg_ray.inference import encode_videos

    torch.set_num_threads(args.threads[0])
    _out_of_place_forms()
    model = load_model(args.berg_dir, [SCAN], device="cpu")
    video = np.random.default_rng(0).integers(0, 256, (1, args.frames, 144, 256), dtype=np.uint8)
    switch = _compile(model, args.parts)

    def run() -> tuple[float, float, np.ndarray]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = encode_videos(model, video, [SCAN])[0]
        return time.perf_counter() - wall, time.process_time() - cpu, np.asarray(out, dtype=np.float32)

    switch(False)
    eager_warmup = run()[0]
    switch(True)
    compile_s = run()[0] - eager_warmup  # first compiled run: compile (or cache load) + one run
    timings = {"eager": [], "compiled": []}
    responses = {}
    for r in range(args.rounds):
        for variant in (("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")):
            switch(variant == "compiled")
            wall, cpu, responses[variant] = run()
            timings[variant].append({"fps": args.frames / wall, "cpu_ms_per_frame": 1e3 * cpu / args.frames})
    scale = np.abs(responses["eager"]).max()
    rel = float(np.abs(responses["eager"] - responses["compiled"]).max() / scale)
    median = {k: float(np.median([t["fps"] for t in v])) for k, v in timings.items()}
    cpu_med = {k: float(np.median([t["cpu_ms_per_frame"] for t in v])) for k, v in timings.items()}
    print(json.dumps({"units": int(responses["eager"].shape[-1]), "threads": torch.get_num_threads(),
                      "frames": args.frames, "parts": args.parts, "cache": args.cache_state,
                      "compile_s": compile_s, "eager_warmup_s": eager_warmup, "rounds": timings,
                      "fps_median": median, "cpu_ms_per_frame_median": cpu_med,
                      "speedup_fps": median["compiled"] / median["eager"],
                      "speedup_cpu": cpu_med["eager"] / cpu_med["compiled"], "max_rel_diff": rel,
                      "machine": machine("cpu")}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, nargs="+", default=[150, 9941])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "berg_ray_bench_compile")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--berg-dir", help=argparse.SUPPRESS)
    parser.add_argument("--cache-state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    from berg_ray.checkpoint.demo import write_demo_release

    for units in args.units:
        berg_dir = args.data_dir / f"units-{units}"
        if not (berg_dir / ".complete").exists():
            write_demo_release(berg_dir, [SCAN], units, seed=0)
            (berg_dir / ".complete").touch()
        for threads in args.threads:
            with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
                env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": cache}
                for state in ("cold", "warm"):
                    command = [sys.executable, __file__, "--child", "--berg-dir", str(berg_dir), "--cache-state",
                               state, "--threads", str(threads), "--frames", str(args.frames), "--rounds",
                               str(args.rounds), "--parts", *args.parts]
                    subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
