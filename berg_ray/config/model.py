"""Model and release constants, the scan catalogue, and the scan-id value type.

The model constants come from the released network (wang2025-model-spec.md); the catalogue of scans, fields and
areas from the BERG model card of ``calcium_2p-wang_2025-3DCNN``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

# CPU processes berg_ray owns (berg_ray.runtime.threads): the OpenMP wait policy unless the user set one
# ('passive': idle threads sleep, several-fold faster on a busy machine) and how much freed heap glibc keeps for reuse.
DEFAULT_OMP_WAIT_POLICY = "passive"
HEAP_KEEP_BYTES = 512 * 2**20  # freed memory kept (not returned, not page-faulted again): ~4 feed-forward passes

DEMO_WORK_DIR = "demo-output"  # `berg-ray demo`: its output folder, relative to the working directory

# Chunking: frames of one video pushed through the feed-forward core at once (memory scales with it).
DEFAULT_CHUNK_FRAMES = 32
# Gradients (berg_ray.model.gradients): frames per checkpointed chunk; a backward pass keeps one chunk's
# activations (~0.1 GB per video-frame in float32 on CPU) plus the state at each chunk boundary (~20 MB per video).
GRADIENT_CHUNK_FRAMES = 8

# Numeric precision of the model (berg_ray.runtime.precision): float32 matches the reference; the others are
# faster on GPUs.
PRECISIONS = ("float32", "tf32", "bfloat16")
DEFAULT_PRECISION = "float32"

# Implementation of the hot paths (berg_ray.model.device_plan.check_kernels): "torch" ops (the reference path, every
# device) or fused Triton kernels ("triton": CUDA GPUs only; today the readout).
KERNELS = ("torch", "triton")
DEFAULT_KERNELS = "torch"

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

# Numbers in user input (scan ids, query values, headers, flags): ASCII digits only (``\d`` and ``int()`` also take
# '٨' as 8), and at most this many, far below Python's 4,300-digit limit of ``int()`` (berg_ray.validation.numbers).
MAX_NUMBER_DIGITS = 18
_SCAN_PATTERN = re.compile(rf"session-?([0-9]{{1,{MAX_NUMBER_DIGITS}}})_scan-?([0-9]{{1,{MAX_NUMBER_DIGITS}}})")
ECHO_CHARS = 64  # longest piece of a user's value quoted back in an error message


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
        match = _SCAN_PATTERN.fullmatch(value.strip())
        if match is None:
            raise MalformedSessionError(
                f"train_session {_shorten(value)!r} is malformed; use 'session-X_scan-Y' (or 'sessionX_scanY') with "
                f"X and Y in ASCII digits (at most {MAX_NUMBER_DIGITS}), "
                f"one of: {', '.join(map(str, all_scans()))}"
            )
        scan_id = cls(int(match.group(1)), int(match.group(2)))
        if (scan_id.session, scan_id.scan) not in SCAN_FIELDS:
            raise InvalidSessionError(
                f"train_session {value!r} is not a released scan; valid: {', '.join(map(str, all_scans()))}"
            )
        return scan_id


def _shorten(value: str) -> str:
    """``value``, cut to ECHO_CHARS characters for an error message."""
    return value if len(value) <= ECHO_CHARS else f"{value[:ECHO_CHARS]}...({len(value)} characters)"


def all_scans() -> list[ScanId]:
    """The 13 released scans, sorted."""
    return [ScanId(s, c) for (s, c) in sorted(SCAN_FIELDS)]


def check_model_id(model_id: str) -> str:
    """Return ``model_id`` if berg_ray serves it, else raise UnknownModelError."""
    if model_id != MODEL_ID:
        raise UnknownModelError(f"unknown model id {model_id!r}; berg_ray serves only {MODEL_ID!r}")
    return model_id
