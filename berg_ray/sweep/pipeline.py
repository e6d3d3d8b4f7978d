"""The Ray Data pipeline of a sweep: read + decode on CPU tasks, encode + write on stateful encoder actors.

```
from_items(shards)                        one row per micro-batch (planned on the driver, see plan.py)
  .map_batches(decode_shards)             CPU tasks: read each input file, decode to uint8 [T, 144, 256]
                                          (and a .npz's behaviour members to float32 [T, 2], checked)
  .map_batches(ShardEncoder, compute=ActorPoolStrategy(size=n_workers), num_gpus=...)
                                          actors: model loaded once; encode each scan of the micro-batch,
                                          write one Parquet file per scan (staged, then published atomically)
  -> one summary row per file written     streamed back to the driver for progress and the final summary
                                          (with the Ray node id of the actor that wrote it)
```
The actors write the files themselves (rather than ``Dataset.write_parquet``) because each file's name must be a
pure function of its micro-batch: a retried micro-batch then rewrites the same name, never adds a second copy,
and a re-run finds what is done from the file footers. ``write_parquet`` names files by write task and block,
which differ between runs and retries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

import numpy as np

from berg_ray.behaviour import BEHAVIOUR_INPUTS, validate_behaviours
from berg_ray.config import FRAME_HEIGHT, FRAME_WIDTH
from berg_ray.download import resolve_berg_dir
from berg_ray.errors import BergRayError, InvalidBehaviourError
from berg_ray.cluster.metrics import record_sweep_failures, record_sweep_file
from berg_ray.validation.names import printable_name
from berg_ray.storage import S3Options, Store
from berg_ray.sweep.layout import RESPONSES_SCHEMAS, input_error, part_name, responses_table, write_table
from berg_ray.sweep.arrays import read_behaviour
from berg_ray.sweep.plan import Shard
from berg_ray.sweep.video import decode_video

_FRAME_BYTES = FRAME_HEIGHT * FRAME_WIDTH
_BEHAVIOUR_DTYPE = np.float32


@dataclass(frozen=True)
class DecodedInput:
    """One input file, decoded and checked: its video and the behaviour it carries (None: not given)."""

    video: np.ndarray  # uint8 (T, 144, 256)
    perspectives: np.ndarray | None = None  # float32 (T, 2), standardised pupil centre x, y
    modulations: np.ndarray | None = None  # float32 (T, 2), standardised pupil radius, treadmill velocity

    @property
    def behaviour(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(perspectives, modulations), in the order of ``BEHAVIOUR_INPUTS``."""
        return self.perspectives, self.modulations


def decode_shards(batch: dict[str, np.ndarray], store: Store, resize: bool, skip_frames: int,
                  max_frames: int) -> dict:
    """Ray Data batch function (CPU task): read and decode every stimulus of each micro-batch.

    Decoding one input is isolated: whatever reading, decoding or validating one file raises (a BergRayError,
    or any exception of numpy, zipfile or FFmpeg on a malformed file) lists that file with its error type and
    message and the others go on; failures outside the per-file decode (our own logic) are not caught.

    Args:
        batch: column ``shard`` holds JSON-encoded :class:`Shard` s.
        store: the input store.
        resize: resize frames of another size to 144x256.
        skip_frames: leading frames dropped later; a video must be longer than this.
        max_frames: most frames per stimulus (see ``decode_video``).

    Returns:
        Columns ``shard``, ``frames`` (bytes: the valid videos' uint8 frames concatenated along T),
        ``lengths`` (JSON [[stimulus_id, T], ...]), ``given`` (JSON [[perspectives given, modulations given],
        ...] per valid video), ``behaviour`` (bytes: the given behaviour arrays, float32 (T, 2), concatenated in
        that order) and ``errors`` (JSON list of error dicts).
    """
    out: dict[str, list] = {"shard": [], "frames": [], "lengths": [], "given": [], "behaviour": [], "errors": []}
    for text in batch["shard"]:
        shard = Shard.from_json(str(text))
        decoded, lengths, errors = [], [], []
        for stimulus in shard.stimuli:
            try:
                item = read_input(store, stimulus.name, resize, skip_frames, max_frames)
            except Exception as exc:  # one input's failure, whatever its type: listed, the sweep goes on
                errors.append(input_error(store, stimulus.stimulus_id, stimulus.name, exc))
                continue
            decoded.append(item)
            lengths.append([stimulus.stimulus_id, int(item.video.shape[0])])
        out["shard"].append(text)
        out["frames"].append(b"".join(item.video.tobytes() for item in decoded))
        out["lengths"].append(json.dumps(lengths))
        out["given"].append(json.dumps([[b is not None for b in item.behaviour] for item in decoded]))
        out["behaviour"].append(b"".join(b.tobytes() for item in decoded for b in item.behaviour if b is not None))
        out["errors"].append(json.dumps(errors))
    return {key: np.array(values, dtype=object) for key, values in out.items()}


