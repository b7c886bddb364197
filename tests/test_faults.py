"""Faults other than kills: each gets a one-line explanation, a non-zero exit where it stops the
session, and no further damage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from operating_platform.dataset.dorobot_dataset import DoRobotDataset
from operating_platform.dataset.journal_store import set_aside_journal
from operating_platform.dataset.recovery import recover_dataset
from operating_platform.robots import SimRobotConfig, make_robot
from tests.conftest import (
    FAST,
    assert_valid,
    episode_lengths,
    error_lines,
    queued_episodes,
    run_recover,
    run_session,
    start_record,
    wait_for_line,
)


def _faulty_session(root: Path, fault: str, episodes: int) -> subprocess.CompletedProcess:
    """A session on the test plugin's simulated arm, with `fault` from its 41st frame."""
    return run_session(
        root,
        "--robot.type=faulty_sim",
        f"--robot.fault={fault}",
        "--robot.fail_at=40",
        "--robot.camera_width=160",
        "--robot.camera_height=120",
        episodes=episodes,
        env={"DOROBOT_PLUGINS": "faulty_robot"},
    )


@pytest.mark.parametrize("point", ["rename", "fsync"])
def test_failed_publish_step_is_retried_without_encoding_again(tmp_path: Path, point: str) -> None:
    # A storage fault while publishing says nothing against the encoded videos: only the publish
    # step is tried again. Encoding again would cost a lossy generation for frames already
    # released from the journal (and the encoder's time).
    root = tmp_path / "ds"
    proc = run_session(root, "--record.episode_time_s=2", env={"DOROBOT_INJECT_FAULTS": f"{point}:1:1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"injected {point} failure" in proc.stdout
    assert "publishing its encoded videos again in 2s" in proc.stdout
    assert proc.stdout.count("Starting save for episode 1") == 1, proc.stdout
    assert "Save stats: queued=3 completed=3 failed=0" in proc.stdout
    assert_valid(root, episodes=3)


@pytest.mark.parametrize("point", ["rename", "fsync"])
def test_publish_step_that_keeps_failing_leaves_no_half_written_file(tmp_path: Path, point: str) -> None:
    # The parquet is written under a hidden name before the failing step; giving up on the
    # episode must take it away again, or the dataset is left with a stray file.
    root = tmp_path / "ds"
    env = {"DOROBOT_INJECT_FAULTS": f"{point}:1"}
    proc = run_session(root, "--record.async_save_max_retries=1", episodes=2, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Save stats: queued=2 completed=1 failed=1" in proc.stdout
    assert_valid(root, episodes=1)
    assert len(list((root / ".dorobot/failed").iterdir())) == 1
    assert not [p.name for p in root.rglob("*.tmp") if ".dorobot" not in p.parts]


@pytest.mark.parametrize(
    ("fault", "says"), [("hang", "no frame from the robot"), ("raise", "camera read failed")]
)
def test_camera_that_stops_delivering_frames(tmp_path: Path, fault: str, says: str) -> None:
    root = tmp_path / "ds"
    proc = _faulty_session(root, fault, episodes=5)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and says in errors[0], proc.stderr
    assert_valid(root, episodes=2)
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == 40


def test_read_only_dataset_folder(small_disk: Path) -> None:
    root = small_disk / "ds"
    assert run_session(root, episodes=1).returncode == 0
    before = sorted(p.name for p in root.rglob("*"))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for target, flags in ((root, ["--record.resume=true"]), (small_disk / "new", [])):
        proc = run_session(target, *flags, episodes=1)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        errors = error_lines(proc.stderr)
        assert len(errors) == 1 and "Read-only file system" in errors[0], proc.stderr
    assert sorted(p.name for p in root.rglob("*")) == before
    assert_valid(root, episodes=1)


@pytest.mark.parametrize(
    ("reset_s", "when"), [(0, r"Queued episode 2 "), (2, r"Reset the scene")], ids=["recording", "reset"]
)
def test_dataset_folder_vanishing_while_recording(tmp_path: Path, reset_s: int, when: str) -> None:
    # Mid-episode, or between episodes, when the next one is about to start.
    root = tmp_path / "ds"
    proc = start_record(
        *FAST,
        "--record.repo_id=lab/faults",
        f"--record.root={root}",
        "--record.num_episodes=100",
        "--record.episode_time_s=0.5",
        f"--record.reset_time_s={reset_s}",
    )
    seen: list[str] = []
    wait_for_line(proc, when, seen)
    # Moved away in one step (`rm -rf` races with the files the program is still creating).
    moved = tmp_path / "moved"
    root.rename(moved)
    out, err = proc.communicate(timeout=120)
    out = "".join(seen) + out
    assert proc.returncode == 1, out + err
    assert "Traceback" not in out + err
    errors = error_lines(err)
    assert len(errors) == 1 and "disappeared while recording" in errors[0], err
    assert "All saves completed" not in out and "no longer exists" in out, out
    # Nothing is recreated where the operator removed the dataset: no half-dataset appears.
    assert not root.exists(), sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    # Where it was moved to, recovery finishes every episode the recorder announced.
    assert run_recover(moved).returncode == 0
    queued = queued_episodes(out)
    assert queued and episode_lengths(moved) == [queued[i] for i in sorted(queued)], out
    assert_valid(moved)


@pytest.mark.parametrize("step", ["next episode", "set aside"])
def test_no_step_recreates_a_dataset_folder_moved_away(tmp_path: Path, step: str) -> None:
    # The session and the saver stop before these steps; this guards the steps themselves.
    robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48))
    robot.connect()
    root = tmp_path / "ds"
    ds = DoRobotDataset.create("lab/faults", root, 30, robot.robot_type, robot.features)
    ds.add_frame(robot.capture(), "t")
    journal = ds.close_episode(0)
    root.rename(tmp_path / "moved")
    with pytest.raises(FileNotFoundError):
        if step == "next episode":
            ds.open_episode("t")
        else:
            set_aside_journal(journal, "failed", "cannot be saved")
    ds.close()
    assert not root.exists(), sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("cut", ["before its header", "after its header, before its rows file"])
def test_journal_cut_short_as_it_opened_is_removed_not_set_aside(tmp_path: Path, cut: str) -> None:
    # Killed (or its folder moved) while the journal was being opened: its rows file comes
    # before any frame, so without it there is nothing to keep and nothing to report as failed.
    robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48))
    robot.connect()
    ds = DoRobotDataset.create("lab/faults", tmp_path / "ds", 30, robot.robot_type, robot.features)
    ds.add_frame(robot.capture(), "t")
    assert ds.save_episode() == 0
    if cut == "before its header":
        journal = ds.journal_dir / "20261130T000000-1-000000000"
        journal.mkdir()
        (journal / ".header.json.tmp").write_text('{"format": 1, "fps"')
    else:
        journal = ds.open_episode("t")
        (journal / "rows.log").unlink()
    ds.close()

    lines: list[str] = []
    report = recover_dataset(tmp_path / "ds", say=lines.append)
    assert report.set_aside == [] and report.committed == [], lines
    assert not journal.exists() and not (tmp_path / "ds/.dorobot/failed").exists()
    assert any("no frame was captured" in line for line in lines), lines
    assert_valid(tmp_path / "ds", episodes=1)


