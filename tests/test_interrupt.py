"""Ctrl-C and SIGTERM: the first stops cleanly and keeps everything, the second exits at once."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import (
    FAST,
    SLOW_ENCODING,
    assert_valid,
    episode_lengths,
    queued_episodes,
    run_recover,
    start_record,
    wait_for_line,
)


def _start(root: Path, *flags: str) -> subprocess.Popen:
    return start_record(*FAST, "--record.repo_id=lab/int", f"--record.root={root}", *flags)


def _wait_for_frames(root: Path, frames: int) -> None:
    journal = root / ".dorobot" / "journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = list(journal.glob("*/rows.log")) if journal.exists() else []
        if rows and rows[0].stat().st_size >= frames * 72:  # 72-byte row records
            return
        time.sleep(0.05)
    raise AssertionError("capture never started")


def _info(root: Path) -> dict:
    return json.loads((root / "meta/info.json").read_text())


def test_ctrl_c_saves_the_current_episode(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = _start(root, "--record.num_episodes=3", "--record.episode_time_s=60")
    _wait_for_frames(root, 20)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert_valid(root, episodes=1)
    assert _info(root)["total_frames"] >= 20
    assert not list((root / ".dorobot/journal").iterdir())


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = _start(root, "--record.num_episodes=50", "--record.episode_time_s=0.5")
    seen: list[str] = []
    wait_for_line(proc, r"Queued episode 1 ", seen)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    out = "".join(seen) + out
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err
    queued = queued_episodes(out)
    assert_valid(root, episodes=len(queued))
    lengths = episode_lengths(root)
    assert lengths == [queued[i] for i in range(len(queued))]


def test_second_interrupt_exits_at_once_and_recover_finishes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = _start(root, *SLOW_ENCODING, "--record.num_episodes=20", "--record.episode_time_s=0.5")
    seen: list[str] = []
    wait_for_line(proc, r"Queued episode 2 ", seen)
    proc.send_signal(signal.SIGINT)
    wait_for_line(proc, r"Stopping: waiting", seen)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    out = "".join(seen) + out
    assert proc.returncode == 130, out + err
    assert "SIGINT again: exiting now" in err and "dorobot recover" in err
    assert "Traceback" not in err
    queued = queued_episodes(out)
    assert len(queued) >= 3
    assert _info(root)["total_episodes"] < len(queued)  # the saves really were cut short

    rec = run_recover(root)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert_valid(root, episodes=len(queued))
    lengths = episode_lengths(root)
    assert lengths == [queued[i] for i in range(len(queued))]
