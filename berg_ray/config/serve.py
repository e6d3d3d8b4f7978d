"""Serve (berg_ray.serve): every knob of the Ray Serve application, validated once by build_app."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from berg_ray.config.model import DEFAULT_CHUNK_FRAMES, DEFAULT_KERNELS, DEFAULT_PRECISION, ScanId

DEFAULT_MAX_BODY_BYTES = 512 * 1024 * 1024  # largest accepted POST /v1/encode body
# A request body must keep arriving: after a grace period its average rate must stay above a minimum, and it must
# be complete within a hard deadline; otherwise 408. Slow clients thus hold an ingress slot for bounded time.
DEFAULT_BODY_GRACE_S = 10.0
DEFAULT_BODY_MIN_BYTES_PER_S = 256 * 1024
DEFAULT_BODY_TIMEOUT_S = 300.0
# Ingress admission (per ingress replica): bodies being received and requests waiting on the core at once; beyond
# either, 503 JSON with Retry-After. Serve's own slots must exceed their sum by INGRESS_LIGHT_SLOTS so that
# /healthz, /v1/sessions and /v1/metadata always find a free slot.
DEFAULT_INGRESS_MAX_UPLOADS = 32
DEFAULT_INGRESS_MAX_ENCODES = 32
# Decoding of request bodies runs in a thread pool of the ingress (never on its event loop), inside the upload gate.
# A compressed .npz body may inflate to at most DEFAULT_MAX_INFLATE_RATIO times its own size (decoded bytes, read from
# the member headers before anything is inflated, over body bytes; else 413): natural videos compress 1.1-3x, so the
# limit is far above honest bodies and far below a zip bomb (an all-zero video inflates ~1,000x). Each ingress replica
# holds at most DEFAULT_INGRESS_MAX_DECODED_BYTES of decoded requests at once (else 503 with Retry-After).
DEFAULT_MAX_INFLATE_RATIO = 64.0
DEFAULT_INGRESS_DECODE_THREADS = 2
DECODE_THREAD_NICENESS = 10  # decode threads yield the CPU to the ingress's event loop (Linux niceness, per thread)
DEFAULT_INGRESS_MAX_DECODED_BYTES = 2 * DEFAULT_MAX_BODY_BYTES
INGRESS_LIGHT_SLOTS = 32
# Frames one encode request may ask for (all its videos together): 2 minutes of 30 Hz video. A request's cost grows
# with its frames (on a CPU replica ~17 frames/s, on an H200 2,000-4,000), and a small compressed body can ask for
# many (a 0.5 MB .npz of zeros holds ~14,000 frames); longer work belongs in sweeps, which stream any length.
DEFAULT_MAX_FRAMES_PER_REQUEST = 3_600
DEFAULT_SERVE_PORT = 8000
SERVE_APP_NAME = "berg"


class BatchingConfig(BaseModel):
    """How the core deployment batches videos of different clients and scans into one forward pass."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(8, ge=1, description="most videos (of any scans) in one core forward pass")
    batch_wait_timeout_s: float = Field(0.02, ge=0, description="longest wait for more videos before a batch runs")
    chunk_frames: int = Field(DEFAULT_CHUNK_FRAMES, ge=1, description="most frames per core forward call; memory "
                              "grows with batch x chunk_frames, results do not depend on it")
    max_cohorts: int = Field(4, ge=1, description="batches (cohorts of videos that arrived together) a core "
                             "replica runs at once, taking turns chunk by chunk; memory grows with it")
    interleave: bool = Field(True, description="cohorts take turns chunk by chunk, so a short request waits about "
                             "one chunk behind a long one; false: a batch runs to its end before the next starts "
                             "(the former lock-step behaviour)")


