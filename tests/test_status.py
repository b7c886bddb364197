"""The status line's figures: what they cost the capture process, and what they show."""

from __future__ import annotations

import io
import os
import re
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from operating_platform.core import status
from operating_platform.core.record import CaptureStats
from operating_platform.dataset.metadata import DoRobotDatasetMetadata
from tests.conftest import FAST, run_record, run_session


def _record_like(root: Path) -> SimpleNamespace:
    """What the status line reads from a `Record`, over a dataset on disk."""
    meta = DoRobotDatasetMetadata.load(root)
    return SimpleNamespace(
        dataset=SimpleNamespace(meta=meta, root=root),
        fps=30,
        raw_bytes_per_frame=57600,
        stats=CaptureStats(30),
        session_missed_ticks=0,
        episode_frames=0,
        task="Pick the cube",
        status=lambda: None,
        halted=None,
    )


def _note(statted: list[str], path: Path) -> None:
    if path.suffix == ".mp4":
        statted.append(path.name)


def _minutes_shown(line: status.StatusLine, now: float) -> float:
    line.update("REC", 0, None, now)
    return line._disk[1]


def test_minutes_left_looks_only_at_episodes_committed_since_last_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ds"
    assert run_session(root, episodes=3).returncode == 0
    videos = sorted((root / "videos").rglob("*.mp4"))
    per_frame = sum(p.stat().st_size for p in videos) / DoRobotDatasetMetadata.load(root).total_frames

    # A scan of the whole dataset, once a second on the capture process, grows with the dataset.
    def no_scan(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the status line scanned the dataset folder")

    monkeypatch.setattr(Path, "rglob", no_scan)
    monkeypatch.setattr(Path, "glob", no_scan)
    monkeypatch.setattr(os, "walk", no_scan)
    monkeypatch.setattr(os, "scandir", no_scan)
    statted: list[str] = []
    real_stat = Path.stat
    monkeypatch.setattr(Path, "stat", lambda self, **kw: _note(statted, self) or real_stat(self, **kw))

    record = _record_like(root)
    line = status.StatusLine(record, console=Console(file=io.StringIO()))
    free = 10 * 2**30
    monkeypatch.setattr(status, "free_bytes", lambda _root: free)
    minutes = _minutes_shown(line, 1.0)
    assert minutes == pytest.approx(free / (per_frame * 30 * 60))
    assert len(statted) == len(videos)  # each file once
    for second in range(2, 20):
        assert _minutes_shown(line, float(second)) == minutes
    assert len(statted) == len(videos)  # and never again

    monkeypatch.undo()
    assert run_session(root, "--record.resume=true", episodes=1).returncode == 0
    monkeypatch.setattr(Path, "rglob", no_scan)
    monkeypatch.setattr(Path, "stat", lambda self, **kw: _note(statted, self) or real_stat(self, **kw))
    statted.clear()
    line.record = _record_like(root)
    _minutes_shown(line, 30.0)
    assert sorted(statted) == ["episode_000003.mp4"] * 2


def test_minutes_left_before_the_first_episode_assumes_compressed_raw(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    assert run_session(root, episodes=1).returncode == 0
    record = _record_like(root)
    record.dataset.meta = SimpleNamespace(total_episodes=0, total_frames=0, video_keys=["k"])
    minutes = status.minutes_left(record, 60 * 2**20)
    assert minutes == pytest.approx(60 * 2**20 / (57600 / 20 * 30 * 60))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_messages_from_other_threads_never_land_on_the_status_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # The log listener writes to whatever sys.stdout is, while the session shows and takes
    # down the status line: a message must never be written onto the end of that line.
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(status, "free_bytes", lambda _root: 2**30)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to meet every window
    meta = SimpleNamespace(total_episodes=0, video_keys=[])
    record = SimpleNamespace(
        stats=CaptureStats(30),
        session_missed_ticks=0,
        episode_frames=0,
        fps=30,
        status=lambda: None,
        halted=None,
        task="Pick the cube",
        dataset=SimpleNamespace(root="/", meta=meta),
        raw_bytes_per_frame=100,
    )
    done = threading.Event()

    def listener() -> None:
        while not done.is_set():
            out = sys.stdout  # as the console log handler does, for every message
            out.write("[AsyncEpisodeSaver] message\n")

    # The program's first status line comes up well after the listener last wrote; here the
    # listener never pauses, so let its writes find the status line's stdout from the start.
    with status.StatusLine(record, console=Console(force_terminal=True, width=150)):
        pass
    writer = threading.Thread(target=listener)
    writer.start()
    try:
        for _ in range(150):
            with status.StatusLine(record, console=Console(force_terminal=True, width=150)) as line:
                line.update("REC", 0, None, time.monotonic())
    finally:
        done.set()
        writer.join()
        sys.setswitchinterval(interval)
    text = screen.getvalue()
    assert text.count("Pick the cube") >= 150
    glued = re.findall(r"Pick the cube\[AsyncEpisodeSaver\]", text)
    assert not glued, f"{len(glued)} messages written onto the status line"


def test_a_drivers_log_goes_to_the_log_file_and_only_its_errors_to_the_console(tmp_path: Path) -> None:
    # A driver warning on every tick on stderr would run across the status line.
    root = tmp_path / "ds"
    done = run_record(
        "--robot.type=chatty_sim",
        *FAST[1:],
        "--record.repo_id=lab/chatty",
        f"--record.root={root}",
        "--record.num_episodes=1",
        "--record.episode_time_s=1",
        env={"DOROBOT_PLUGINS": "chatty_robot"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "clamped" not in done.stdout
    assert done.stdout.count("servo 3 overheating") == 1
    (log,) = (root / ".dorobot/logs").glob("*.log")
    text = log.read_text()
    assert text.count("relative goal position magnitude had to be clamped") == 30
    assert "ERROR somedriver.bus: servo 3 overheating" in text and "Episode 0 captured" in text
