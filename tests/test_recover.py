"""`dorobot recover`: episodes set aside come back once their cause is gone, a disk that is still
full keeps every journal where it is, and every failure is one line with a non-zero exit."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from operating_platform.dataset.dorobot_dataset import DoRobotDataset
from operating_platform.robots import SimRobotConfig, make_robot
from tests.conftest import (
    FAST,
    assert_valid,
    episode_lengths,
    error_lines,
    run_record,
    run_recover,
    run_session,
    start_record,
)
from tests.test_disk_full import _fill
from tests.test_interrupt import _wait_for_frames

COMMAND = re.compile(r"`(dorobot recover [^`]+)`")


def _run_named_command(output: str, flag: str) -> subprocess.CompletedProcess:
    """Run, as the operator would, the `dorobot recover ...` command a message told them to."""
    commands = [c for c in COMMAND.findall(output) if flag in c]
    assert commands, f"no message names a `dorobot recover ... {flag}` command:\n{output}"
    args = shlex.split(commands[0])[1:]
    cmd = [sys.executable, "-m", "operating_platform.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _kinds(root: Path, kind: str) -> list[Path]:
    folder = root / ".dorobot" / kind
    return sorted(folder.iterdir()) if folder.exists() else []


def test_failed_episode_comes_back_with_retry_failed(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    # The last episode fails: with no retry, the one after a failed episode could be encoded
    # under the failed one's index, and so fail too.
    env = {"DOROBOT_INJECT_FAULTS": "encode:2"}
    proc = run_session(root, "--record.async_save_max_retries=0", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(_kinds(root, "failed")) == 1 and episode_lengths(root) == [30, 30]
    again = run_recover(root)
    assert again.returncode == 0 and "--retry-failed" in again.stdout, again.stdout  # it is not forgotten

    # The fault is gone: the command the message names commits it under the next free index.
    rec = _run_named_command(proc.stdout, "--retry-failed")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "committed as episode 2 (30 frames)" in rec.stdout, rec.stdout
    assert _kinds(root, "failed") == []
    assert episode_lengths(root) == [30, 30, 30]
    assert_valid(root, episodes=3)
    assert "nothing to recover" in run_recover(root).stdout


def test_partial_episode_set_aside_earlier_comes_back_with_salvage_partial(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = start_record(
        *FAST, "--record.repo_id=lab/rec", f"--record.root={root}", "--record.episode_time_s=60"
    )
    _wait_for_frames(root, 20)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)

    rec = run_recover(root)
    assert rec.returncode == 1, rec.stdout + rec.stderr  # it set the partial episode aside
    assert len(_kinds(root, "partial")) == 1 and episode_lengths(root) == []
    assert_valid(root, episodes=0)

    salvage = _run_named_command(rec.stdout, "--salvage-partial")
    assert salvage.returncode == 0, salvage.stdout + salvage.stderr
    assert _kinds(root, "partial") == []
    [length] = episode_lengths(root)
    assert length >= 20
    assert_valid(root, episodes=1)


def _dataset_with_ended_episodes(root: Path, episodes: int) -> None:
    """Episodes ended by the operator but not saved yet, as a killed session leaves them."""
    robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48))
    robot.connect()
    ds = DoRobotDataset.create("lab/rec", root, 30, robot.robot_type, robot.features)
    for episode in range(episodes):
        for _ in range(10 + episode):
            ds.add_frame(robot.capture(), "Pick")
        ds.close_episode(episode)
    ds.close()


def _resume(root: Path) -> subprocess.CompletedProcess:
    """The next session's start, which recovers first."""
    flags = [f"--record.root={root}", "--record.num_episodes=1", "--record.episode_time_s=0.3"]
    size = ["--robot.camera_width=64", "--robot.camera_height=48"]  # the dataset's
    return run_record(*FAST, *size, "--record.repo_id=lab/rec", *flags, "--record.resume=true")


@pytest.mark.parametrize("how", ["recover", "resume"])
def test_recovery_on_a_disk_still_full_keeps_every_journal_and_says_what_it_needs(
    small_disk: Path, how: str
) -> None:
    root = small_disk / "ds"
    _dataset_with_ended_episodes(root, 3)
    ballast = small_disk / "ballast"
    _fill(ballast)

    rec = run_recover(root) if how == "recover" else _resume(root)
    assert rec.returncode == 1, rec.stdout + rec.stderr
    errors = error_lines(rec.stderr)
    assert len(errors) == 1 and "full" in errors[0] and "free at least" in errors[0], rec.stderr
    # Out of space is not the episodes' fault: none is set aside, all wait in their journals.
    assert len(_kinds(root, "journal")) == 3
    assert _kinds(root, "failed") == [] and _kinds(root, "partial") == []
    assert_valid(root, episodes=0)

    ballast.unlink()
    rec = run_recover(root) if how == "recover" else _resume(root)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    expected = [10, 11, 12] if how == "recover" else [10, 11, 12, 9]  # and the session's own
    assert episode_lengths(root) == expected
    assert_valid(root, episodes=len(expected))


def test_recover_on_a_read_only_dataset_is_one_line(small_disk: Path) -> None:
    root = small_disk / "ds"
    _dataset_with_ended_episodes(root, 1)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    rec = run_recover(root)
    assert rec.returncode == 1, rec.stdout + rec.stderr
    assert "Traceback" not in rec.stdout + rec.stderr
    errors = error_lines(rec.stderr)
    assert len(errors) == 1 and errors[0].startswith("error: ") and "read-only" in errors[0], rec.stderr
    assert len(_kinds(root, "journal")) == 1  # untouched, for when it is writable again


PACKAGE = Path(__file__).resolve().parents[1] / "operating_platform"
NAMED = re.compile(r"`(dorobot (?:recover|verify|record|find-cameras)[^`]*)`")


def test_every_command_a_message_names_is_one_that_runs(tmp_path: Path) -> None:
    # Each `dorobot ...` the program tells the operator to type, with its placeholders filled in
    # for a real dataset, must be a command line the program takes (argparse exits 2 otherwise).
    root = tmp_path / "ds"
    assert run_session(root, episodes=1).returncode == 0
    templates = {m for path in PACKAGE.rglob("*.py") for m in NAMED.findall(path.read_text())}
    assert len(templates) >= 8, templates
    commands = set()
    for template in templates:
        for flag in ("--salvage-partial", "--retry-failed"):
            command = re.sub(r"\{flag\}", flag, template)
            command = re.sub(r"\{[^}]*\}|NEW_PLACE|ROOT", str(root), command)
            if command in ("dorobot recover", "dorobot verify"):
                command += f" {root}"
            commands.add(command)
    for command in sorted(commands):
        argv = shlex.split(command)[1:]
        if argv[0] == "record":
            argv += ["--help"]  # a session would record; its flags are what is checked
        if argv[0] == "find-cameras":
            argv += ["--output-dir", str(tmp_path / "stills")]
        done = subprocess.run(
            [sys.executable, "-m", "operating_platform.cli", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 2 and "usage:" not in done.stderr, (command, done.stderr)
