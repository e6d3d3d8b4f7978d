"""Every constant and default of berg_ray in one place, plus the scan-id value type.

The model constants come from the released network (wang2025-model-spec.md); the catalogue of scans, fields and
areas from the BERG model card of ``calcium_2p-wang_2025-3DCNN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from berg_ray.errors import InvalidSessionError, MalformedSessionError, UnknownModelError

MODEL_ID = "calcium_2p-wang_2025-3DCNN"
RELEASE_SUBDIR = "encoding_models/modality-calcium_2p/train_dataset-wang_2025/model-3DCNN"
WEIGHTS_SUBDIR = "encoding_models_weights"
METADATA_SUBDIR = "metadata"
# Release integrity (berg_ray.checkpoint.manifest): size + sha256 of every release file, in the release root
# (RELEASE_SUBDIR, the parent of WEIGHTS_SUBDIR and METADATA_SUBDIR); written by demo-release (and download).
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT, MANIFEST_VERSION = "berg-ray-manifest", 1
HASH_CHUNK_BYTES = 8 * 1024 * 1024  # read size when hashing a file
METADATA_MAX_DEPTH = 32  # deepest container nesting accepted in a metadata pickle (the release's is 4)

# Stimulus and network geometry.
FRAME_HEIGHT, FRAME_WIDTH = 144, 256  # monitor frame, pixels
RETINA_HEIGHT, RETINA_WIDTH = 128, 192  # perspective output
FEATURE_HEIGHT, FEATURE_WIDTH = 16, 24  # core output grid
N_STREAMS = 4
CORE_CHANNELS_PER_STREAM = 128
N_FEATURES = N_STREAMS * CORE_CHANNELS_PER_STREAM  # 512 core output channels
FRAME_RATE_HZ = 30.0

# CPU processes berg_ray owns (berg_ray.threads): the OpenMP wait policy unless the user set one ('passive': idle
# threads sleep, several-fold faster on a busy machine) and how much freed heap glibc keeps for reuse.
DEFAULT_OMP_WAIT_POLICY = "passive"
HEAP_KEEP_BYTES = 512 * 2**20  # freed memory kept (not returned, not page-faulted again): ~4 feed-forward passes

DEMO_WORK_DIR = "demo-output"  # `berg-ray demo`: its output folder, relative to the working directory

# Chunking: frames of one video pushed through the feed-forward core at once (memory scales with it).
DEFAULT_CHUNK_FRAMES = 32

# Numeric precision of the model (berg_ray.precision): float32 matches the reference; the others are faster on GPUs.
PRECISIONS = ("float32", "tf32", "bfloat16")
DEFAULT_PRECISION = "float32"

# The 13 released scans of MICrONS animal 17797 and their imaging fields (BERG model card).
ANIMAL_ID = 17797
SCAN_FIELDS: dict[tuple[int, int], tuple[int, ...]] = {
    (4, 7): tuple(range(1, 9)),
    (5, 6): tuple(range(1, 9)),
    (5, 7): tuple(range(1, 9)),
    (6, 2): tuple(range(1, 9)),
    (6, 4): tuple(range(1, 9)),
    (6, 6): tuple(range(1, 9)),
    (6, 7): tuple(range(1, 9)),
    (7, 3): tuple(range(1, 9)),
    (7, 5): tuple(range(1, 9)),
    (8, 5): tuple(range(1, 9)),
    (9, 3): tuple(range(1, 7)),
    (9, 4): tuple(range(1, 7)),
    (9, 6): tuple(range(1, 5)),
}
# Unit counts of the trained release (model card); the loader always trusts scans.csv + tensors instead.
RELEASED_UNIT_COUNTS: dict[tuple[int, int], int] = {
    (4, 7): 7493, (5, 6): 8592, (5, 7): 8138, (6, 2): 8158, (6, 4): 8221, (6, 6): 7971, (6, 7): 7887,
    (7, 3): 8618, (7, 5): 8194, (8, 5): 9941, (9, 3): 7973, (9, 4): 7855, (9, 6): 5130,
}
ROIS = ("V1", "LM", "AL", "RL")

_SCAN_PATTERN = re.compile(r"^session-?(\d+)_scan-?(\d+)$")


@dataclass(frozen=True, order=True)
class ScanId:
    """One recording (session, scan) of the release; ``str()`` is the canonical ``session-8_scan-5``."""

    session: int
    scan: int

    def __str__(self) -> str:
        return f"session-{self.session}_scan-{self.scan}"

    @property
    def fields(self) -> tuple[int, ...]:
        """Imaging fields recorded in this scan (1-based)."""
        return SCAN_FIELDS[(self.session, self.scan)]

    @property
    def weights_file(self) -> str:
        """Name of this scan's per-scan parameter file in the release."""
        return f"params_{self.session}_{self.scan}.pt"

    @property
    def metadata_file(self) -> str:
        return f"{self}_metadata.npy"

    @property
    def metadata_files(self) -> tuple[str, str]:
        """Both names the metadata file has in the wild (BERG's writer and reader disagree), canonical first."""
        return self.metadata_file, f"session{self.session}_scan{self.scan}_metadata.npy"

    @classmethod
    def parse(cls, value: "str | ScanId") -> "ScanId":
        """Parse ``session-8_scan-5`` or ``session8_scan5``; raise InvalidSessionError for anything else."""
        if isinstance(value, ScanId):
            return value
        if not isinstance(value, str):
            raise MalformedSessionError(f"train_session must be a string like 'session-8_scan-5', got {value!r}")
        match = _SCAN_PATTERN.match(value.strip())
        if match is None:
            raise MalformedSessionError(
                f"train_session {value!r} is malformed; use 'session-X_scan-Y' (or 'sessionX_scanY'), "
                f"one of: {', '.join(map(str, all_scans()))}"
            )
        scan_id = cls(int(match.group(1)), int(match.group(2)))
        if (scan_id.session, scan_id.scan) not in SCAN_FIELDS:
            raise InvalidSessionError(
                f"train_session {value!r} is not a released scan; valid: {', '.join(map(str, all_scans()))}"
            )
        return scan_id


