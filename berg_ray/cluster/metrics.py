"""berg_ray's application metrics: one catalogue, recorded through ``ray.util.metrics`` by the processes that work.

Every long-running piece reports here (design.md, "Gradients and operations"): the Serve ingress and core replicas,
and the encoder actors of a sweep. Ray's metrics agent on each node exports them in Prometheus format on the node's
metrics port (``ray start --metrics-export-port``; ``berg-ray serve|sweep|experiment --metrics-export-port`` for a
local cluster). Ray 2.60 prefixes every application metric with ``ray_``, adds ``_total`` to counters and
``_bucket`` / ``_sum`` / ``_count`` to histograms, and adds its own labels (``WorkerId``, ``NodeAddress``,
``SessionName``, ...), so ``berg_ray_requests`` is scraped as ``ray_berg_ray_requests_total{route, status, ...}``
(:func:`prometheus_names`). A gauge is one series per reporting process: sum it over ``WorkerId``. A histogram's exported ``_sum`` is
approximate in Ray 2.60 (rebuilt from bucket midpoints); its buckets and ``_count`` are exact.

The metrics are created lazily, on first use in the process that records them (a Ray worker: a replica or an
actor); outside a Ray worker (unit tests calling a replica class directly) recording does nothing. Recording costs a
few counter updates per request, batch or written file, never per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LATENCY_BOUNDARIES_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Ray 2.60 exports a histogram's _sum from bucket midpoints, not from the values recorded. Half-integer boundaries
# give every batch size up to 16 videos its own bucket whose midpoint is that size, so the exported _sum (and the
# mean batch size from _sum / _count) is exact up to 16 videos per batch, approximate above.
BATCH_BOUNDARIES_VIDEOS = (*(n + 0.5 for n in range(17)), 24.5, 32.5, 64.5, 128.5)
PROMETHEUS_PREFIX = "ray_"  # Ray's namespace for exported application metrics (Ray 2.60, verified by scraping)
UNMATCHED_ROUTE = "unmatched"  # route tag of a request that matched no route (404): bounds the tag's values
SERVICE_ROUTES = ("GET /healthz", "GET /v1/sessions", "GET /v1/stats", "GET /v1/metadata/{train_session}",
                  "POST /v1/encode")


@dataclass(frozen=True)
class MetricSpec:
    """One metric of berg_ray: its ``ray.util.metrics`` name, kind, tag keys, meaning (with units), boundaries."""

    name: str
    kind: str  # "counter", "histogram" or "gauge"
    tag_keys: tuple[str, ...]
    description: str
    boundaries: tuple[float, ...] = ()


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("berg_ray_requests", "counter", ("route", "status"),
               "HTTP requests answered by the ingress, by route (e.g. 'POST /v1/encode'; 'unmatched' for unknown "
               "paths) and status code (200, and the JSON errors 400, 401, 404, 408, 413, 415, 503, 500)"),
    MetricSpec("berg_ray_request_seconds", "histogram", ("route",),
               "seconds from a request's arrival at the ingress to its answer, by route", LATENCY_BOUNDARIES_S),
    MetricSpec("berg_ray_videos_encoded", "counter", ("scan", "precision"),
               "videos encoded by the service's core (HTTP and handle), by scan and core precision"),
    MetricSpec("berg_ray_frames_encoded", "counter", ("scan", "precision"),
               "video frames encoded by the service's core, by scan and core precision"),
    MetricSpec("berg_ray_core_batch_videos", "histogram", (),
               "videos in each core batch (one forward pass over videos of any clients and scans)",
               BATCH_BOUNDARIES_VIDEOS),
    MetricSpec("berg_ray_core_queued_videos", "gauge", (),
               "videos waiting in a core replica's batch queue, not yet in a batch"),
    MetricSpec("berg_ray_core_ongoing_requests", "gauge", (),
               "encode requests in progress on a core replica (queued or in a batch)"),
    MetricSpec("berg_ray_ingress_uploads", "gauge", (),
               "request bodies an ingress replica is receiving (limit: ingress.max_uploads)"),
    MetricSpec("berg_ray_ingress_encodes", "gauge", (),
               "encode requests an ingress replica has waiting on the core (limit: ingress.max_encodes)"),
    MetricSpec("berg_ray_sweep_inputs_done", "counter", ("scan", "output"),
               "(stimulus, scan) rows a sweep wrote, by scan and output URI"),
    MetricSpec("berg_ray_sweep_inputs_failed", "counter", ("output",),
               "sweep inputs that failed (could not be listed, read or decoded; listed in _errors/), by output URI"),
    MetricSpec("berg_ray_sweep_frames_encoded", "counter", ("scan", "output"),
               "frames a sweep ran through the model (skip_frames included: the frame x scan work of its "
               "frames/s), by scan and output URI"),
    MetricSpec("berg_ray_sweep_bytes_written", "counter", ("scan", "output"),
               "bytes of Parquet part files a sweep wrote, by scan and output URI"),
)
SPECS = {spec.name: spec for spec in METRICS}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def prometheus_names(spec: MetricSpec) -> tuple[str, ...]:
    """The series names under which Ray's metrics agent exports ``spec`` (e.g. ``ray_berg_ray_requests_total``)."""
    return tuple(PROMETHEUS_PREFIX + spec.name + suffix for suffix in _SUFFIXES[spec.kind])


