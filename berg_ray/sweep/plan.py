"""Plan a sweep: list the inputs, subtract what the output already holds, cut the rest into micro-batches.

A micro-batch ("shard") is up to ``batch_size`` consecutive stimuli of the sorted corpus plus, per scan, those
of them still missing in the output. A plan is a pure function of the input listing, the done set and the
options.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from berg_ray.errors import BergRayError, InputLinkError, InputNameError
from berg_ray.validation.names import is_utf8
from berg_ray.sweep.layout import input_error
from berg_ray.sweep.video import SUPPORTED_SUFFIXES
from berg_ray.storage import Store


@dataclass(frozen=True)
class Stimulus:
    """One input file: ``stimulus_id`` is its name relative to the input prefix, without the suffix; ``size``
    (bytes) and ``version`` (S3 ETag, local mtime in ns) identify its content."""

    stimulus_id: str
    name: str
    size: int
    version: str = ""

    @property
    def input_key(self) -> list:
        """What a part file's footer records per row, to detect a changed input later."""
        return [self.size, self.version]


@dataclass(frozen=True)
class Shard:
    """One micro-batch: stimuli read and decoded together, then encoded for each scan of ``todo``.

    ``todo`` maps each scan to the stimulus ids still missing for it (normally all of ``stimuli``).
    """

    stimuli: tuple[Stimulus, ...]
    todo: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def n_files(self) -> int:
        return len(self.todo)

    def to_json(self) -> str:
        return json.dumps({"stimuli": [[s.stimulus_id, s.name, s.size, s.version] for s in self.stimuli],
                           "todo": [[scan, list(ids)] for scan, ids in self.todo]})

    @classmethod
    def from_json(cls, text: str) -> "Shard":
        data = json.loads(text)
        return cls(tuple(Stimulus(*item) for item in data["stimuli"]),
                   tuple((scan, tuple(ids)) for scan, ids in data["todo"]))


@dataclass(frozen=True)
class Listing:
    """The inputs of a sweep: valid stimuli (sorted by id), rejected ones and the number of ignored files."""

    stimuli: tuple[Stimulus, ...]
    errors: tuple[dict, ...]
    ignored: int


def list_stimuli(store: Store) -> Listing:
    """Every supported file under the input prefix, and the inputs that are errors before being read.

    Names starting with "." or "_" (at any level) are ignored. Errors: a name that is not valid UTF-8
    (``InputNameError``: a stimulus id must be text; the file is never read), a symbolic link that is dangling
    or leads outside the input without ``follow_symlinks`` (``InputLinkError``, whatever its suffix), and two
    files with one stimulus_id (both ``AmbiguousInput``).
    """
    files, links = store.list_inputs()
    by_id: dict[str, list[Stimulus]] = {}
    ignored = 0
    errors = [input_error(store, _stimulus_id(link.name), link.name, InputLinkError(f"{link.name}: {link.reason}"))
              for link in links if not _is_ignored(link.name)]
    for info in files:
        path = PurePosixPath(info.name)
        if path.suffix.lower() not in SUPPORTED_SUFFIXES or _is_ignored(info.name):
            ignored += 1
        elif not is_utf8(info.name):
            errors.append(input_error(store, _stimulus_id(info.name), info.name, InputNameError(
                f"{info.name}: the file name is not valid UTF-8 (shown with its undecodable bytes as \\xNN); "
                f"rename it to UTF-8 (e.g. with convmv -f latin1 -t utf8)")))
        else:
            by_id.setdefault(_stimulus_id(info.name), []).append(
                Stimulus(_stimulus_id(info.name), info.name, info.size, info.version))
    stimuli = []
    for stimulus_id in sorted(by_id):
        found = by_id[stimulus_id]
        if len(found) == 1:
            stimuli.append(found[0])
            continue
        names = ", ".join(s.name for s in found)
        problem = BergRayError(f"stimulus_id {stimulus_id!r} is ambiguous ({names}); keep one file per id")
        errors.extend(input_error(store, stimulus_id, s.name, problem, "AmbiguousInput") for s in found)
    return Listing(tuple(stimuli), tuple(sorted(errors, key=lambda e: e["stimulus_id"])), ignored)


def _stimulus_id(name: str) -> str:
    return str(PurePosixPath(name).with_suffix(""))


def _is_ignored(name: str) -> bool:
    return any(part.startswith((".", "_")) for part in PurePosixPath(name).parts)


def plan_shards(stimuli: Sequence[Stimulus], scans: Sequence[str], done: Mapping[str, set[str]],
                batch_size: int) -> list[Shard]:
    """Micro-batches covering every (stimulus, scan) pair not in ``done`` exactly once.

    Micro-batches are cut from the whole sorted corpus, whatever is done, so for an unchanged corpus and batch
    size a micro-batch and its file names are the same in every run: a retried, resumed or late (killed-run)
    writer publishes the same name with the same rows instead of a second copy.

    Args:
        stimuli: valid inputs, sorted by stimulus_id.
        scans: canonical scan ids requested.
        done: stimulus ids already written, per scan.
        batch_size: most stimuli per micro-batch.
    """
    shards = []
    for start in range(0, len(stimuli), batch_size):
        members = stimuli[start:start + batch_size]
        todo = tuple((scan, ids) for scan in scans
                     if (ids := tuple(s.stimulus_id for s in members if s.stimulus_id not in done.get(scan, ()))))
        if todo:
            needed = {stimulus_id for _, ids in todo for stimulus_id in ids}
            shards.append(Shard(tuple(s for s in members if s.stimulus_id in needed), todo))
    return shards


def changed_parts(stimuli: Sequence[Stimulus], footers: Mapping[str, dict]) -> dict[str, set[str]]:
    """Part files holding a row computed from an input that changed since: file name -> changed stimulus ids.

    A row's input counts as changed when the listed file's [size, version] differs from the one recorded in the
    footer. Files written before inputs were recorded (no ``inputs`` key) and rows of inputs no longer listed
    are kept as they are.
    """
    current = {s.stimulus_id: s.input_key for s in stimuli}
    stale = {}
    for name, footer in footers.items():
        changed = {stimulus_id for stimulus_id, key in (footer.get("inputs") or {}).items()
                   if stimulus_id in current and list(key) != current[stimulus_id]}
        if changed:
            stale[name] = changed
    return stale
