"""The stimulus set of ``experiment properties`` (in-silico signal correlations): generated clips or a directory.

Generated (:func:`properties_set`): ``n_clips`` seeded clips cycling through four kinds: directional pink noise
(1/f, natural-image-like statistics), full-field drifting gratings, drifting Gabor patches at random positions
(local drive, so nearby units co-vary more than distant ones) and random dot kinematograms; each kind's
direction (and the Gabor's position) is drawn from ``seed``. Given (:func:`directory_set`): every top-level
``*.npy`` file of a local directory, uint8 (T, 144, 256). Either way every video starts with ``burn_in`` grey
frames, which the sweep drops (the model's start-up transient).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from berg_ray.config import (ECHO_CHARS, EXPERIMENT_BURN_IN_FRAMES, FRAME_HEIGHT, FRAME_WIDTH, PROPERTIES_CLIP_FRAMES,
                             PROPERTIES_CLIPS)
from berg_ray.errors import InvalidStimulusError
from berg_ray.experiments.stimulus_sets import StimulusSet
from berg_ray.stimuli.geometry import check_n_frames

KINDS = ("noise", "grating", "gabor", "rdk")
GABOR_MARGIN_PX = 24.0  # Gabor centres stay this far inside the screen edges


def properties_set(n_clips: int = PROPERTIES_CLIPS, clip_frames: int = PROPERTIES_CLIP_FRAMES,
                   burn_in: int = EXPERIMENT_BURN_IN_FRAMES, seed: int = 0) -> StimulusSet:
    """``n_clips`` clips of ``clip_frames`` frames (30 Hz), ids ``clip-{k:03d}_{kind}``, kinds cycling through
    ``KINDS``; clip k's direction (and Gabor position) comes from ``seed`` and k, so a set is reproducible."""
    from berg_ray.stimuli import directional_pink_noise, drifting_gabor, drifting_grating, random_dot_kinematogram
    from berg_ray.stimuli.trials import trial

    n_clips, clip_frames = check_properties_set(n_clips, clip_frames)
    videos, conditions = {}, {}
    for k in range(n_clips):
        rng = np.random.default_rng([seed, k])
        kind, direction = KINDS[k % len(KINDS)], float(rng.uniform(0.0, 360.0))
        condition: dict = {"kind": kind, "direction_deg": direction}
        if kind == "noise":
            clip = directional_pink_noise(direction, clip_frames, seed=seed * 100003 + k)
        elif kind == "grating":
            clip = drifting_grating(direction, clip_frames, phase_deg=float(rng.uniform(0.0, 360.0)))
        elif kind == "gabor":
            position = (float(rng.uniform(GABOR_MARGIN_PX, FRAME_WIDTH - 1 - GABOR_MARGIN_PX)),
                        float(rng.uniform(GABOR_MARGIN_PX, FRAME_HEIGHT - 1 - GABOR_MARGIN_PX)))
            clip = drifting_gabor(direction, clip_frames, position_px=position)
            condition.update(col=position[0], row=position[1])
        else:
            clip = random_dot_kinematogram(direction, clip_frames, seed=seed * 100003 + k)
        stimulus_id = f"clip-{k:03d}_{kind}"
        videos[stimulus_id] = trial(clip, blank_before=burn_in, blank_after=0)[0]
        conditions[stimulus_id] = condition
    parameters = {"set": "properties", "n_clips": n_clips, "clip_frames": clip_frames, "burn_in": burn_in,
                  "seed": seed}
    return StimulusSet(videos, burn_in, conditions, parameters)


def check_properties_set(n_clips: int, clip_frames: int) -> tuple[int, int]:
    """The counts of :func:`properties_set`, checked (StimulusParameterError) without generating anything: two
    frames at least, since a correlation needs two samples."""
    return check_n_frames(n_clips, "clips"), check_n_frames(clip_frames, "clip_frames", minimum=2)


def directory_files(directory: str | Path, flag: str = "--stimuli") -> list[Path]:
    """The videos of ``directory`` (top-level ``*.npy`` not starting with "." or "_"), sorted, each checked by
    its header: uint8 (T, 144, 256), T >= 1 (a single frame is fine if there are others).

    Raises:
        InvalidStimulusError: the directory is missing or holds no video, or a file is not such a video.
    """
    root = Path(directory)
    shown = str(directory)[:ECHO_CHARS]
    if "://" in str(directory):
        raise InvalidStimulusError(f"{flag} {shown!r}: give a local directory of .npy videos (remote "
                                   "locations are not read here)")
    if not root.is_dir():
        raise InvalidStimulusError(f"{flag} {shown!r} is not a directory")
    files = sorted(p for p in root.glob("*.npy") if not p.name.startswith((".", "_")))
    if not files:
        raise InvalidStimulusError(f"{flag} {shown!r} holds no .npy video")
    total = 0
    for path in files:
        try:
            video = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InvalidStimulusError(f"{flag}: {path.name[:ECHO_CHARS]!r} is not a readable .npy array "
                                       f"({str(exc)[:ECHO_CHARS]})") from None
        if video.dtype != np.uint8 or video.ndim != 3 or video.shape[1:] != (FRAME_HEIGHT, FRAME_WIDTH) \
                or video.shape[0] < 1:
            raise InvalidStimulusError(f"{flag}: {path.name[:ECHO_CHARS]!r} is {video.dtype} {video.shape}; need "
                                       f"uint8 (T, {FRAME_HEIGHT}, {FRAME_WIDTH}) with T >= 1")
        total += video.shape[0]
    if total < 2:
        raise InvalidStimulusError(f"{flag} {shown!r} holds {total} frame; a correlation needs 2 at least")
    return files


def directory_set(directory: str | Path, burn_in: int = EXPERIMENT_BURN_IN_FRAMES) -> StimulusSet:
    """The checked videos of ``directory`` (:func:`directory_files`), ids = file stems, each after ``burn_in``
    grey frames. The parameters record each file's SHA-256, so an output directory refuses other contents."""
    from berg_ray.stimuli.trials import trial

    videos, digests = {}, {}
    for path in directory_files(directory):
        data = path.read_bytes()
        digests[path.name] = hashlib.sha256(data).hexdigest()
        video = np.load(path, allow_pickle=False)
        videos[path.stem] = trial(video, blank_before=burn_in, blank_after=0)[0]
    parameters = {"set": "properties", "files": digests, "burn_in": burn_in}
    return StimulusSet(videos, burn_in, {stimulus_id: {"kind": "given"} for stimulus_id in videos}, parameters)
