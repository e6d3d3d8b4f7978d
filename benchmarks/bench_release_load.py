"""Cost of the integrity checks when a release is loaded: sha256 (manifest), zip CRC-32s and the finite check.

Writes a generated release with the released unit count of one scan (session-8_scan-5: 9,941 units, the largest;
params_core.pt has the size of the real one), then times ``load_model`` with and without the manifest and each
check alone on the same bytes. Medians of ``--repeats`` runs.

    python benchmarks/bench_release_load.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from berg_ray.checkpoint.demo import write_demo_release
from berg_ray.checkpoint.manifest import digest_bytes
from berg_ray.checkpoint.release import load_model, weights_dir
from berg_ray.config import MANIFEST_FILE, RELEASE_SUBDIR

SCAN = "session-8_scan-5"


def _median_s(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        berg_dir = write_demo_release(Path(tmp), [SCAN], n_units=None)
        files = [weights_dir(berg_dir) / name for name in ("params_core.pt", "params_8_5.pt")]
        data = [path.read_bytes() for path in files]
        states = [torch.load(io.BytesIO(d), weights_only=True) for d in data]
        print("files: " + ", ".join(f"{p.name} {len(d) / 1e6:.1f} MB" for p, d in zip(files, data)))
        rows = {
            "sha256 (manifest)": lambda: [digest_bytes(d) for d in data],
            "zip CRC-32 check": lambda: [zipfile.ZipFile(io.BytesIO(d)).testzip() for d in data],
            "finite check": lambda: [bool(torch.isfinite(t).all()) for s in states for t in s.values()
                                     if t.is_floating_point()],
            "load_model, manifest": lambda: load_model(berg_dir, [SCAN]),
        }
        results = {name: _median_s(action, args.repeats) for name, action in rows.items()}
        (berg_dir / RELEASE_SUBDIR / MANIFEST_FILE).unlink()
        results["load_model, no manifest"] = _median_s(lambda: load_model(berg_dir, [SCAN]), args.repeats)
    for name, seconds in results.items():
        print(f"{name:26s} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
