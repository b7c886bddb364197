"""A kill in the middle of a step that touches several files (retiring a committed journal,
discarding one, publishing an episode) never makes recovery commit an episode twice, bring a
discarded one back, or leave a file where LeRobot looks.

A real kill cannot be aimed at one file operation, so the program runs in a subprocess whose
file operation of interest is wrapped to SIGKILL the process at that exact point; everything
else is the real code on real files.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from operating_platform.dataset.recovery import recover_dataset
from tests.conftest import assert_valid, episode_lengths

RECORD = """
import os, signal, sys
from pathlib import Path
from operating_platform.dataset.dorobot_dataset import DoRobotDataset
from operating_platform.robots import SimRobotConfig, make_robot

robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48))
robot.connect()
ds = DoRobotDataset.create("lab/retire", Path(sys.argv[1]), 30, robot.robot_type, robot.features)
for _ in range(12):
    ds.add_frame(robot.capture(), "Pick")

JOURNAL_FILES = ("rows.log", "header.json", "commit.json", "closed.json")

def kill_after_unlinking(k):
    # SIGKILL right after the k-th file of a journal is deleted, whichever file that is: the
    # order a recursive delete takes differs between file systems.
    real, count = os.unlink, [0]
    def wrapped(path, *args, **kwargs):
        result = real(path, *args, **kwargs)
        name = os.path.basename(os.fspath(path))
        if name in JOURNAL_FILES or name.startswith("seg_"):
            count[0] += 1
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
        return result
    os.unlink = wrapped

def kill_after(name_test, call):
    real = getattr(os, call)
    def wrapped(path, *args, **kwargs):
        if name_test(os.fspath(path), *args):
            if call == "replace":
                os.kill(os.getpid(), signal.SIGKILL)  # before the rename
            real(path, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)  # right after the unlink
        return real(path, *args, **kwargs)
    setattr(os, call, wrapped)
"""


def _run(root: Path, body: str) -> None:
    script = RECORD + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9, proc.stdout + proc.stderr  # it died where it was meant to


def _set_aside(root: Path) -> list[str]:
    return [p.name for kind in ("failed", "partial") for p in (root / ".dorobot" / kind).glob("*")]


@pytest.mark.parametrize("k", range(1, 7))  # the journal holds 6 files then
def test_kill_while_retiring_a_committed_journal_never_commits_it_twice(tmp_path: Path, k: int) -> None:
    # Deleted file by file, a journal whose commit marker went first (as on tmpfs; on ext4 it
    # goes third) holds every frame of an episode already committed, without the marker.
    root = tmp_path / "ds"
    _run(root, f"kill_after_unlinking({k})\nds.save_episode()")
    assert episode_lengths(root) == [12]
    lines: list[str] = []
    report = recover_dataset(root, say=lines.append)
    assert report.committed == [] and report.set_aside == [], lines
    assert episode_lengths(root) == [12]
    assert _set_aside(root) == []
    assert_valid(root, episodes=1)
    assert not recover_dataset(root).changed


@pytest.mark.parametrize("k", range(1, 5))  # the journal holds 4 files then
def test_kill_while_discarding_never_brings_the_episode_back(tmp_path: Path, k: int) -> None:
    root = tmp_path / "ds"
    _run(root, f"kill_after_unlinking({k})\nds.discard_episode()")
    lines: list[str] = []
    report = recover_dataset(root, salvage_partial=True, say=lines.append)
    assert report.committed == [] and report.set_aside == [], lines
    assert _set_aside(root) == [], lines  # no phantom episode under failed/ or partial/
    assert_valid(root, episodes=0)


def test_kill_before_the_parquet_is_renamed_leaves_nothing_where_lerobot_looks(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _run(
        root,
        """
        kill_after(lambda src, dst=None, *a: os.fspath(dst or "").endswith(".parquet"), "replace")
        ds.save_episode()
        """,
    )
    # LeRobot reads every file under data/: a staged parquet must not be there, hidden or not.
    assert [p for p in (root / "data").rglob("*") if p.is_file()] == []
    assert_valid(root, episodes=0)
    report = recover_dataset(root)
    assert report.committed == [0]
    assert_valid(root, episodes=1)
    assert episode_lengths(root) == [12]
