"""A disk that fills up while recording: a clean stop, every ended episode kept, recovery after.

The dataset lives on a small tmpfs; once a few episodes are saved, a ballast file fills it to
the last byte, as another program would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST, assert_valid

QUEUED = re.compile(r"Queued episode (\d+) \(queue_pos=\d+, frames=(\d+)")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test: {mounted.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    chunk = b"\0" * 2**20
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_disk_full_stops_cleanly_keeps_everything_and_recovers(small_disk: Path) -> None:
    root = small_disk / "ds"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "operating_platform.core.main",
            *FAST,
            "--record.repo_id=lab/full",
            f"--record.root={root}",
            "--robot.camera_width=320",
            "--robot.camera_height=240",
            "--record.num_episodes=500",
            "--record.episode_time_s=0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "Queued episode 3 " in line:
            break
    ballast = small_disk / "ballast"
    _fill(ballast)
    out, err = proc.communicate(timeout=120)
    out = "".join(seen) + out
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err and "Traceback" not in out
    errors = [line for line in err.splitlines() if line.strip()]
    assert errors and all(line.startswith("error: ") for line in errors), err
    assert "full" in errors[0] and "dorobot recover" in err

    # Whatever was committed is intact, and every episode whose save was announced is either
    # committed or waiting whole in its journal.
    assert_valid(root)
    queued = {int(i): int(f) for i, f in QUEUED.findall(out)}
    info = json.loads((root / "meta/info.json").read_text())
    journals = [p for p in (root / ".dorobot/journal").iterdir() if (p / "closed.json").exists()]
    assert info["total_episodes"] + len(journals) >= len(queued)

    ballast.unlink()  # the operator frees space
    rec = subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "recover", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert_valid(root)
    lengths = [json.loads(line)["length"] for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
    assert len(lengths) >= len(queued)
    assert [lengths[i] for i in sorted(queued)] == [queued[i] for i in sorted(queued)]


def test_not_enough_room_for_an_episode_refuses_to_start(small_disk: Path) -> None:
    root = small_disk / "ds"
    # 60 s of two 640x480 cameras needs over 3 GB of journal: far more than this disk.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "operating_platform.core.main",
            *FAST,
            "--record.repo_id=lab/full",
            f"--record.root={root}",
            "--robot.camera_width=640",
            "--robot.camera_height=480",
            "--record.num_episodes=1",
            "--record.episode_time_s=60",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "almost full" in errors[0] and "MB free" in errors[0], proc.stderr
    assert_valid(root, episodes=0)
