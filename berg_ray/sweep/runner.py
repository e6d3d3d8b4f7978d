"""``berg_ray.sweep.run``: check everything, plan, run the Ray Data pipeline, write the errors table, summarise.

Order of work (every check that can fail runs before any compute starts):

1. pre-flight (preflight.py): validate the options (:class:`~berg_ray.config.SweepArgs`), resolve the scans
   against the release (a wrong one is refused with the scans the release holds);
2. check that the input can be listed and the output written (S3 credentials, bucket, endpoint);
3. take the output's lease (one sweep per output, lease.py) and remove staging files of killed runs; compare
   the output's ``_sweep.json`` with the options; read the done set from existing part files, deleting those
   that hold a row of an input that changed since (size and version recorded per row);
4. list the inputs and plan the micro-batches still to do; without ``resize``, read the frame size of each input
   to compute from its header (preflight.wrong_sized): if every one is of another size than 144x256 the run is
   refused (nothing started or written), else those are listed as errors and not sent to Ray; if any work is
   left, start or join Ray, choose the encoders' device and on GPUs wait for the first actors' resources
   (scaling.py: the autoscaler starts nodes; a timeout writes nothing); write the units tables and the manifest;
5. run the pipeline (pipeline.py), streaming one summary row per file written;
6. write ``_errors/errors.parquet`` (possibly empty) and return the :class:`SweepResult` (printing its
   ``summary()`` is the caller's choice; ``berg-ray sweep`` prints it).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from berg_ray.runtime import threads
from berg_ray.config import SWEEP_DECODE_NUM_CPUS, SweepArgs
from berg_ray.download import resolve_berg_dir
from berg_ray.errors import BergRayError, StorageError
from berg_ray.cluster.metrics import record_sweep_failures
from berg_ray.validation.names import printable_name
from berg_ray.cluster.session import check_metrics_export_port
from berg_ray.storage import S3Options, Store, open_store, resolve_s3_options
from berg_ray.sweep import layout
from berg_ray.sweep.lease import acquire as acquire_lease
from berg_ray.sweep.plan import Listing, Shard, Stimulus, changed_parts, list_stimuli, plan_shards
from berg_ray.sweep.preflight import check_options, refuse_all, release_s3, resolve_scans, wrong_sized
from berg_ray.sweep.resources import Workers
from berg_ray.sweep.scaling import StatusLine, plan_encoders


@dataclass
class SweepResult:
    """What a sweep did in this run. ``frames``: video frames decoded; ``frame_scans``: (frame, scan) pairs run
    through the model (the work measure behind frames/s); ``part_nodes``: the Ray node id of the encoder actor that
    wrote each part file of this run."""

    output: str
    scans: list[str]
    stimuli: int = 0
    stimuli_done_before: int = 0
    inputs_changed: int = 0
    files_written: int = 0
    frames: int = 0
    frame_scans: int = 0
    bytes_written: int = 0
    encode_s: float = 0.0
    write_s: float = 0.0
    wall_s: float = 0.0
    errors: list[dict] = field(default_factory=list)
    part_nodes: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def complete_before(self) -> bool:
        """True when every (stimulus, scan) was already written before this run, so nothing was computed."""
        return self.stimuli > 0 and self.stimuli_done_before == self.stimuli and self.files_written == 0

    @property
    def frames_per_s(self) -> float:
        return self.frame_scans / self.wall_s if self.wall_s > 0 else 0.0

    def _nodes_line(self) -> str:
        counts = Counter(self.part_nodes.values())
        return f"{len(counts)} (" + ", ".join(f"{node}: {n} files" for node, n in sorted(counts.items())) + ")"

    def summary(self) -> str:
        """What the run did, in lines for a terminal; names (the output, stimulus ids, messages) are shown with
        control characters and undecodable bytes escaped, so no name can forge a line."""
        changed = f", {self.inputs_changed} recomputed: input changed" if self.inputs_changed else ""
        speed = ("output already complete, nothing computed" if self.complete_before
                 else f"{self.frames_per_s:.2f} frames/s (frame x scan per second)")
        lines = [f"sweep -> {printable_name(self.output)}",
                 f"  stimuli: {self.stimuli} ({self.stimuli_done_before} already complete{changed}), "
                 f"scans: {len(self.scans)}",
                 f"  frames: {self.frames} decoded, {self.frame_scans} frame x scan computed, "
                 f"files written: {self.files_written} ({self.bytes_written / 1e6:.1f} MB)",
                 f"  wall time: {self.wall_s:.1f} s, {speed}",
                 *([f"  encoder nodes: {self._nodes_line()}"] if self.part_nodes else []),
                 f"  errors: {len(self.errors)}" + (f" (listed in {layout.ERRORS_FILE})" if self.errors else "")]
        lines += [f"    {printable_name(e['stimulus_id'])}: {printable_name(e['error'])}" for e in self.errors[:10]]
        return "\n".join(lines)


def run(args: SweepArgs | None = None, **options) -> SweepResult:
    """Run a sweep (see the package docstring); options are the fields of :class:`SweepArgs`.

    Returns:
        The :class:`SweepResult`; ``result.ok`` is False if any input failed (listed in ``_errors/``). Nothing is
        printed (``show_progress`` shows progress bars only); ``print(result.summary())`` for the summary.

    Raises:
        BergRayError: invalid options, unreachable or unwritable storage, a release without the scans, an output
            written with other content options or being written by another sweep, a damaged output file,
            inputs to compute whose headers all declare another frame size than 144x256 (without ``resize``), or
            a micro-batch larger than any node's memory. Nothing is computed in these cases.
    """
    if args is not None and options:
        raise BergRayError("pass either a SweepArgs or keyword options to berg_ray.sweep.run, not both")
    start = time.perf_counter()
    args, scans = check_options(options) if args is None else (args, resolve_scans(args))
    check_metrics_export_port(args.metrics_export_port, args.address)
    in_store, out_store = _open_stores(args)
    fresh = not out_store.root_exists()  # (check_writable removes what its probe created)
    listing = list_stimuli(in_store)  # pre-flight: an empty input is refused before the output is touched
    if not listing.stimuli and not listing.errors:
        raise StorageError(f"no input videos under {in_store.uri} ({listing.ignored} other files); expected "
                           f".npy/.npz/.mp4/.avi/.mov/.mkv files: check --input")
    try:
        with acquire_lease(out_store, args.lease_ttl_s) as lease:  # one sweep per output: refused before compute
            out_store.remove_staging()  # left by killed runs: while we hold the lease no other sweep writes here
            result = _sweep(args, scans, in_store, out_store, listing)
            lease.check()
    except BergRayError:
        if fresh:  # a refused run leaves no lock file or empty staging area behind in an output it created
            out_store.remove_if_unused()
        raise
    result.wall_s = time.perf_counter() - start
    return result


def _sweep(args: SweepArgs, scans: list[str], in_store: Store, out_store: Store, listing: Listing) -> SweepResult:
    """Steps 3-6 of the module docstring, under the output's lease."""
    content = layout.content_options(args.reduce, args.skip_frames, args.precision)
    needs_manifest = layout.check_manifest(out_store, content)
    done, changed = _done_set(out_store, listing.stimuli)
    shards = plan_shards(listing.stimuli, scans, done, args.batch_size)
    wrong = {} if args.resize else wrong_sized(in_store, [s for shard in shards for s in shard.stimuli])
    if wrong and len(wrong) == sum(len(shard.stimuli) for shard in shards):
        raise refuse_all(wrong)  # before Ray starts and before anything is written
    if wrong:  # listed as errors, never sent to Ray; the micro-batches of the others keep their names
        shards = plan_shards(listing.stimuli, scans, {scan: done.get(scan, set()) | set(wrong) for scan in scans},
                             args.batch_size)
    errors = list(listing.errors) + [layout.input_error(in_store, s.stimulus_id, s.name, wrong[s.stimulus_id])
                                     for s in listing.stimuli if s.stimulus_id in wrong]
    result = SweepResult(out_store.uri, scans, stimuli=len(listing.stimuli), errors=errors,
                         stimuli_done_before=sum(all(s.stimulus_id in done.get(c, ()) for c in scans)
                                                 for s in listing.stimuli), inputs_changed=len(changed))
    with _encoder_pool(args, len(shards)) as pool:  # Ray, the device and the first actors' resources: or no write
        _write_units(resolve_berg_dir(args.berg_dir, release_s3(args)), scans, out_store)
        if needs_manifest:
            layout.write_manifest(out_store, content)
        if pool is not None:
            _execute(args, pool, shards, scans, in_store, out_store, content, result)
    layout.write_table(out_store, layout.ERRORS_FILE, layout.errors_table(result.errors), layout.ERRORS_SCHEMA)
    return result


