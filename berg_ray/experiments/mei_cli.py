"""``berg-ray experiment mei``: flags -> MeiSettings and a unit choice -> berg_ray.experiments.mei; a summary."""

from __future__ import annotations

import argparse

from berg_ray.config import (MEI_BURN_IN_FRAMES, MEI_CLIP, MEI_FRAMES, MEI_INIT_GAIN, MEI_LR, MEI_PENALTY, MEI_SEED,
                             MEI_SPATIAL_STD_PX, MEI_STEPS, MEI_TEMPORAL_STD_FRAMES, MEI_UNITS_PER_BATCH,
                             MEI_VALIDATION_DIRECTIONS, MEI_VALIDATION_REPEATS)
from berg_ray.errors import BergRayError
from berg_ray.validation.numbers import float_flag, int_flag

MAX_UNITS_PER_BATCH = 1024
MAX_VALIDATION = 360


def add_mei_command(kinds: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``experiment mei`` to the experiment subcommands ``kinds``."""
    from berg_ray.experiments.cli import _common

    mei = kinds.add_parser("mei", help="most exciting inputs: per unit the video that drives it most, validated",
                           description="Optimise each chosen unit's most exciting input (MEI) through the model's "
                                       "gradients (units batched, batches over Ray actors, resumable per unit), "
                                       "validate it through the ordinary inference path against drifting gratings, "
                                       "directional noise and the other units' MEIs, and write the MEIs (uint8 "
                                       ".npy), per-scan Parquet tables and figures under <out>/mei/.")
    _common(mei, MEI_BURN_IN_FRAMES, "leading frames of every MEI left out of the objective and the validation rates")
    mei.add_argument("--units", required=True, metavar="UNITS",
                     help="all | top:N (the N units the model predicts best, cc_norm) | readout indices, e.g. "
                          "0,5,10-19")
    mei.add_argument("--frames", type=int_flag, default=MEI_FRAMES, help="frames of every MEI (30 Hz), burn-in "
                                                                         "included")
    mei.add_argument("--steps", type=int_flag, default=MEI_STEPS, help="gradient steps per MEI")
    kind = mei.add_mutually_exclusive_group()
    kind.add_argument("--static", dest="dynamic", action="store_false", default=False,
                      help="one image held for all frames (the default)")
    kind.add_argument("--dynamic", dest="dynamic", action="store_true", help="a video whose frames differ")
    mei.add_argument("--seed", type=int_flag, default=MEI_SEED, help="seed of the starting images (same seed, same "
                                                                     "MEI bytes)")
    mei.add_argument("--units-per-batch", type=int_flag, default=MEI_UNITS_PER_BATCH,
                     help="units optimised together, one video each (memory grows with it)")
    _add_optimiser_flags(mei)
    mei.set_defaults(func=run_mei_command)
    return mei


def _add_optimiser_flags(mei: argparse.ArgumentParser) -> None:
    """The optimisation's hyper-parameters and the validation sets' size."""
    mei.add_argument("--lr", type=float_flag, default=MEI_LR, help="learning rate (cosine schedule)")
    mei.add_argument("--clip", type=float_flag, default=MEI_CLIP,
                     help="adaptive clipping: a step moves a parameter by at most lr x clip of its norm")
    mei.add_argument("--penalty", type=float_flag, default=MEI_PENALTY,
                     help="weight of the blur penalty (energy a Gaussian blur removes, per frame)")
    mei.add_argument("--spatial-std", type=float_flag, default=MEI_SPATIAL_STD_PX, help="penalty blur, pixels")
    mei.add_argument("--temporal-std", type=float_flag, default=MEI_TEMPORAL_STD_FRAMES,
                     help="penalty blur of dynamic MEIs, frames")
    mei.add_argument("--init-gain", type=float_flag, default=MEI_INIT_GAIN, help="starting contrast gain")
    mei.add_argument("--directions", type=int_flag, default=MEI_VALIDATION_DIRECTIONS,
                     help="directions of the grating and noise validation sets")
    mei.add_argument("--repeats", type=int_flag, default=MEI_VALIDATION_REPEATS,
                     help="grating phases / noise seeds per direction of the validation sets")


def run_mei_command(ns: argparse.Namespace) -> int:
    """Handler of ``berg-ray experiment mei``: every flag and the units are checked before anything runs."""
    from berg_ray.experiments.cli import _cluster, _sweep_options, preflight
    from berg_ray.experiments.mei import run_mei_experiment
    from berg_ray.experiments.outputs import join_uri
    from berg_ray.experiments.unit_choice import parse_unit_choice

    checked: dict = {}

    def check() -> None:
        checked["choice"] = parse_unit_choice(ns.units)
        checked["settings"] = _settings(ns)
        _bounded(ns.units_per_batch, "--units-per-batch", MAX_UNITS_PER_BATCH)
        _bounded(ns.directions, "--directions", MAX_VALIDATION)
        _bounded(ns.repeats, "--repeats", MAX_VALIDATION)

    sessions = preflight(ns, "mei", check)
    _check_units(ns, sessions, checked["choice"])
    with _cluster(ns):
        tables = run_mei_experiment(ns.berg_dir, ns.out, sessions, checked["choice"], checked["settings"],
                                    ns.units_per_batch, (ns.directions, ns.repeats), ns.address, not ns.quiet,
                                    ns.s3_endpoint_url, _sweep_options(ns), announce=_say)
    summary = tables["summary"]
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    where = join_uri(ns.out, "mei")
    print(f"MEIs: {where}/<scan>/readout-<id>.npy; per-unit tables and figures: {where}/<scan>.parquet|.png; "
          f"summary: {where}/summary.parquet")
    return 0


def _settings(ns: argparse.Namespace):
    from berg_ray.mei import MeiSettings

    return MeiSettings(frames=ns.frames, burn_in=ns.burn_in_frames, steps=ns.steps, static=not ns.dynamic, lr=ns.lr,
                       clip=ns.clip, penalty=ns.penalty, spatial_std=ns.spatial_std, temporal_std=ns.temporal_std,
                       init_gain=ns.init_gain, seed=ns.seed)


def _bounded(value: int, flag: str, most: int) -> None:
    if not 1 <= value <= most:
        raise BergRayError(f"{flag} {value} must be from 1 to {most}")


def _check_units(ns: argparse.Namespace, sessions: list[str], choice) -> None:
    """Resolve --units against every scan (an index out of range is refused before anything is written)."""
    from berg_ray.checkpoint.release import read_scan_units
    from berg_ray.cli.options import release_dir
    from berg_ray.experiments.unit_choice import choose_units

    release = release_dir(ns)
    for scan in sessions:
        choose_units(choice, read_scan_units(release, scan))


def _say(line: str) -> None:
    print(line, flush=True)
