"""Sweep (berg_ray.sweep): Ray Data sweeps over video corpora, Parquet output (local or s3://)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from berg_ray.config.model import DEFAULT_CHUNK_FRAMES, DEFAULT_KERNELS, DEFAULT_PRECISION, ScanId


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
SWEEP_FORMAT_VERSION = 2  # written to _sweep.json; a re-run refuses an output of another version
# (2: the columns perspectives_given, modulations_given)
# Longest stimulus (frames at 30 Hz; longer inputs are listed as errors). 18,000 = 10 min: far longer than any
# trial of the training data (clips of ~10 s), while keeping one stimulus bounded: 18,000 x 144 x 256 uint8 =
# 664 MB decoded, and with --reduce none 18,000 x 9,941 units x 4 B = 716 MB of responses per scan. A micro-batch
# of 8 such stimuli at 9,941 units (1.4e9 floats) still fits Parquet's int32 list offsets (2.1e9).
DEFAULT_SWEEP_MAX_FRAMES = 18_000
# Output lease (_lease.json): one sweep per output prefix. The holder rewrites it every HEARTBEAT seconds; a lease
# not rewritten for TTL seconds belongs to a dead run and is taken over, so a killed sweep blocks for <= TTL.
SWEEP_LEASE_TTL_S = 60.0
SWEEP_LEASE_HEARTBEAT_S = 15.0
# Accelerator encoders (berg_ray.sweep.scaling): how long a sweep waits for the cluster (its autoscaler) to provide
# the GPUs of --min-workers actors before it gives up with exit 2. Cloud GPU nodes take minutes to boot and pull
# the image; 15 minutes covers that and still ends a sweep whose GPU group can never start.
DEFAULT_RESOURCE_WAIT_S = 900.0
# Pre-flight (berg_ray.sweep.preflight): input headers read at a time to learn frame sizes before Ray starts (each
# a bounded read: a .npy header, a zip directory and member header, a video container's header; ranged on S3), and
# how many wrong-sized inputs the message refusing a whole run names.
SWEEP_HEADER_THREADS = 16
SWEEP_SHOWN_INPUTS = 3
SWEEP_DEVICES = ("auto", "cpu", "cuda")


class SweepArgs(BaseModel):
    """Every option of ``berg-ray sweep`` and ``berg_ray.sweep.run``, validated once at the edge."""

    model_config = ConfigDict(extra="forbid")

    berg_dir: str = Field(..., description="BERG directory holding the release (see design.md)")
    input: str = Field(..., description="local directory or s3://bucket/prefix/ holding .npy/.npz/.mp4/.avi/.mov/.mkv")
    output: str = Field(..., description="local directory or s3://bucket/prefix/ receiving the Parquet files")
    follow_symlinks: bool = Field(False, description="local input: read through symbolic links that lead outside "
                                  "input (else each is listed as an error, not read); dangling links are errors")
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
    kernels: Literal["torch", "triton"] = Field(
        DEFAULT_KERNELS, description="hot paths as torch ops (the reference; every device) or fused Triton kernels "
                                     "(GPU encoder actors only; today the readout; the same results to float32 "
                                     "rounding, so not part of the content options)")
    max_frames: int = Field(DEFAULT_SWEEP_MAX_FRAMES, ge=1, description="most frames (at 30 Hz) per stimulus; "
                            "longer inputs are listed as errors without being decoded in full")
    resize: bool = Field(False, description="resize frames of another size to 144x256 (bilinear) instead of "
                         "rejecting them")
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint; None: AWS_ENDPOINT_URL or AWS")
    anonymous: bool = Field(False, description="read the input and an s3:// release without credentials (public "
                            "buckets); the output always uses the standard credential chain")
    address: str | None = Field(None, description="Ray cluster address; None: RAY_ADDRESS or a local cluster")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where encoder actors run: 'cuda' requests "
                                                   "GPUs (the autoscaler starts GPU nodes; the sweep waits for "
                                                   "them), 'cpu' runs on CPUs, 'auto' uses GPUs when the cluster "
                                                   "has them now or its autoscaler can start them, else CPUs")
    num_workers: int | None = Field(None, ge=1, description="a fixed pool of this many encoder actors; None: GPU "
                                    "pools autoscale between min_workers and max_workers, CPU pools are sized from "
                                    "the cluster's CPUs")
    min_workers: int | None = Field(None, ge=1, description="GPU pool: actors to wait for before starting (None: 1)")
    max_workers: int | None = Field(None, ge=1, description="GPU pool: most actors as nodes join (None: one per "
                                    "micro-batch)")
    resource_wait_s: float = Field(DEFAULT_RESOURCE_WAIT_S, gt=0, description="GPU pool: seconds to wait for the "
                                   "GPUs of min_workers actors before giving up (nothing written)")
    accelerator_resource: str = Field("GPU", min_length=1, description="Ray resource a GPU actor requests "
                                      "num_gpus_per_worker of: 'GPU', or a custom resource your GPU node types "
                                      "declare")
    num_gpus_per_worker: float = Field(1.0, gt=0, description="GPUs (accelerator_resource) per GPU encoder actor")
    num_cpus_per_worker: float | None = Field(None, gt=0, description="CPUs per encoder actor; None: 1 with GPUs, "
                                              "else sized from the cluster")
    lease_ttl_s: float = Field(SWEEP_LEASE_TTL_S, gt=0, description="seconds after its last renewal that the "
                               "output's lease of a dead sweep expires (then the next sweep takes it over)")
    metrics_export_port: int | None = Field(None, ge=1, le=65535, description="Prometheus port of the local "
                                            "cluster the sweep starts (http://127.0.0.1:PORT/metrics); None: a port "
                                            "Ray picks; refused when joining a cluster (address / RAY_ADDRESS)")
    show_progress: bool = Field(True, description="show progress bars (run() prints nothing; the CLI the summary)")
    verbose: bool = Field(False, description="also show Ray's own INFO/WARNING logs and the workers' output on the "
                          "console (else they go to Ray's log files)")

    @model_validator(mode="after")
    def _pool_bounds(self) -> "SweepArgs":
        if self.num_workers is not None and (self.min_workers is not None or self.max_workers is not None):
            raise ValueError("give either num_workers (a fixed pool) or min_workers/max_workers (an autoscaled GPU "
                             "pool), not both")
        if self.min_workers is not None and self.max_workers is not None and self.min_workers > self.max_workers:
            raise ValueError(f"min_workers {self.min_workers} > max_workers {self.max_workers}; make min <= max")
        return self

    @field_validator("sessions")
    @classmethod
    def _canonical_sweep_sessions(cls, value: list[str] | str) -> list[str] | str:
        if value == "all":
            return value
        if not value:
            raise ValueError("sessions is empty; name at least one scan like 'session-8_scan-5', or 'all'")
        return list(dict.fromkeys(str(ScanId.parse(v)) for v in value))
