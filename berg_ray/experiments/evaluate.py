"""``berg-ray evaluate``: predict recorded videos, score the predictions per unit, compare with the released scores.

For each recorded video (layout: :mod:`berg_ray.experiments.recordings`) the model predicts the responses, once
for the video when the file holds no behaviour, else once per recorded trial with that trial's behaviour; then
:mod:`berg_ray.analysis.accuracy` scores them against the recorded trials. The trials of one video form one batch;
it runs in this process on ``--device``, or on Ray actors across a cluster (``--workers N``, ``--address``;
:mod:`berg_ray.experiments.evaluate_ray`).

Outputs: a Parquet table (one row per unit: ``session``, ``scan``, ``readout_id``, ``unit_id``, ``area``,
``field``, ``cc_abs``, ``cc_max``, ``cc_norm``, and the scan metadata's values as ``released_cc_abs``,
``released_cc_max``, ``released_cc_norm``; the run's settings in the schema metadata under ``berg_ray.evaluate``)
and a PNG figure beside it (same name, ``.png``). The released scores were computed with the recorded behaviour,
so predictions without behaviour score lower.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from berg_ray.analysis.accuracy import ACCURACY_COLUMNS, CorrelationAccumulator
from berg_ray.checkpoint.release import read_scan_units
from berg_ray.config import DEFAULT_CHUNK_FRAMES, DEFAULT_PRECISION, MODEL_ID, ScanId
from berg_ray.errors import AnalysisInputError, InvalidRecordingError
from berg_ray.experiments.recordings import RecordingHeader, read_header
from berg_ray.storage.publish import publish_file
from berg_ray.units import ScanUnits

RELEASED_PREFIX = "released_"
SCHEMA_KEY = b"berg_ray.evaluate"


@dataclass(frozen=True)
class EvaluationArgs:
    """Options of one evaluation (the CLI's flags)."""

    berg_dir: str
    session: str
    burn_in_frames: int
    device: str = "auto"
    precision: str = DEFAULT_PRECISION
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    show_progress: bool = True
    s3_endpoint_url: str | None = None  # of an s3:// berg_dir (None: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS)
    anonymous: bool = False  # read an s3:// berg_dir without credentials


def check_recordings(files: list[Path], n_units: int, burn_in_frames: int) -> list[RecordingHeader]:
    """Every file's headers, checked before the model runs (shapes, members, length against the burn-in, and at
    least one video with repeated trials: the noise ceiling needs them)."""
    headers = [read_header(path, n_units) for path in files]
    for header in headers:
        if header.n_frames <= burn_in_frames:
            raise InvalidRecordingError(f"{header.path}: {header.n_frames} frames, not more than --burn-in-frames "
                                        f"{burn_in_frames}; lower --burn-in-frames or leave the file out")
    if max(h.n_trials for h in headers) < 2:
        raise InvalidRecordingError(f"every recorded video has a single trial ({len(headers)} file(s)); cc_max (the "
                                    "noise ceiling) needs repeated trials of the same video: give at least one video "
                                    "with 2 or more trials")
    return headers


def evaluate(args: EvaluationArgs, files: list[Path], workers: int = 0, address: str | None = None,
             gpus_per_worker: float = 1.0, verbose: bool = False) -> tuple[pd.DataFrame, dict]:
    """Predict and score every recorded video of ``files`` (in order) for one scan.

    Args:
        args: the options.
        files: one .npz per video (:mod:`berg_ray.experiments.recordings`).
        workers: 0 predicts in this process on ``args.device``; N > 0 on N Ray actors (``address``: the cluster
            to join, None: RAY_ADDRESS or a local one; ``args.device`` cpu, cuda or auto, as for a sweep, decides
            whether they run on ``gpus_per_worker`` GPUs each; ``verbose``: Ray's own logs on the console).
    Returns:
        (per-unit table, see the module docstring; the run's settings and counts).
    """
    from berg_ray.experiments.evaluate_ray import predict_locally, predict_on_ray

    accumulator = CorrelationAccumulator(args.burn_in_frames)  # checks the burn-in
    scan_id = ScanId.parse(args.session)
    units = read_scan_units(_release_dir(args), scan_id)
    headers = check_recordings(files, units.n_units, args.burn_in_frames)
    predictions = (predict_on_ray(args, headers, units.n_units, workers, address, gpus_per_worker, verbose)
                   if workers else predict_locally(args, headers, units.n_units))
    for video, prediction in tqdm(predictions, total=len(headers), unit="video", desc=f"evaluate {scan_id}",
                                  disable=not args.show_progress):
        try:
            accumulator.add(prediction, video.responses)
        except AnalysisInputError as exc:
            raise InvalidRecordingError(f"{video.path}: {exc}") from None
    info = {"train_session": str(scan_id), "videos": len(headers), "trials": sum(h.n_trials for h in headers),
            "videos_with_behaviour": sum(bool(h.behaviour) for h in headers), "burn_in_frames": args.burn_in_frames,
            "precision": args.precision, "weights": units.weights, "workers": workers}
    return accuracy_table(units, accumulator.table()), info


def _release_dir(args: EvaluationArgs) -> Path:
    return _berg(args).berg_dir


def _berg(args: EvaluationArgs):
    """BERG on ``args.berg_dir``, an s3:// release reached with ``args.s3_endpoint_url`` / ``args.anonymous``
    (each process resolves its own options: no credentials travel to Ray actors)."""
    from berg_ray.berg_api import BERG
    from berg_ray.download import resolve_berg_dir
    from berg_ray.storage.s3 import s3_options_for

    return BERG(resolve_berg_dir(args.berg_dir, s3_options_for(args.berg_dir, args.s3_endpoint_url, args.anonymous)))


def load_handle(args: EvaluationArgs, device: str):
    """The BERG model handle of ``args.session`` on ``device``."""
    return _berg(args).get_encoding_model(MODEL_ID, train_session=str(ScanId.parse(args.session)),
                                                  device=device, chunk_frames=args.chunk_frames,
                                                  precision=args.precision)


def predict_trials(model, stimulus: np.ndarray, behaviour: dict[str, np.ndarray | None], trials: int) -> np.ndarray:
    """float32 [T, U] (one prediction of the video, no behaviour) or [R, T, U] (trial r predicted with its own
    behaviour), through ``berg_ray.inference.encode_videos``; ``model`` is a BERG ``EncodingModelHandle``,
    ``stimulus`` uint8 (T, 144, 256), ``behaviour`` name -> float32 (R, T, 2) or None."""
    from berg_ray.inference import encode_videos

    sid = str(model.scan_id)
    if all(value is None for value in behaviour.values()):
        return encode_videos(model.model, stimulus[None], [sid], None, model.chunk_frames)[0]
    stimuli = np.broadcast_to(stimulus, (trials, *stimulus.shape))  # the same video for every trial
    outputs = encode_videos(model.model, stimuli, [sid] * trials, None, model.chunk_frames, **behaviour)
    return np.stack(outputs)


def accuracy_table(units: ScanUnits, accuracy: pd.DataFrame) -> pd.DataFrame:
    """One row per unit (readout order): ids, area, field, the scores and the metadata's as ``released_*``."""
    released = units.metadata["encoding_model"]
    table = pd.DataFrame({
        "session": units.scan_id.session, "scan": units.scan_id.scan, "readout_id": units.readout_id,
        "unit_id": units.unit_id, "area": units.area, "field": units.field,
    })
    for name in ACCURACY_COLUMNS:
        table[name] = accuracy[name].to_numpy()
    for name in ACCURACY_COLUMNS:
        table[RELEASED_PREFIX + name] = np.asarray(released[name], dtype=np.float64)
    return table


def write_table(path: Path, table: pd.DataFrame, info: dict) -> None:
    """Write the table as Parquet (``info`` as JSON in the schema metadata) so ``path`` appears only complete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), SCHEMA_KEY: json.dumps(info).encode()})
    publish_file(path, lambda file: pq.write_table(arrow, file))


def read_info(path: Path) -> dict:
    """The run's settings stored by :func:`write_table`."""
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[SCHEMA_KEY])
