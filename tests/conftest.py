"""Shared helpers: run the real program as a subprocess and check datasets with the verifier."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from operating_platform.dataset.verify import verify_dataset

# Written by LeRobot itself (0.3.3 and 0.4.4): 2 episodes of 20 frames, one 64x48 camera.
REFERENCE = Path(__file__).resolve().parent / "reference" / "lerobot-0.3.3-v2.1-sample"
REFERENCE_V3 = Path(__file__).resolve().parent / "reference" / "lerobot-0.4.4-v3.0-sample"
PLUGINS_DIR = Path(__file__).resolve().parent / "plugins"

# Small, fast sessions: the tests check behaviour, not throughput.
FAST = [
    "--robot.type=sim",
    "--robot.camera_width=160",
    "--robot.camera_height=120",
    "--record.single_task=Pick the cube",
    "--record.reset_time_s=0",
]


def run_record(
    *flags: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `python -m operating_platform.core.main` with `flags`; returns the finished process."""
    full_env = {**os.environ, "PYTHONPATH": str(PLUGINS_DIR), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "operating_platform.core.main", *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def assert_valid(root: Path, episodes: int | None = None) -> None:
    report = verify_dataset(root)
    assert report.ok, "\n".join(report.problems)
    if episodes is not None:
        assert report.episodes == episodes


@pytest.fixture(scope="session")
def reference_root() -> Path:
    return REFERENCE