@contextlib.contextmanager
def _encoder_pool(args: SweepArgs, n_shards: int) -> Iterator[tuple[Workers, str] | None]:
    """Ray for the block (berg_ray.cluster.local) with the encoder pool planned (scaling.plan_encoders); None and no
    Ray when there is nothing to compute."""
    if not n_shards:
        yield None
        return
    from berg_ray.cluster.local import ray_session

    with ray_session(args.address, verbose=args.verbose,  # a local cluster ends with the run, even if killed
                     metrics_export_port=args.metrics_export_port):
        yield plan_encoders(args, n_shards, StatusLine(enabled=args.show_progress))


def _done_set(out_store: Store, stimuli: tuple[Stimulus, ...]) -> tuple[dict[str, set[str]], set[str]]:
    """(stimulus ids written per scan, ids whose input changed since). Part files holding a row of a changed
    input are deleted first (before any compute, under the lease), so their stimuli are recomputed and no
    (stimulus, scan) row is ever present twice; a run killed in between recomputes them next time."""
    parts = [info.name for info in out_store.list_files(recursive=False) if layout.is_part_name(info.name)]
    footers = layout.read_footers(out_store, parts)
    stale = changed_parts(stimuli, footers)
    for name in stale:
        out_store.delete(name)
    return layout.done_set(f for name, f in footers.items() if name not in stale), set().union(*stale.values())