class _Recorder:
    """The metrics of one process, created on first use (``ray.util.metrics`` objects must live in the process
    that records them, and a replica or actor is built from pickled arguments)."""

    def __init__(self) -> None:
        self._metrics: dict[str, Any] | None = None

    def _get(self, name: str) -> Any:
        if self._metrics is None:
            self._metrics = _create_all()  # None (retried next time) while this process is not connected to Ray
        return None if self._metrics is None else self._metrics.get(name)

    def inc(self, name: str, value: float, **tags: str) -> None:
        metric = self._get(name)
        if metric is not None and value:
            metric.inc(value, tags=tags or None)

    def observe(self, name: str, value: float, **tags: str) -> None:
        metric = self._get(name)
        if metric is not None:
            metric.observe(value, tags=tags or None)

    def set(self, name: str, value: float) -> None:
        metric = self._get(name)
        if metric is not None:
            metric.set(value)


def _create_all() -> dict[str, Any] | None:
    """Every metric of :data:`METRICS` as a ``ray.util.metrics`` object; None while this process is not connected
    to Ray (nothing to export to)."""
    import ray

    if not ray.is_initialized():
        return None
    from ray.util.metrics import Counter, Gauge, Histogram

    created: dict[str, Any] = {}
    for spec in METRICS:
        if spec.kind == "counter":
            created[spec.name] = Counter(spec.name, spec.description, spec.tag_keys)
        elif spec.kind == "histogram":
            created[spec.name] = Histogram(spec.name, spec.description, list(spec.boundaries), spec.tag_keys)
        else:
            created[spec.name] = Gauge(spec.name, spec.description, spec.tag_keys)
    return created


RECORDER = _Recorder()  # this process's metrics (created lazily, see _Recorder)


def route_of(method: str, path: str) -> str:
    """The ``route`` tag of a request: its route pattern, or ``UNMATCHED_ROUTE`` (a bounded set of values)."""
    if path.startswith("/v1/metadata/") and method == "GET":
        return "GET /v1/metadata/{train_session}"
    route = f"{method} {path}"
    return route if route in SERVICE_ROUTES else UNMATCHED_ROUTE


def record_request(route: str, status: int, seconds: float) -> None:
    """One HTTP request answered by the ingress: its route, status code and latency (s)."""
    RECORDER.inc("berg_ray_requests", 1, route=route, status=str(status))
    RECORDER.observe("berg_ray_request_seconds", seconds, route=route)


def record_encoded(scan: str, precision: str, videos: int, frames: int) -> None:
    """``videos`` videos of ``frames`` frames in all, encoded by the core for one scan."""
    RECORDER.inc("berg_ray_videos_encoded", videos, scan=scan, precision=precision)
    RECORDER.inc("berg_ray_frames_encoded", frames, scan=scan, precision=precision)


def record_sweep_file(output: str, scan: str, stimuli: int, frames: int, n_bytes: int) -> None:
    """One part file a sweep wrote: ``stimuli`` rows of one scan, ``frames`` frames encoded, ``n_bytes`` bytes."""
    RECORDER.inc("berg_ray_sweep_inputs_done", stimuli, scan=scan, output=output)
    RECORDER.inc("berg_ray_sweep_frames_encoded", frames, scan=scan, output=output)
    RECORDER.inc("berg_ray_sweep_bytes_written", n_bytes, scan=scan, output=output)


def record_sweep_failures(output: str, inputs: int) -> None:
    """``inputs`` sweep inputs that failed to read or decode."""
    RECORDER.inc("berg_ray_sweep_inputs_failed", inputs, output=output)
