"""Helpers and the profile / fan-out sections of benchmarks/device_check.py (see its docstring)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from berg_ray.checkpoint.release import load_model
from berg_ray.config import DEFAULT_CHUNK_FRAMES, FRAME_HEIGHT, FRAME_WIDTH, N_FEATURES
from berg_ray.inference import encode_videos
from berg_ray.model.network import EncodingModel
from berg_ray.runtime.precision import precision_mode


def scan_model(berg_dir: Path, scan: str, device: str, precision: str = "float32") -> EncodingModel:
    """The model of one scan of a release (the fixture or a generated one), through the public loader."""
    return load_model(berg_dir, [scan], device=device, precision=precision)


def responses_of(model: EncodingModel, videos: np.ndarray | torch.Tensor, scan: str, chunk_frames: int
                 ) -> np.ndarray:
    """Responses float32 (B, T, U) through the library's inference path (berg_ray.inference.encode_videos)."""
    videos = videos.numpy() if isinstance(videos, torch.Tensor) else videos
    return np.stack(encode_videos(model, videos, [scan] * videos.shape[0], chunk_frames=chunk_frames))


def natural_videos(n_videos: int, n_frames: int, seed: int) -> np.ndarray:
    """uint8 (B, T, 144, 256) smooth random movies (coarse noise interpolated in space and time, full contrast)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n_videos, 1, n_frames // 6 + 2, 9, 16, generator=generator)
    movie = F.interpolate(coarse, size=(n_frames, FRAME_HEIGHT, FRAME_WIDTH), mode="trilinear", align_corners=False)
    movie = (movie - movie.amin()) / (movie.amax() - movie.amin())
    return (movie[:, 0] * 255).round().to(torch.uint8).numpy()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Spans:
    """Wall spans of a module or method, on the device's timeline (CUDA events) or the host clock (CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.pairs: list[tuple] = []
        self._open: list = []

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def begin(self, *_) -> None:
        self._open.append(self.mark())

    def end(self, *_) -> None:
        self.pairs.append((self._open.pop(), self.mark()))

    def total_ms(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return sum(start.elapsed_time(stop) for start, stop in self.pairs)
        return 1000 * sum(stop - start for start, stop in self.pairs)


def _time_shares(report, model: EncodingModel, videos: np.ndarray, scan: str) -> None:
    """Share of wall time in the feed-forward convs, the whole recurrent module and its per-frame loop."""
    spans = {name: Spans(model.device) for name in ("total", "feedforward", "recurrent", "recurrent_loop")}
    hooks = []
    for name, module in (("feedforward", model.core.feedforward), ("recurrent", model.core.recurrent)):
        hooks.append(module.register_forward_pre_hook(spans[name].begin))
        hooks.append(module.register_forward_hook(spans[name].end))
    recurrent, step = model.core.recurrent, model.core.recurrent._step

    def timed_step(*args):
        spans["recurrent_loop"].begin()
        step(*args)
        spans["recurrent_loop"].end()

    recurrent._step = timed_step  # instance attribute: this benchmark only
    try:
        spans["total"].begin()
        responses_of(model, videos, scan, DEFAULT_CHUNK_FRAMES)
        spans["total"].end()
    finally:
        del recurrent._step
        for hook in hooks:
            hook.remove()
    total = spans["total"].total_ms()
    shares = {f"{name}_share": spans[name].total_ms() / total for name in ("feedforward", "recurrent", "recurrent_loop")}
    report.emit("profile", what="time_shares", precision=model.precision, batch=videos.shape[0],
                frames=videos.shape[1], total_ms=total, ms_per_video_frame=total / videos.shape[0] / videos.shape[1],
                **shares, note="recurrent includes its time-parallel input/output projections; recurrent_loop is "
                "the per-frame cell only; the rest is perspective, modulation, readout and host copies")


def _device_time_us(event) -> float:
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def _kernel_profile(report, model: EncodingModel, videos: np.ndarray, scan: str, out_dir: Path) -> None:
    """torch.profiler over one run: top kernels (device time) and kernels launched per time step."""
    from torch.profiler import ProfilerActivity, profile

    cuda = model.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        responses_of(model, videos, scan, DEFAULT_CHUNK_FRAMES)
        _synchronize(model.device)
    averages = prof.key_averages()
    sorts = ("self_device_time_total", "self_cuda_time_total") if cuda else ("self_cpu_time_total",)
    for sort in sorts:  # the name of the device-time column changed across torch versions
        try:
            (out_dir / "profile.txt").write_text(averages.table(sort_by=sort, row_limit=25))
            break
        except (AttributeError, KeyError, ValueError):
            continue
    batch, frames = videos.shape[:2]
    if cuda:
        kernels = [e for e in prof.events() if str(e.device_type).endswith("CUDA") and _device_time_us(e) > 0]
        per_name: dict[str, list[float]] = defaultdict(list)
        for event in kernels:
            per_name[event.name].append(_device_time_us(event))
        busy_us = sum(map(sum, per_name.values()))
        top = sorted(per_name.items(), key=lambda kv: -sum(kv[1]))[:15]
        report.emit("profile", what="kernels", precision=model.precision, batch=batch, frames=frames,
                    kernels=len(kernels), kernels_per_time_step=len(kernels) / frames,
                    kernels_per_video_frame=len(kernels) / (batch * frames), gpu_busy_ms=busy_us / 1000,
                    top=[{"kernel": name[:120], "calls": len(times), "total_ms": sum(times) / 1000,
                          "share_of_busy": sum(times) / busy_us} for name, times in top])
    else:
        ops = sum(e.count for e in averages if e.key.startswith("aten::"))
        report.emit("profile", what="ops", precision=model.precision, batch=batch, frames=frames,
                    aten_ops=ops, aten_ops_per_time_step=ops / frames)


def _graph_step_floor(report, model: EncodingModel, batch: int) -> None:
    """One recurrent step eager vs replayed from a CUDA graph: how much of a step is launch overhead."""
    recurrent = model.core.recurrent
    dtype = torch.bfloat16 if model.precision == "bfloat16" else torch.float32
    with torch.inference_mode(), precision_mode(model.precision, model.device):
        buffers = recurrent.buffers(batch, 1, dtype)
        buffers.feed.normal_()
        feed = buffers.feed[0].view(-1, batch, buffers.feed.shape[-1] // batch)
        hidden = torch.zeros_like(buffers.hiddens[0])
        cell = torch.zeros(buffers.hiddens[0].shape, device=model.device)
        times = {}
        for _ in range(3):  # warm-up (kernel selection, allocator)
            recurrent._step(feed, hidden, cell, buffers, buffers.hiddens[0])
        torch.cuda.synchronize()
        start, steps = time.perf_counter(), 200
        for _ in range(steps):
            recurrent._step(feed, hidden, cell, buffers, buffers.hiddens[0])
        torch.cuda.synchronize()
        times["eager_step_ms"] = 1000 * (time.perf_counter() - start) / steps
        stream = torch.cuda.Stream()  # graph capture wants its own warm-up on a side stream
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                recurrent._step(feed, hidden, cell, buffers, buffers.hiddens[0])
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            recurrent._step(feed, hidden, cell, buffers, buffers.hiddens[0])
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            graph.replay()
        torch.cuda.synchronize()
        times["graph_step_ms"] = 1000 * (time.perf_counter() - start) / steps
    report.emit("profile", what="recurrent_step_floor", precision=model.precision, batch=batch, **times,
                loop_only_fps_eager=batch / times["eager_step_ms"] * 1000,
                loop_only_fps_graph=batch / times["graph_step_ms"] * 1000)


def profile_section(report, device: str, sizes: dict, release: Path, out_dir: Path) -> None:
    """Time shares, kernel profile and (CUDA) the launch-bound floor of one recurrent step."""
    model = load_model(release, None, device=device, precision="bfloat16" if device == "cuda" else "float32")
    scan = model.scan_ids[0]
    videos = np.random.default_rng(3).integers(0, 256, (sizes["profile_batch"], sizes["profile_frames"],
                                                        FRAME_HEIGHT, FRAME_WIDTH), dtype=np.uint8)
    responses_of(model, videos, scan, DEFAULT_CHUNK_FRAMES)  # warm-up
    _time_shares(report, model, videos, scan)
    _kernel_profile(report, model, videos, scan, out_dir)
    if model.device.type == "cuda":
        _graph_step_floor(report, model, sizes["profile_batch"])


def _per_call_ms(function, device: torch.device, repeats: int) -> float:
    function()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    _synchronize(device)
    return 1000 * (time.perf_counter() - start) / repeats


def fanout_section(report, device: str, sizes: dict, release: Path) -> None:
    """What Serve's core -> readout-head fan-out costs at this device's speed (design.md: features to heads)."""
    model = load_model(release, None, device=device, precision="bfloat16" if device == "cuda" else "float32")
    scan, dev = model.scan_ids[0], model.device
    batch, frames = sizes["profile_batch"], sizes["profile_frames"]
    videos = torch.randint(0, 256, (batch, frames, FRAME_HEIGHT, FRAME_WIDTH), dtype=torch.uint8, device=dev)
    with torch.inference_mode():
        core_ms = _per_call_ms(lambda: model.forward_features(videos, [scan] * batch), dev, 2)
        record = {"precision": model.precision, "batch": batch, "frames": frames,
                  "core_ms_per_video_frame": core_ms / (batch * frames)}
        if dev.type == "cuda":
            for dtype in (torch.float32, torch.bfloat16):
                one = torch.randn(1, N_FEATURES, 16, 24, device=dev).to(dtype)
                many = torch.randn(batch, N_FEATURES, 16, 24, device=dev).to(dtype)
                pinned = torch.empty(many.shape, dtype=dtype, pin_memory=True)
                name = str(dtype).split(".")[-1]
                record[f"d2h_one_frame_{name}_pageable_ms"] = _per_call_ms(lambda: one.cpu(), dev, 200)
                record[f"d2h_{batch}_frames_{name}_pinned_ms_per_frame"] = _per_call_ms(
                    lambda: pinned.copy_(many, non_blocking=True), dev, 50) / batch
        features = torch.randn(batch, frames, N_FEATURES, 16, 24, device=dev)
        record["units"] = model.n_units(scan)
        record["readout_device_ms_per_frame"] = _per_call_ms(
            lambda: model.forward_readout(features, scan), dev, 5) / (batch * frames)
        if dev.type == "cuda":
            cpu_model = load_model(release, None, device="cpu")
            few = features[:1, :4].float().cpu()
            record["readout_cpu_ms_per_frame"] = _per_call_ms(
                lambda: cpu_model.forward_readout(few, scan), torch.device("cpu"), 2) / 4
            record["cpu_threads"] = torch.get_num_threads()
    report.emit("fanout", **record)