def all_scans() -> list[ScanId]:
    """The 13 released scans, sorted."""
    return [ScanId(s, c) for (s, c) in sorted(SCAN_FIELDS)]


def check_model_id(model_id: str) -> str:
    """Return ``model_id`` if berg_ray serves it, else raise UnknownModelError."""
    if model_id != MODEL_ID:
        raise UnknownModelError(f"unknown model id {model_id!r}; berg_ray serves only {MODEL_ID!r}")
    return model_id


# Storage (berg_ray.storage): S3 client timeouts and retries. Access checks fail fast; data IO retries longer.
S3_CONNECT_TIMEOUT_S = 3.0
S3_READ_TIMEOUT_S = 60.0
S3_MAX_ATTEMPTS = 5  # total attempts per request for data IO (botocore "standard" retry mode)
S3_CHECK_MAX_ATTEMPTS = 2  # total attempts per request in check_access, so a dead endpoint fails in seconds
S3_MULTIPART_THRESHOLD_BYTES = 64 * 1024 * 1024  # larger writes use multipart upload (visible only on completion)
S3_DEFAULT_REGION = "us-east-1"  # when neither the options nor the AWS config name one (S3-compatible stores)

# Video decoding (berg_ray.sweep.video).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
ARRAY_SUFFIXES = (".npy", ".npz")
NPZ_VIDEO_KEY = "video"  # array name looked up in a multi-array .npz

# --- Serve (berg_ray.serve): every knob of the Ray Serve application, validated once by build_app ---
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
INGRESS_LIGHT_SLOTS = 32
DEFAULT_SERVE_PORT = 8000
SERVE_APP_NAME = "berg"


