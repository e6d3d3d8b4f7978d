"""Make the golden outputs of the reference with behaviour inputs (tests/fixtures/wang2025-reference/behaviour/).

    git -C FNN_CLONE archive c34328c fnn | tar -x -C /tmp/fnn-ref     # cajal/fnn (MIT) at c34328c
    python scripts/make_behaviour_goldens.py --reference /tmp/fnn-ref

The reference (cajal/fnn c34328c) is not part of this repository and no berg_ray module is imported here: the
weights, stimuli and layout are the fixture's own (tests/fixtures/wang2025-reference, see its README). For each
scan, seeded behaviour traces (standardised units: smooth random walks of unit spread, like z-scored pupil and
treadmill traces) are drawn for the fixture's 3 videos x 36 frames, and the reference's documented API,
``fnn.microns.scan(session, scan_idx, cuda=False, directory=...)`` + ``Visual.predict``, is run on CPU in float32,
eval mode, fresh state per call:

* ``perspectives``: video 0 with its perspectives only;
* ``modulations``: video 1 with its modulations only;
* ``both``: video 2 with both;
* ``batch``: all 3 videos as one batch (predict's batch form: stimuli T x [N, H, W, 1], behaviour T x [N, 2]),
  each with both inputs, except video 1, whose perspectives are zero (a batch that mixes moved and default eyes).

Writes ``behaviour/{scan}.npz`` with members ``perspectives`` and ``modulations`` (float32 [3, 36, 2], the inputs
per video) and ``perspectives``/``modulations``/``both`` (float32 [36, U]) and ``batch`` (float32 [3, 36, U]).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "wang2025-reference"
WEIGHTS = FIXTURE / "berg/encoding_models/modality-calcium_2p/train_dataset-wang_2025/model-3DCNN/encoding_models_weights"
SCANS = ((8, 5), (4, 7))
SEED = 17


def behaviour_traces(rng: np.random.Generator, videos: int, frames: int) -> np.ndarray:
    """(videos, frames, 2) float32 smooth traces with unit spread: a random walk, z-scored per video."""
    walk = np.cumsum(rng.normal(size=(videos, frames, 2)), axis=1)
    walk = (walk - walk.mean(axis=1, keepdims=True)) / walk.std(axis=1, keepdims=True)
    return walk.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path, help="directory holding the reference's fnn package")
    parser.add_argument("--out", type=Path, default=FIXTURE / "behaviour")
    args = parser.parse_args()
    sys.path.insert(0, str(args.reference))
    import fnn.microns
    import torch

    torch.set_grad_enabled(False)
    stimuli = np.load(FIXTURE / "stimuli.npy")  # (3, 36, 144, 256) uint8
    videos, frames = stimuli.shape[:2]
    rng = np.random.default_rng(SEED)
    perspectives, modulations = behaviour_traces(rng, videos, frames), behaviour_traces(rng, videos, frames)
    batch_perspectives = perspectives.copy()
    batch_perspectives[1] = 0
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"seed": SEED, "reference": "cajal/fnn c34328c", "scans": {}}
    for session, scan_idx in SCANS:
        model, _ = fnn.microns.scan(session, scan_idx, cuda=False, directory=str(WEIGHTS))
        model.eval()
        runs = {
            "perspectives": model.predict(stimuli=stimuli[0], perspectives=perspectives[0]),
            "modulations": model.predict(stimuli=stimuli[1], modulations=modulations[1]),
            "both": model.predict(stimuli=stimuli[2], perspectives=perspectives[2], modulations=modulations[2]),
            "batch": model.predict(stimuli=stimuli.transpose(1, 0, 2, 3)[..., None],
                                   perspectives=batch_perspectives.transpose(1, 0, 2),
                                   modulations=modulations.transpose(1, 0, 2)).transpose(1, 0, 2),
        }
        plain = [model.predict(stimuli=video) for video in stimuli]
        runs = {name: np.asarray(value, dtype=np.float32) for name, value in runs.items()}
        scan = f"session-{session}_scan-{scan_idx}"
        np.savez(args.out / f"{scan}.npz", perspectives=perspectives, modulations=modulations,
                 batch_perspectives=batch_perspectives, **{f"expected_{k}": v for k, v in runs.items()})
        effect = {name: float(np.max(np.abs(np.log(value) - np.log(plain[i] if value.ndim == 2 else np.stack(plain)))))
                  for i, (name, value) in enumerate(runs.items())}
        summary["scans"][scan] = {"units": int(runs["both"].shape[-1]), "max_abs_log_change_vs_no_behaviour": effect}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
