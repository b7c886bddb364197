"""A disk that fills up while recording: a clean stop, every ended episode kept, recovery after.

The dataset lives on a small tmpfs; once a few episodes are saved, a ballast file fills it to
the last byte, as another program would.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from operating_platform.dataset.dorobot_dataset import DoRobotDataset
from operating_platform.dataset.encode import encode_episode
from operating_platform.dataset.journal_store import staging_dir
from operating_platform.dataset.publish import commit_episode
from operating_platform.dataset.verify import verify_dataset
from operating_platform.robots import SimRobotConfig, make_robot
from tests.conftest import (
    FAST,
    assert_valid,
    episode_lengths,
    error_lines,
    queued_episodes,
    run_record,
    run_recover,
    start_record,
    wait_for_line,
)


def _fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as f:
        for chunk in (b"\0" * 2**20, b"\0" * 4096):  # megabytes, then the last pages
            try:
                while True:
                    f.write(chunk)
            except OSError:
                pass


def test_disk_full_stops_cleanly_keeps_everything_and_recovers(small_disk: Path) -> None:
    root = small_disk / "ds"
    proc = start_record(
        *FAST,
        "--record.repo_id=lab/full",
        f"--record.root={root}",
        "--robot.camera_width=320",
        "--robot.camera_height=240",
        "--record.num_episodes=500",
        "--record.episode_time_s=0.5",
    )
    seen: list[str] = []
    wait_for_line(proc, r"Queued episode 3 ", seen)
    ballast = small_disk / "ballast"
    _fill(ballast)
    out, err = proc.communicate(timeout=120)
    out = "".join(seen) + out
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err and "Traceback" not in out
    errors = error_lines(err)
    assert errors and all(line.startswith("error: ") for line in errors), err
    assert "full" in errors[0] and "dorobot recover" in err

    # Whatever was committed is intact, and every episode whose save was announced is either
    # committed or waiting whole in its journal.
    assert_valid(root)
    queued = queued_episodes(out)
    info = json.loads((root / "meta/info.json").read_text())
    journals = [p for p in (root / ".dorobot/journal").iterdir() if (p / "closed.json").exists()]
    assert info["total_episodes"] + len(journals) >= len(queued)

    ballast.unlink()  # the operator frees space
    rec = run_recover(root)
    # Non-zero only when it had to set aside the episode the full disk cut short.
    assert rec.returncode == (1 if "set aside whole" in rec.stdout else 0), rec.stdout + rec.stderr
    assert_valid(root)
    lengths = episode_lengths(root)
    assert len(lengths) >= len(queued)
    assert [lengths[i] for i in sorted(queued)] == [queued[i] for i in sorted(queued)]


def test_not_enough_room_for_an_episode_refuses_to_start(small_disk: Path) -> None:
    root = small_disk / "ds"
    # Saving at the end, 60 s of two 640x480 cameras needs over 3 GB of journal.
    proc = run_record(
        *FAST,
        "--record.repo_id=lab/full",
        f"--record.root={root}",
        "--robot.camera_width=640",
        "--robot.camera_height=480",
        "--record.num_episodes=1",
        "--record.episode_time_s=60",
        "--record.use_async_save=false",
    )
    assert proc.returncode == 1
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "almost full" in errors[0] and "a 60 s episode needs" in errors[0], (
        proc.stderr
    )
    assert_valid(root, episodes=0)


def test_disk_filling_at_any_step_of_a_commit_leaves_the_dataset_as_it_was(small_disk: Path) -> None:
    # Wherever in a commit the last byte goes (the journal's marker, the parquet, a JSONL line,
    # info.json), the dataset must be exactly the one before, with no stray file, and the same
    # encoded episode must commit once space is back.
    robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48, seed=5))
    robot.connect()
    ds = DoRobotDataset.create("lab/full", small_disk / "ds", 30, robot.robot_type, robot.features)
    ballast = small_disk / "ballast"
    failures = 0
    for episode, free in enumerate([0, 2**12, 2**13, 2**14, 2**15, 2**16]):
        for _ in range(20 + episode):
            ds.add_frame(robot.capture(), "t")
        journal = ds.close_episode(episode)
        encoded = encode_episode(journal, staging_dir(journal), ds.video)
        _fill(ballast)
        os.truncate(ballast, ballast.stat().st_size - free)
        try:
            assert commit_episode(journal, encoded, ds.meta) == episode
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            failures += 1
            report = verify_dataset(ds.root)
            assert report.ok and report.episodes == episode, report.problems
            ballast.unlink()
            assert commit_episode(journal, encoded, ds.meta) == episode
        ballast.unlink(missing_ok=True)
    assert failures >= 3  # the sweep did hit the disk limit at several steps
    assert_valid(ds.root, episodes=6)
    assert episode_lengths(ds.root) == [20 + i for i in range(6)]