def decode_input(store: Store, name: str, resize: bool, skip_frames: int, max_frames: int) -> np.ndarray:
    """The video of ``read_input``: uint8 (T, 144, 256) with skip_frames < T <= max_frames."""
    return read_input(store, name, resize, skip_frames, max_frames).video


def read_input(store: Store, name: str, resize: bool, skip_frames: int, max_frames: int) -> DecodedInput:
    """Read, decode and check one input file: its video (skip_frames < T <= max_frames) and, for a .npz, the
    behaviour members it holds (``perspectives``, ``modulations``), each checked to be float [T, 2] for this T.

    The file is read on demand (``Store.open_read``), so an input refused from its header (too many frames,
    truncated) is read only that far; messages show the name with control characters escaped.
    """
    with store.open_read(name) as handle:
        return read_file(name, handle, resize, skip_frames, max_frames)


def read_file(name: str, handle: BinaryIO, resize: bool, skip_frames: int, max_frames: int) -> DecodedInput:
    """``read_input`` of an open file (seekable, at its start): ``name``'s suffix selects the reader; it is shown
    in messages with control characters escaped. ``berg-ray encode`` reads its input with this too."""
    shown = printable_name(name)
    video = decode_video(shown, handle, resize, max_frames)
    raw = read_behaviour(shown, handle, max_frames) if PurePosixPath(name).suffix.lower() == ".npz" else {}
    if video.shape[0] <= skip_frames:
        raise BergRayError(f"{shown} has {video.shape[0]} frames, but skip_frames={skip_frames} leaves none; lower "
                           f"--skip-frames")
    try:
        behaviour = validate_behaviours(raw, int(video.shape[0]))
    except InvalidBehaviourError as exc:
        raise InvalidBehaviourError(f"{shown}: {exc}") from None
    return DecodedInput(video, **behaviour)