def _open_stores(args: SweepArgs) -> tuple[Store, Store]:
    """Open and check both locations: fails fast (StorageError) on bad credentials, buckets or endpoints."""
    in_store = open_store(args.input, resolve_s3_options(args.s3_endpoint_url, anonymous=args.anonymous),
                          follow_symlinks=args.follow_symlinks)
    out_store = open_store(args.output, resolve_s3_options(args.s3_endpoint_url))
    in_store.check_readable()
    out_store.check_writable()
    return in_store, out_store


def _write_units(berg_dir: str, scans: list[str], store: Store) -> None:
    from berg_ray.checkpoint.release import read_scan_units

    for scan in scans:
        units = read_scan_units(berg_dir, scan)
        layout.write_table(store, layout.units_name(scan), layout.units_table(units), layout.UNITS_SCHEMA,
                           layout.units_footer(units))


def _execute(args: SweepArgs, pool: tuple[Workers, str], shards: list[Shard], scans: list[str], in_store: Store,
             out_store: Store, content: dict, result: SweepResult) -> None:
    """Build the dataset and stream its summary rows into ``result`` (Ray Data and tqdm show progress)."""
    from ray.data import DataContext
    from tqdm import tqdm

    from berg_ray.cluster.session import quiet_ray_loggers

    quiet_ray_loggers(args.verbose)  # importing ray.data (after Ray started) gave it console handlers of its own
    record_sweep_failures(result.output, len(result.errors))  # the listing's; the actors count decode errors
    dataset = build_dataset(args, pool, shards, scans, in_store, out_store, content)
    context = DataContext.get_current()
    previous = context.enable_progress_bars, context.wait_for_min_actors_s
    context.enable_progress_bars = args.show_progress
    context.wait_for_min_actors_s = int(args.resource_wait_s)  # nodes lost after the wait: bounded, not a hang
    try:
        per_scan = len(scans) > 1  # one video is encoded once per scan
        with tqdm(total=sum(len(ids) for s in shards for _, ids in s.todo), desc="sweep",
                  unit=" video x scan" if per_scan else " video", disable=not args.show_progress) as bar:
            for row in dataset.iter_rows():
                _add_row(result, row)
                failed = len(json.loads(row["errors"]))  # inputs that could not be read are done too
                bar.update(int(row["n_stimuli"]) if row["scan"] else failed * len(scans))
                bar.set_postfix_str(f"{result.frame_scans:,} frames", refresh=False)
    finally:
        context.enable_progress_bars, context.wait_for_min_actors_s = previous


def _add_row(result: SweepResult, row: dict) -> None:
    result.errors.extend(json.loads(row["errors"]))
    if row["scan"]:
        result.files_written += 1
        result.part_nodes[str(row["file"])] = str(row["node"])
        result.frame_scans += int(row["n_frames"])
        result.frames += int(row["decoded_frames"])
        result.bytes_written += int(row["n_bytes"])
        result.encode_s += float(row["encode_s"])
        result.write_s += float(row["write_s"])


def build_dataset(args: SweepArgs, pool: tuple[Workers, str], shards: list[Shard], scans: list[str],
                  in_store: Store, out_store: Store, content: dict):
    """The (unstarted) Ray Data pipeline of a sweep: one row per micro-batch in, one row per file out, encoded by
    ``pool`` (the actors and the torch device they load the model on; scaling.plan_encoders)."""
    import ray

    from berg_ray.sweep.pipeline import ShardEncoder, decode_shards

    workers, device = pool
    dataset = ray.data.from_items([{"shard": s.to_json()} for s in shards], override_num_blocks=len(shards))
    dataset = dataset.map_batches(decode_shards, batch_size=1, num_cpus=SWEEP_DECODE_NUM_CPUS,
                                  runtime_env=threads.runtime_env(),
                                  fn_kwargs={"store": in_store, "resize": args.resize,
                                             "skip_frames": args.skip_frames, "max_frames": args.max_frames})
    strategy = ray.data.ActorPoolStrategy(min_size=workers.min_count, max_size=workers.max_count)
    return dataset.map_batches(ShardEncoder, batch_size=1, compute=strategy, **workers.actor_options(),
                               runtime_env=threads.runtime_env(), fn_constructor_kwargs={
                                   "berg_dir": args.berg_dir, "s3": release_s3(args), "scans": scans,
                                   "store": out_store, "options": content, "chunk_frames": args.chunk_frames,
                                   "num_cpus": workers.num_cpus, "device": device, "kernels": args.kernels})