def test_corrupt_journal_is_set_aside_whole(tmp_path: Path) -> None:
    robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48))
    robot.connect()
    ds = DoRobotDataset.create("lab/faults", tmp_path / "ds", 30, robot.robot_type, robot.features)
    for _ in range(12):
        ds.add_frame(robot.capture(), "t")
    assert ds.save_episode() == 0
    for _ in range(12):
        ds.add_frame(robot.capture(), "t")
    journal = ds.close_episode(1)
    ds.close()
    segment = journal / "observation.images.image_top" / "seg_000000.raw"
    data = bytearray(segment.read_bytes())
    data[5000] ^= 0xFF
    segment.write_bytes(bytes(data))

    lines: list[str] = []
    report = recover_dataset(tmp_path / "ds", say=lines.append)
    assert report.committed == [] and len(report.set_aside) == 1
    assert any("cannot be committed" in line and "damaged" in line for line in lines), lines
    kept = report.set_aside[0]
    assert (kept / "rows.log").stat().st_size == 12 * 72 and "damaged" in (kept / "error.txt").read_text()
    assert_valid(tmp_path / "ds", episodes=1)
    assert not recover_dataset(tmp_path / "ds").changed


def _session_log(root: Path) -> str:
    (log,) = (root / ".dorobot/logs").glob("record-*.log")
    return log.read_text()


def test_the_error_that_ends_a_session_is_in_its_log_file(tmp_path: Path) -> None:
    # What the operator read on stderr is also in the log file, which outlives the terminal.
    root = tmp_path / "ds"
    proc = _faulty_session(root, "raise", episodes=3)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (said,) = error_lines(proc.stderr)
    assert f"ERROR operating_platform: {said}" in _session_log(root)


def test_an_error_the_recorder_expects_is_one_line_in_the_log_file_too(tmp_path: Path) -> None:
    # An I/O error out of the session is told in one line, on stderr and in the log file alike.
    root = tmp_path / "ds"
    proc = _faulty_session(root, "unplugged", episodes=1)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (said,) = error_lines(proc.stderr)
    assert "/dev/ttyACM0 is gone" in said, proc.stderr
    log = _session_log(root)
    assert f"ERROR operating_platform: {said}" in log and "Traceback" not in log, log
    assert_valid(root, episodes=1)


def test_an_unexpected_exception_is_written_to_the_log_file_with_its_traceback(tmp_path: Path) -> None:
    # A plugin's disconnect() raising ends the session with an exception no handler expects; on a
    # terminal that hung up, Python's traceback would reach no one.
    root = tmp_path / "ds"
    proc = _faulty_session(root, "disconnect", episodes=1)
    assert proc.returncode != 0 and "faulty_sim: disconnect failed" in proc.stderr, proc.stderr
    log = _session_log(root)
    assert "ERROR operating_platform: The session ended with this error:" in log, log
    assert "Traceback (most recent call last):" in log and "in disconnect" in log, log
    assert log.rstrip().endswith("RuntimeError: faulty_sim: disconnect failed"), log
    assert_valid(root, episodes=1)  # the episode was saved before the robot was closed