class ReplicaArgs(BaseModel):
    """Replica resources, concurrency and back-pressure of one deployment."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(1.0, ge=0, description="logical CPUs reserved per replica")
    max_ongoing_requests: int = Field(16, ge=1, description="requests one replica works on at once")
    max_queued_requests: int = Field(64, ge=1, description="requests a caller may queue before 503 (bounded queue)")


class ScaledDeploymentArgs(ReplicaArgs):
    """A deployment that autoscales between bounds (equal bounds: a fixed replica count)."""

    min_replicas: int = Field(1, ge=1, description="autoscaling lower bound")
    max_replicas: int = Field(1, ge=1, description="autoscaling upper bound")
    target_ongoing_requests: float = Field(2.0, gt=0, description="autoscaling target per replica")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> "ScaledDeploymentArgs":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}; make min <= max")
        return self


class IngressArgs(ScaledDeploymentArgs):
    """The ingress: our own admission limits, and Serve's slots sized above them (never Serve's text 503)."""

    max_uploads: int = Field(DEFAULT_INGRESS_MAX_UPLOADS, ge=1, description="request bodies one replica receives "
                             "at once; more get 503 JSON with Retry-After")
    max_encodes: int = Field(DEFAULT_INGRESS_MAX_ENCODES, ge=1, description="encode requests one replica has "
                             "waiting on the core at once; more get 503 JSON with Retry-After")
    decode_threads: int = Field(DEFAULT_INGRESS_DECODE_THREADS, ge=1, description="threads of one replica that "
                                "decode and validate request bodies (off the event loop; further bodies wait for one)")
    max_decoded_bytes: int = Field(DEFAULT_INGRESS_MAX_DECODED_BYTES, ge=1, description="decoded bytes of the "
                                   "requests one replica holds at once (from decoding to the answer); a request "
                                   "that would exceed it gets 503 JSON with Retry-After")
    max_ongoing_requests: int = Field(DEFAULT_INGRESS_MAX_UPLOADS + DEFAULT_INGRESS_MAX_ENCODES
                                      + INGRESS_LIGHT_SLOTS, ge=1, description="Serve's slots per replica; at "
                                      "least max_uploads + max_encodes + INGRESS_LIGHT_SLOTS")
    max_queued_requests: int = Field(-1, ge=-1, description="requests the HTTP proxy queues for the ingress; -1: "
                                     "unbounded (a bounded queue lets the proxy answer overload with its own "
                                     "text/plain 503)")

    @model_validator(mode="after")
    def _slots_above_admission(self) -> "IngressArgs":
        needed = self.max_uploads + self.max_encodes + INGRESS_LIGHT_SLOTS
        if self.max_ongoing_requests < needed:
            raise ValueError(f"ingress.max_ongoing_requests is {self.max_ongoing_requests} but must be at least "
                             f"max_uploads + max_encodes + {INGRESS_LIGHT_SLOTS} = {needed}, so that slow or "
                             "waiting requests never take the slots of /healthz; raise it or lower the limits")
        if self.max_queued_requests == 0:
            raise ValueError("ingress.max_queued_requests must be -1 (unbounded) or positive")
        return self


class CoreArgs(ScaledDeploymentArgs):
    """The core deployment: fixed or autoscaled replicas, each owning ``num_gpus`` (one GPU per replica)."""

    num_gpus: float | None = Field(None, ge=0, description="GPUs per replica; None: 1 if the cluster has a GPU")
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads (CPU); None: num_cpus "
                                 "rounded up, at most the CPUs available (berg_ray.runtime.threads)")
    precision: Literal["float32", "tf32", "bfloat16"] = Field(
        DEFAULT_PRECISION, description="numeric precision of the core (float32 matches the reference; tf32 and "
                                       "bfloat16 are faster on GPUs, agreement in docs/numerics.md)")
    kernels: Literal["torch", "triton"] = Field(
        DEFAULT_KERNELS, description="hot paths as torch ops (the reference; every device) or fused Triton kernels "
                                     "(CUDA GPUs only; today the readout; the same results to float32 rounding)")
    feature_dtype: Literal["float32", "float16"] = Field(
        "float32", description="dtype of the features sent to the readout heads (float16 halves the bytes but is "
                               "no longer exact to 1e-6)")


class ServeArgs(BaseModel):
    """Input of ``berg_ray.serve.app:build_app`` (the ``args:`` of a Serve config YAML).

    Limits that keep the service answering under hostile load: a request body gets ``body_grace_s``, then must
    average at least ``body_min_bytes_per_s`` since its start and be complete within ``body_timeout_s`` (else 408);
    it may be at most ``max_body_bytes`` (else 413) and decode to at most ``max_inflate_ratio`` times its size
    (else 413). Each ingress replica admits ``ingress.max_uploads`` bodies (received, then decoded in
    ``ingress.decode_threads`` threads), ``ingress.max_decoded_bytes`` of decoded requests and
    ``ingress.max_encodes`` requests waiting on the core at once (else 503 JSON with ``retry_after_s``), and keeps
    ``INGRESS_LIGHT_SLOTS`` more Serve slots for /healthz and the metadata routes.
    """

    model_config = ConfigDict(extra="forbid")

    berg_dir: str = Field(..., description="BERG directory holding the release (see design.md)")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint of an s3:// berg_dir; None: "
                                        "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL of each replica's node, else AWS")
    sessions: list[str] | Literal["all"] = Field("all", description="scans to load, or 'all' present in berg_dir")
    device: str = Field("auto", description="torch device of the core replica: auto, cpu, cuda, cuda:N")
    token_env: str | None = Field(None, description="env var holding the bearer token; None: no auth")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description="larger request bodies get 413")
    max_frames_per_request: int = Field(DEFAULT_MAX_FRAMES_PER_REQUEST, ge=1, description="most frames (videos x "
                                        "frames, at 30 Hz) one encode request may ask for; more get 413")
    max_inflate_ratio: float = Field(DEFAULT_MAX_INFLATE_RATIO, ge=1, description="most bytes a request body may "
                                     "decode to per byte sent (compressed .npz); more get 413, before inflating")
    body_grace_s: float = Field(DEFAULT_BODY_GRACE_S, gt=0, description="seconds a request body may take before "
                                "body_min_bytes_per_s applies (a stalled body gets 408 after it)")
    body_min_bytes_per_s: float = Field(DEFAULT_BODY_MIN_BYTES_PER_S, gt=0, description="after the grace period, "
                                        "the body's average rate since its start must stay above this, else 408")
    body_timeout_s: float = Field(DEFAULT_BODY_TIMEOUT_S, gt=0, description="hard deadline for a whole request "
                                  "body, whatever its rate, else 408")
    retry_after_s: int = Field(1, ge=0, description="Retry-After header of 503 responses")
    heads: Literal["auto", "in_core", "multiplexed", "per_scan"] = Field(
        "auto", description="where the readout runs: 'in_core' on the core replica's device (only responses leave "
        "it; the choice for GPUs, benchmarks/RESULTS.md 'GPU'), 'multiplexed' one CPU deployment multiplexed by scan "
        "id, 'per_scan' one CPU deployment per scan; 'auto': in_core when the core has a GPU, else multiplexed")
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    core: CoreArgs = Field(default_factory=CoreArgs)
    ingress: IngressArgs = Field(default_factory=lambda: IngressArgs(num_cpus=0.5))
    readout: ScaledDeploymentArgs = Field(default_factory=lambda: ScaledDeploymentArgs(num_cpus=0.5))

    @model_validator(mode="after")
    def _one_body_decodes(self) -> "ServeArgs":
        if self.ingress.max_decoded_bytes < self.max_body_bytes:
            raise ValueError(f"ingress.max_decoded_bytes is {self.ingress.max_decoded_bytes} but must be at least "
                             f"max_body_bytes ({self.max_body_bytes}), so that the largest accepted body can be "
                             "decoded; raise it or lower max_body_bytes")
        return self

    @field_validator("sessions")
    @classmethod
    def _canonical_sessions(cls, value: list[str] | str) -> list[str] | str:
        return value if value == "all" else [str(ScanId.parse(v)) for v in value]
