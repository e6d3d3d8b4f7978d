"""Shared fixtures: the reference fixture (golden outputs), a generated demo release, one local Ray cluster, a real
S3 server (tests/s3_server.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.s3_server import s3_env, s3_server  # noqa: F401 - fixtures for every test directory

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures" / "wang2025-reference"
FIXTURE_SCANS = ("session-8_scan-5", "session-4_scan-7")


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """tests/fixtures/wang2025-reference (golden outputs of the reference implementation, see its README)."""
    return FIXTURE_DIR


@pytest.fixture(scope="session")
def fixture_berg_dir(fixture_dir: Path) -> Path:
    """The fixture's berg_dir (release format, random weights, scans 8/5 with 320 units and 4/7 with 96)."""
    return fixture_dir / "berg"


@pytest.fixture(scope="session")
def fixture_stimuli(fixture_dir: Path) -> np.ndarray:
    """uint8 [3 videos, 36 frames, 144, 256]."""
    return np.load(fixture_dir / "stimuli.npy")


@pytest.fixture(scope="session")
def fixture_expected(fixture_dir: Path) -> dict[str, np.ndarray]:
    """Reference responses per scan id: float32 [3, 36, U]."""
    return {sid: np.load(fixture_dir / "expected" / f"{sid}.npy") for sid in FIXTURE_SCANS}


@pytest.fixture(scope="session")
def demo_berg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated release with two scans (session-8_scan-5, session-4_scan-7) of 64 units each."""
    from berg_ray.checkpoint.demo import write_demo_release

    return write_demo_release(tmp_path_factory.mktemp("demo_release"), ["session-8_scan-5", "session-4_scan-7"],
                              n_units=64, seed=3)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole test session (Serve and Data tests share it)."""
    import ray

    ray.init(num_cpus=4, include_dashboard=False, ignore_reinit_error=True)
    yield ray
    try:
        from ray import serve

        serve.shutdown()
    except Exception:  # Serve may never have been started
        pass
    ray.shutdown()


CLUSTER_FIXTURES = {"ray_cluster", "s3_server"}  # a test that needs either is end to end (`slow`)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `slow` every test whose fixtures (directly or through others) start the shared Ray cluster or the S3
    server, so `scripts/test.sh --quick` (``-m "not slow"``) runs the unit tests alone."""
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
