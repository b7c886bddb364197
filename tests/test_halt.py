"""A saver that cannot go on (a full disk) never hangs the operator, `save_sync()` says what
really happened to an episode, and a long session's bookkeeping stays the size of a short one's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from operating_platform.core.record import CaptureStats
from operating_platform.core.status import render
from tests.conftest import (
    FAST,
    assert_valid,
    episode_lengths,
    error_lines,
    queued_episodes,
    run_record,
    run_recover,
)


@pytest.mark.parametrize("then", ["recover", "resume"])
def test_save_returns_at_once_when_saving_has_halted(tmp_path: Path, then: str) -> None:
    # Every encode of episode 1 finds the disk full: the saver halts with episode 1 still
    # waiting, so with one slot the next save() finds the queue full. It must not wait for a
    # slot that can never free up: the session stops with the cause, everything kept.
    root = tmp_path / "ds"
    proc = run_record(
        *FAST,
        "--record.repo_id=lab/halt",
        f"--record.root={root}",
        "--record.num_episodes=6",
        "--record.episode_time_s=0.5",
        "--record.async_save_queue_size=1",
        env={"DOROBOT_INJECT_FAULTS": "encode:1::ENOSPC"},
        timeout=90,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "full" in errors[0] and "dorobot recover" in errors[0], proc.stderr
    queued = queued_episodes(proc.stdout)
    assert episode_lengths(root) == [queued[0]]
    assert_valid(root, episodes=1)

    # The cause is gone: recovery, or the next session's start, finishes every episode that was
    # ended, in order.
    if then == "recover":
        rec = run_recover(root)
    else:
        flags = [f"--record.root={root}", "--record.num_episodes=1", "--record.episode_time_s=0.5"]
        rec = run_record(*FAST, "--record.repo_id=lab/halt", *flags, "--record.resume=true")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    lengths = episode_lengths(root)
    assert len(lengths) >= 2 and lengths[: len(queued)] == [queued[i] for i in sorted(queued)]
    if then == "resume":  # and the session's own episode after them
        assert lengths[-1] == 15 and len(lengths) >= len(queued) + 1
    assert_valid(root)


def test_status_line_shows_why_saving_stopped() -> None:
    record = SimpleNamespace(
        stats=CaptureStats(30),
        session_missed_ticks=0,
        episode_frames=0,
        fps=30,
        status=lambda: None,
        task="Pick",
        halted="the disk holding /data/ds is full",
    )
    line = render(record, "REC", 3, None, (0, 0.0)).plain
    assert "SAVING STOPPED: the disk holding /data/ds is full" in line, line


def _api(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> list[str]:
    script = (
        textwrap.dedent(
            """
        import time
        from operating_platform.core.record import Record, RecordConfig
        from operating_platform.robots import SimRobotConfig, make_robot

        def main():
            robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48, num_cameras=1))
            robot.connect()
        """
        )
        + textwrap.indent(textwrap.dedent(body), "    ")
        + "\n\nif __name__ == '__main__':\n    main()\n"
    )
    (tmp_path / "api.py").write_text(script)
    proc = subprocess.run(
        [sys.executable, "api.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_save_sync_reports_an_episode_set_aside_as_not_saved(tmp_path: Path) -> None:
    lines = _api(
        tmp_path,
        """
        cfg = RecordConfig(repo_id="lab/sync", single_task="Pick", root="ds", async_save_max_retries=0)
        record = Record(fps=30, robot=robot, record_cfg=cfg)
        for _ in range(2):
            record.start()
            time.sleep(0.3)
            meta = record.save_sync()
            print(meta.saved, meta.frames > 0, meta.error is not None, record.dataset.meta.total_episodes)
        record.stop()
        """,
        env={"DOROBOT_INJECT_FAULTS": "encode:1"},
    )
    # Episode 0 is saved; episode 1 always fails and is set aside.
    assert lines[-2:] == ["True True False 1", "False True True 1"], lines
    assert_valid(tmp_path / "ds", episodes=1)


def test_a_long_session_keeps_bounded_bookkeeping(tmp_path: Path) -> None:
    lines = _api(
        tmp_path,
        """
        cfg = RecordConfig(repo_id="lab/long", single_task="Pick", root="ds", video=False)
        record = Record(fps=200, robot=robot, record_cfg=cfg)
        for _ in range(120):
            record.start(max_frames=2)
            while record.capturing:
                time.sleep(0.001)
            record.save()
        record.async_saver.wait_all(120)
        status = record.status()
        print(status.completed, status.failed, len(status.episodes))
        record.stop()
        """,
    )
    completed, failed, listed = map(int, lines[-1].split())
    assert (completed, failed) == (120, 0)
    assert listed <= 20, lines  # a status snapshot does not list every episode ever saved
    assert_valid(tmp_path / "ds", episodes=120)