class ShardEncoder:
    """Ray Data callable class (actor): loads the model once, then encodes and writes micro-batches."""

    def __init__(self, berg_dir: str, scans: Sequence[str], store: Store, options: dict, chunk_frames: int,
                 num_cpus: float, s3: S3Options | None = None, device: str = "auto", kernels: str = "torch"
                 ) -> None:
        import ray
        import torch

        from berg_ray.checkpoint.release import load_model
        from berg_ray.runtime.threads import cpu_threads, set_torch_threads

        if device == "cpu" or not torch.cuda.is_available():  # CPU actor: the CPUs it reserved, at most those here
            set_torch_threads(cpu_threads(num_cpus))
        self._model = load_model(resolve_berg_dir(berg_dir, s3), list(scans), device=device,
                                 precision=options["precision"], kernels=kernels)
        self._store, self._options, self._chunk_frames = store, options, chunk_frames
        self._node = ray.get_runtime_context().get_node_id()  # recorded with each file in the run summary

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: list[dict] = []
        columns = (batch[key] for key in ("shard", "frames", "lengths", "given", "behaviour", "errors"))
        for text, frames, lengths, given, behaviour, errors in zip(*columns):
            shard, lengths = Shard.from_json(str(text)), json.loads(str(lengths))
            decoded = _split_inputs(frames, lengths, json.loads(str(given)), behaviour)
            written = self._encode_shard(shard, decoded, [sid for sid, _ in lengths])
            rows.extend(written or [_summary_row("", "", 0, 0, 0, 0.0, 0.0)])
            rows[-1]["errors"] = str(errors)
            record_sweep_failures(self._store.uri, len(json.loads(str(errors))))
        for row in rows:
            row["node"] = self._node
        return {key: np.array([row[key] for row in rows]) for key in rows[0]}

    def _encode_shard(self, shard: Shard, items: list[DecodedInput], stimulus_ids: list[str]) -> list[dict]:
        """Encode and write each scan of the micro-batch: one file per scan (rows: the decoded stimuli)."""
        decoded = dict(zip(stimulus_ids, items))
        rows = []
        for scan, planned in shard.todo:
            ids = [i for i in planned if i in decoded]
            if not ids:
                continue
            start = time.perf_counter()
            responses = self._encode_scan([decoded[i] for i in ids], scan)
            given = {name: [value is not None for value in column]
                     for name, column in zip(BEHAVIOUR_INPUTS, zip(*(decoded[i].behaviour for i in ids)))}
            n_frames = [r.shape[0] for r in responses]  # frames covered after skip_frames
            if self._options["reduce"] == "mean":
                responses = [r.mean(axis=0, dtype=np.float64).astype(np.float32) for r in responses]
            encoded = time.perf_counter()
            table = responses_table(ids, scan, n_frames, responses, self._options["reduce"],
                                    given["perspectives"], given["modulations"])
            name = part_name(scan, planned, self._options)  # planned ids: the same name in every run
            inputs = {s.stimulus_id: s.input_key for s in shard.stimuli if s.stimulus_id in ids}  # changed-input check
            size = write_table(self._store, name, table, RESPONSES_SCHEMAS[self._options["reduce"]],
                               {"scan": scan, "stimulus_ids": ids, **self._options, "inputs": inputs})
            frames = sum(decoded[i].video.shape[0] for i in ids)
            rows.append(_summary_row(scan, name, len(ids), frames, size, encoded - start,
                                     time.perf_counter() - encoded))
            record_sweep_file(self._store.uri, scan, len(ids), frames, size)
        if rows:
            rows[0]["decoded_frames"] = sum(item.video.shape[0] for item in items)  # decoded once per micro-batch
        return rows

    def _encode_scan(self, inputs: list[DecodedInput], scan: str) -> list[np.ndarray]:
        """Responses (T - skip_frames, N) of each input for one scan; equal-length videos share a forward pass
        (with behaviour given for some of them, the others get zeros: exactly the output without it)."""
        from berg_ray.inference import encode_videos

        skip = self._options["skip_frames"]
        responses: list[np.ndarray | None] = [None] * len(inputs)
        by_length: dict[int, list[int]] = {}
        for index, item in enumerate(inputs):
            by_length.setdefault(item.video.shape[0], []).append(index)
        for indices in by_length.values():
            stacked = np.stack([inputs[i].video for i in indices])  # (B, T, 144, 256)
            outputs = encode_videos(self._model, stacked, [scan] * len(indices), chunk_frames=self._chunk_frames,
                                    **_stacked_behaviour([inputs[i] for i in indices]))
            for i, output in zip(indices, outputs):
                responses[i] = output[skip:]  # (T - skip, N)
        return responses


def _stacked_behaviour(inputs: list[DecodedInput]) -> dict[str, np.ndarray]:
    """Keyword arguments of ``encode_videos`` for equal-length inputs: each behaviour input given for any of them,
    (B, T, 2) with zeros (the default) for those without it; inputs given for none are left out."""
    frames = inputs[0].video.shape[0]
    stacked = {}
    for name, column in zip(BEHAVIOUR_INPUTS, zip(*(item.behaviour for item in inputs))):
        if any(value is not None for value in column):
            stacked[name] = np.stack([np.zeros((frames, 2), _BEHAVIOUR_DTYPE) if value is None else value
                                      for value in column])
    return stacked


def _split_inputs(frames: bytes, lengths: list, given: list, behaviour: bytes) -> list[DecodedInput]:
    """The inverse of ``decode_shards``' ``frames``, ``given`` and ``behaviour`` columns."""
    flat = np.frombuffer(frames, dtype=np.uint8)
    values = np.frombuffer(behaviour, dtype=_BEHAVIOUR_DTYPE)
    inputs, offset, at = [], 0, 0
    for (_, n_frames), flags in zip(lengths, given):
        size = n_frames * _FRAME_BYTES
        video = flat[offset:offset + size].reshape(n_frames, FRAME_HEIGHT, FRAME_WIDTH).copy()
        offset += size
        arrays = []
        for flag in flags:
            arrays.append(values[at:at + n_frames * 2].reshape(n_frames, 2).copy() if flag else None)
            at += n_frames * 2 if flag else 0
        inputs.append(DecodedInput(video, *arrays))
    return inputs


def _summary_row(scan: str, name: str, n_stimuli: int, n_frames: int, n_bytes: int, encode_s: float,
                 write_s: float) -> dict:
    return {"scan": scan, "file": name, "n_stimuli": n_stimuli, "n_frames": n_frames, "n_bytes": n_bytes,
            "encode_s": encode_s, "write_s": write_s, "decoded_frames": 0, "errors": "[]", "node": ""}
