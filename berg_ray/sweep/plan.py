"""Plan a sweep: list the inputs, subtract what the output already holds, cut the rest into micro-batches.

A micro-batch ("shard") is up to ``batch_size`` stimuli plus the scans still missing for all of them. Stimuli are
grouped by their set of missing scans (normally every stimulus misses every scan, or none) and taken in sorted
order, so a plan is a pure function of the input listing, the output's done set and the options.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from berg_ray.sweep.video import SUPPORTED_SUFFIXES
from berg_ray.storage import Store


@dataclass(frozen=True)
class Stimulus:
    """One input file: ``stimulus_id`` is its name relative to the input prefix, without the suffix."""

    stimulus_id: str
    name: str
    size: int


@dataclass(frozen=True)
class Shard:
    """One micro-batch: stimuli read and decoded together, then encoded for each of ``scans``."""

    stimuli: tuple[Stimulus, ...]
    scans: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"stimuli": [[s.stimulus_id, s.name, s.size] for s in self.stimuli],
                           "scans": list(self.scans)})

    @classmethod
    def from_json(cls, text: str) -> "Shard":
        data = json.loads(text)
        return cls(tuple(Stimulus(*item) for item in data["stimuli"]), tuple(data["scans"]))


@dataclass(frozen=True)
class Listing:
    """The inputs of a sweep: valid stimuli (sorted by id), rejected ones and the number of ignored files."""

    stimuli: tuple[Stimulus, ...]
    errors: tuple[dict, ...]
    ignored: int


def list_stimuli(store: Store) -> Listing:
    """Every supported file under the input prefix; two files with one stimulus_id are both rejected."""
    by_id: dict[str, list[Stimulus]] = {}
    ignored = 0
    for info in store.list_files(recursive=True):
        path = PurePosixPath(info.name)
        if path.suffix.lower() not in SUPPORTED_SUFFIXES or any(p.startswith((".", "_")) for p in path.parts):
            ignored += 1
            continue
        stimulus_id = str(path.with_suffix(""))
        by_id.setdefault(stimulus_id, []).append(Stimulus(stimulus_id, info.name, info.size))
    stimuli, errors = [], []
    for stimulus_id in sorted(by_id):
        found = by_id[stimulus_id]
        if len(found) == 1:
            stimuli.append(found[0])
            continue
        names = ", ".join(s.name for s in found)
        errors.extend({"stimulus_id": stimulus_id, "input": store.uri_of(s.name),
                       "error": f"stimulus_id {stimulus_id!r} is ambiguous ({names}); keep one file per id"}
                      for s in found)
    return Listing(tuple(stimuli), tuple(errors), ignored)


def plan_shards(stimuli: Sequence[Stimulus], scans: Sequence[str], done: Mapping[str, set[str]],
                batch_size: int) -> list[Shard]:
    """Micro-batches covering every (stimulus, scan) pair not in ``done`` exactly once.

    Args:
        stimuli: valid inputs, sorted by stimulus_id.
        scans: canonical scan ids requested.
        done: stimulus ids already written, per scan.
        batch_size: most stimuli per micro-batch.
    """
    groups: dict[tuple[str, ...], list[Stimulus]] = {}
    for stimulus in stimuli:
        missing = tuple(scan for scan in scans if stimulus.stimulus_id not in done.get(scan, ()))
        if missing:
            groups.setdefault(missing, []).append(stimulus)
    shards = []
    for missing in sorted(groups, key=lambda m: (-len(m), m)):
        members = groups[missing]
        shards.extend(Shard(tuple(members[i:i + batch_size]), missing) for i in range(0, len(members), batch_size))
    return shards
