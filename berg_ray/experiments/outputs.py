"""Where one experiment writes: ``--out``/<kind>/, a local directory or an ``s3://bucket/prefix``.

Layout (the same on both)::

    <out>/<kind>/_experiment.json   the stimulus set's parameters (a re-run with other ones is refused)
    <out>/<kind>/stimuli/{id}.npy   the generated videos (the sweep's input)
    <out>/<kind>/sweep/             the sweep's output (resumable, exactly once)
    <out>/<kind>/{scan}.parquet     per-unit tables, {scan}.png figures, summary.parquet

Every file appears whole (written to a staging path, then published: a rename locally, one upload in S3), so a
killed run leaves no half-written table or figure. In S3 the stimuli are readable by every node of a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from berg_ray.errors import BergRayError
from berg_ray.experiments.stimulus_sets import StimulusSet
from berg_ray.storage import Store, open_store
from berg_ray.storage.s3 import S3Options, s3_options_for

STIMULI_DIR, SWEEP_DIR, EXPERIMENT_MANIFEST = "stimuli", "sweep", "_experiment.json"


def join_uri(base: str, name: str) -> str:
    """``base``/``name`` for a local path or an s3:// URI."""
    if "://" in base:
        return base.rstrip("/") + "/" + name
    return str(Path(base) / name)


class ExperimentDir:
    """The output location of one experiment kind (see the module docstring)."""

    def __init__(self, out: str | Path, kind: str, s3_endpoint_url: str | None = None) -> None:
        """Args: out: ``--out`` (local directory or s3://bucket/prefix); kind: "tuning", "rf" or "domains";
        s3_endpoint_url: S3-compatible endpoint for s3:// locations (None: AWS_ENDPOINT_URL or AWS)."""
        self.uri = join_uri(str(out), kind)
        self.s3_endpoint_url = s3_endpoint_url
        self.s3: S3Options | None = s3_options_for(self.uri, s3_endpoint_url)
        self.store: Store = open_store(self.uri, self.s3)

    def local_release(self, berg_dir: str) -> Path:
        """The local directory of ``berg_dir`` for the analysis on this machine (an s3:// release through this
        node's verified cache, reached with this location's endpoint)."""
        from berg_ray.download import resolve_berg_dir

        return resolve_berg_dir(berg_dir, s3_options_for(berg_dir, self.s3_endpoint_url))

    def uri_of(self, name: str) -> str:
        return join_uri(self.uri, name)

    @property
    def stimuli_uri(self) -> str:
        return self.uri_of(STIMULI_DIR)

    @property
    def sweep_uri(self) -> str:
        return self.uri_of(SWEEP_DIR)

    def claim(self, stimulus_set: StimulusSet) -> None:
        """Record the set's parameters, or check they match the recorded ones (the sweep would otherwise reuse rows
        of same-named stimuli made with other settings). Safe against a concurrent run: the record is created
        with a create-if-absent write.

        Raises:
            BergRayError: the location holds an experiment made with other parameters.
        """
        wanted = json.loads(json.dumps(stimulus_set.parameters))
        found = self.store.read_versioned(EXPERIMENT_MANIFEST)
        if found is None:
            data = json.dumps(wanted, sort_keys=True, indent=1).encode()
            if self.store.put_if(EXPERIMENT_MANIFEST, data, None) is not None:
                return
            found = self.store.read_versioned(EXPERIMENT_MANIFEST)  # another run created it first
        recorded = json.loads(found[0]) if found else None
        if recorded != wanted:
            raise BergRayError(f"{self.uri} already holds an experiment made with {recorded}, but this run asks "
                               f"for {wanted}; re-run with the same settings (it resumes) or use another --out")

    def write_stimuli(self, stimulus_set: StimulusSet) -> int:
        """Save every video as ``stimuli/{id}.npy``, skipping those already there (``claim`` guarantees they come
        from the same parameters). Returns how many were written."""
        present = {info.name for info in open_store(self.stimuli_uri, self.s3).list_files()}
        written = 0
        for stimulus_id, video in stimulus_set.videos.items():
            if f"{stimulus_id}.npy" in present:
                continue
            self._publish(f"{STIMULI_DIR}/{stimulus_id}.npy", lambda path, v=video: _save_npy(path, v))
            written += 1
        return written

    def write_table(self, table: pd.DataFrame, name: str) -> str:
        """Write ``table`` as Parquet file ``name``; returns its URI."""
        return self._publish(name, lambda path: table.to_parquet(path, index=False))

    def write_figure(self, draw: Callable[[Path], object], name: str) -> str:
        """Publish the PNG that ``draw(path)`` writes to a local path as ``name``; returns its URI."""
        return self._publish(name, draw)

    def read_sweep(self, columns: list[str]) -> pd.DataFrame:
        """The sweep's rows (its part files; ``columns`` only)."""
        import pyarrow.parquet as pq

        filesystem, path = open_store(self.sweep_uri, self.s3).arrow_path("")
        return pq.read_table(path.rstrip("/"), filesystem=filesystem, columns=columns).to_pandas()

    def _publish(self, name: str, write: Callable[[Path], object]) -> str:
        staged = self.store.staging_path(name)
        try:
            write(staged)
            self.store.publish(staged, name)
        finally:
            staged.unlink(missing_ok=True)
        return self.uri_of(name)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as file:  # np.save(path) would append ".npy" to a staging name
        np.save(file, array)