class BatchingConfig(BaseModel):
    """How the core deployment batches videos of different clients and scans into one forward pass."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(8, ge=1, description="most videos (of any scans) in one core forward pass")
    batch_wait_timeout_s: float = Field(0.02, ge=0, description="longest wait for more videos before a batch runs")
    chunk_frames: int = Field(DEFAULT_CHUNK_FRAMES, ge=1, description="most frames per core forward call; memory "
                              "grows with batch x chunk_frames, results do not depend on it")


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
                                 "rounded up, at most the CPUs available (berg_ray.threads)")
    precision: Literal["float32", "tf32", "bfloat16"] = Field(
        DEFAULT_PRECISION, description="numeric precision of the core (float32 matches the reference; tf32 and "
                                       "bfloat16 are faster on GPUs, agreement in the README)")
    feature_dtype: Literal["float32", "float16"] = Field(
        "float32", description="dtype of the features sent to the readout heads (float16 halves the bytes but is "
                               "no longer exact to 1e-6)")


class ServeArgs(BaseModel):
    """Input of ``berg_ray.serve.app:build_app`` (the ``args:`` of a Serve config YAML).

    Limits that keep the service answering under hostile load: a request body gets ``body_grace_s``, then must
    average at least ``body_min_bytes_per_s`` since its start and be complete within ``body_timeout_s`` (else 408);
    it may be at most ``max_body_bytes`` (else 413). Each ingress replica admits ``ingress.max_uploads`` bodies
    and ``ingress.max_encodes`` requests waiting on the core at once (else 503 JSON with ``retry_after_s``), and
    keeps ``INGRESS_LIGHT_SLOTS`` more Serve slots for /healthz and the metadata routes.
    """

    model_config = ConfigDict(extra="forbid")

    berg_dir: str = Field(..., description="BERG directory holding the release (see design.md)")
    sessions: list[str] | Literal["all"] = Field("all", description="scans to load, or 'all' present in berg_dir")
    device: str = Field("auto", description="torch device of the core replica: auto, cpu, cuda, cuda:N")
    token_env: str | None = Field(None, description="env var holding the bearer token; None: no auth")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description="larger request bodies get 413")
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

    @field_validator("sessions")
    @classmethod
    def _canonical_sessions(cls, value: list[str] | str) -> list[str] | str:
        return value if value == "all" else [str(ScanId.parse(v)) for v in value]


# --- Sweep (berg_ray.sweep): Ray Data sweeps over video corpora, Parquet output (local or s3://) ---

DEFAULT_SWEEP_BATCH_SIZE = 8  # stimuli per micro-batch (one model forward per scan, one Parquet file per scan)
# Frames per forward call inside a micro-batch; activation memory grows with batch x chunk (SWEEP_ACTOR_* below).
DEFAULT_SWEEP_CHUNK_FRAMES = DEFAULT_CHUNK_FRAMES
SWEEP_DECODE_NUM_CPUS = 0.25  # logical CPUs reserved per read/decode task (mostly IO; leaves room for actors)
SWEEP_MAX_CPU_THREADS_PER_WORKER = 8  # CPU encoder actors: torch threads per actor when sizing automatically
# Host memory of one encoder actor (its Ray `memory` request): BASE + batch x (PER_VIDEO + chunk x PER_FRAME) on CPU
# (activations of one forward call), BASE alone on a GPU. Measured on CPU (2-core dev machine, torch 2.13) with the
# fixture release (tests/fixtures; the released core architecture): peak RSS of one encode_videos call above the
# RSS after loading the model (298-308 MB), one process per (batch x chunk): 1x8 210 MB, 1x32 245, 2x32 369,
# 4x8 526, 4x32 630 (724 with 8 torch threads), 8x32 1149 (8 threads). Fit: ~105 MB + batch x (~93 MB per video,
# state kept per video, + ~1.5 MB per video-frame); rounded up, 8 x 32 reserves 1.76 GB (measured peak 1.46 GB).
SWEEP_ACTOR_BASE_BYTES = 450 * 10**6
SWEEP_ACTOR_BYTES_PER_VIDEO = 100 * 10**6
SWEEP_ACTOR_BYTES_PER_FRAME = 2 * 10**6
SWEEP_FORMAT_VERSION = 1  # written to _sweep.json; a re-run refuses an output of another version
# Longest stimulus (frames at 30 Hz; longer inputs are listed as errors). 18,000 = 10 min: far longer than any
# trial of the training data (clips of ~10 s), while keeping one stimulus bounded: 18,000 x 144 x 256 uint8 =
# 664 MB decoded, and with --reduce none 18,000 x 9,941 units x 4 B = 716 MB of responses per scan. A micro-batch
# of 8 such stimuli at 9,941 units (1.4e9 floats) still fits Parquet's int32 list offsets (2.1e9).
DEFAULT_SWEEP_MAX_FRAMES = 18_000
# Output lease (_lease.json): one sweep per output prefix. The holder rewrites it every HEARTBEAT seconds; a lease
# not rewritten for TTL seconds belongs to a dead run and is taken over, so a killed sweep blocks for <= TTL.
SWEEP_LEASE_TTL_S = 60.0
SWEEP_LEASE_HEARTBEAT_S = 15.0


class SweepArgs(BaseModel):
    """Every option of ``berg-ray sweep`` and ``berg_ray.sweep.run``, validated once at the edge."""

    model_config = ConfigDict(extra="forbid")

    berg_dir: str = Field(..., description="BERG directory holding the release (see design.md)")
    input: str = Field(..., description="local directory or s3://bucket/prefix/ holding .npy/.npz/.mp4/.avi/.mov/.mkv")
    output: str = Field(..., description="local directory or s3://bucket/prefix/ receiving the Parquet files")
    sessions: list[str] | Literal["all"] = Field("all", description="scans to compute for every stimulus, or 'all' "
                                                 "present in berg_dir")
    batch_size: int = Field(DEFAULT_SWEEP_BATCH_SIZE, ge=1, description="stimuli per micro-batch (model batch and "
                            "Parquet file)")
    chunk_frames: int = Field(DEFAULT_SWEEP_CHUNK_FRAMES, ge=1, description="frames per forward call; memory grows "
                              "with batch_size x chunk_frames, results do not depend on it")
    reduce: Literal["none", "mean"] = Field("none", description="'none': responses per frame; 'mean': the mean over "
                                            "frames after skip_frames")
    skip_frames: int = Field(0, ge=0, description="leading frames dropped from every response (burn-in)")
    precision: Literal["float32", "tf32", "bfloat16"] = Field(
        DEFAULT_PRECISION, description="numeric precision of the model (float32 matches the reference; tf32 and "
                                       "bfloat16 are faster on GPUs); part of the output's content options")
    max_frames: int = Field(DEFAULT_SWEEP_MAX_FRAMES, ge=1, description="most frames (at 30 Hz) per stimulus; "
                            "longer inputs are listed as errors without being decoded in full")
    resize: bool = Field(False, description="resize frames of another size to 144x256 (bilinear) instead of "
                         "rejecting them")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint; None: AWS_ENDPOINT_URL or AWS")
    anonymous: bool = Field(False, description="read the input bucket without credentials (public buckets); the "
                            "output always uses the standard credential chain")
    address: str | None = Field(None, description="Ray cluster address; None: RAY_ADDRESS or a local cluster")
    num_workers: int | None = Field(None, ge=1, description="encoder actors; None: one per GPU (GPU clusters) or "
                                    "sized from the cluster's CPUs")
    num_gpus_per_worker: float = Field(1.0, ge=0, description="GPUs per encoder actor when the cluster has GPUs")
    num_cpus_per_worker: float | None = Field(None, gt=0, description="CPUs per encoder actor; None: 1 with GPUs, "
                                              "else sized from the cluster")
    lease_ttl_s: float = Field(SWEEP_LEASE_TTL_S, gt=0, description="seconds after its last renewal that the "
                               "output's lease of a dead sweep expires (then the next sweep takes it over)")
    show_progress: bool = Field(True, description="show progress bars (run() prints nothing; the CLI the summary)")
    verbose: bool = Field(False, description="also show Ray's own INFO/WARNING logs and the workers' output on the "
                          "console (else they go to Ray's log files)")

    @field_validator("sessions")
    @classmethod
    def _canonical_sweep_sessions(cls, value: list[str] | str) -> list[str] | str:
        if value == "all":
            return value
        if not value:
            raise ValueError("sessions is empty; name at least one scan like 'session-8_scan-5', or 'all'")
        return list(dict.fromkeys(str(ScanId.parse(v)) for v in value))


# --- Download and S3 releases (berg_ray.download): `berg-ray download` and `--berg-dir s3://...` ---

# The two public sources of the trained release, read without credentials (unsigned requests).
BERG_BUCKET = "brain-encoding-response-generator"  # BERG's bucket; the release is at RELEASE_SUBDIR inside it
MICRONS_BUCKET = "bossdb-open-data"
MICRONS_KEY = "iarpa_microns/minnie/functional_data/foundation_model/foundational_model_weights_and_metadata_v1.zip"
MICRONS_MD5 = "58fcac4b31ad2902c81e339432cec787"  # published checksum of the MICrONS archive
DOWNLOAD_RANGE_BYTES = 32 * 1024 * 1024  # one ranged GET fetches at most this much (the resume granularity)
DOWNLOAD_MAX_MEMBER_BYTES = 4 * 1024 ** 3  # an archive member larger than this is refused (zip bomb guard)
DOWNLOAD_STAGING_DIR = ".partial"  # under the target directory: partial and unverified files, never loaded
DOWNLOAD_STATE_FILE = ".berg-ray-download.json"  # under the target directory: what was installed from where
CACHE_ENV = "BERG_RAY_CACHE"  # node-local cache of s3:// releases; default: $XDG_CACHE_HOME/berg_ray
CACHE_FETCH_LOG = ".fetch-log.jsonl"  # in a cached release: one line per process that resolved it (GETs made)

# --- In-silico experiments (berg_ray.stimuli, berg_ray.analysis, berg_ray.experiments: `berg-ray experiment`) ---
# Degrees -> monitor pixels: the MICrONS monitor, 55.2 x 31.0 cm at 15 cm from the eye, as 256 x 144 pixels (width /
# distance 3.68; the model's own monitor plane, spec §3.2.3, has 4: the same wide-field geometry).
MONITOR_WIDTH_CM, MONITOR_HEIGHT_CM = 55.2, 31.0
MONITOR_DISTANCE_CM = 15.0
# Stimulus defaults (uint8 pixel values; luminance is the pixel value, the model's input).
STIMULUS_MEAN_LUMINANCE = 127.5  # mid grey
STIMULUS_CONTRAST = 1.0  # Michelson contrast of gratings and Gabors
GRATING_SPATIAL_FREQUENCY_CPD = 0.04  # cycles per degree (mouse V1 prefers about 0.04)
GRATING_TEMPORAL_FREQUENCY_HZ = 2.0  # cycles per second
DOT_SIGMA_DEG = 4.0  # Gaussian dot standard deviation
NOISE_SPEED_DEG_S = 20.0  # directional pink noise drift speed
NOISE_ORIENTATION_BANDWIDTH_DEG = 15.0  # Gaussian sd of the noise's orientation filter
NOISE_RMS_CONTRAST = 0.25  # RMS contrast (std / mean) of the noise before clipping
RDK_DENSITY_PER_DEG2 = 0.01  # dots per square degree
RDK_DOT_DIAMETER_DEG = 4.0
RDK_SPEED_DEG_S = 60.0
TRIAL_BLANK_FRAMES = 15  # grey frames before and after a stimulus in a trial (0.5 s at 30 Hz)
EXPERIMENT_DIRECTIONS = 16  # drifting-grating directions, uniformly spaced over 360 deg
EXPERIMENT_REPEATS = 2  # repeats per direction, each with another spatial phase (the model is deterministic)
EXPERIMENT_TRIAL_FRAMES = 60  # stimulus frames per trial (2 s at 30 Hz), averaged into one response
EXPERIMENT_BURN_IN_FRAMES = 30  # grey frames before every stimulus, dropped from the mean (model start-up)
EXPERIMENT_RF_GRID = (6, 10)  # dot positions (rows, cols) of the RF mapping grid
EXPERIMENT_RF_DOT_FRAMES = 10  # frames each dot is shown
EXPERIMENT_DOMAIN_FRAMES = 60  # frames of each out-of-distribution domain's stimulus
