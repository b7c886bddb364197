"""A camera that hangs on the read just before `save()`: the next call still returns.

The stuck read is abandoned with the stall message, as it is while capturing, and every frame
before it is saved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests import test_console
from tests.conftest import FAST, PLUGINS_DIR, assert_valid

terminal = test_console.terminal  # the tmux fixture
FRAMES_BEFORE_HANG = 12

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import faulty_robot
    from operating_platform.core.record import Record, RecordConfig

    then, sync = sys.argv[1], sys.argv[2] == "sync"
    robot = faulty_robot.FaultySim(faulty_robot.FaultySimConfig(
        fault="hang", fail_at={frames}, camera_width=64, camera_height=48))
    cfg = RecordConfig(repo_id="lab/stall", single_task="Pick", root="ds", use_async_save=not sync)
    record = Record(fps=30, robot=robot, record_cfg=cfg)
    robot.connect()
    record.start()
    while robot.captured <= {frames}:  # until the read of the next frame is stuck
        time.sleep(0.01)
    time.sleep(0.2)
    if not sync:
        record.save()
    try:
        record.start() if then == "start" else record.save() if sync else record.stop()
    except OSError as exc:
        print("raised:", type(exc).__name__, exc)
    record.stop()
    print("error:", record.error)
    """
).format(frames=FRAMES_BEFORE_HANG)


@pytest.mark.parametrize(("then", "mode"), [("start", "async"), ("stop", "async"), ("save", "sync")])
def test_read_stuck_before_save_does_not_hang_the_next_call(tmp_path: Path, then: str, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(PLUGINS_DIR)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, then, mode],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,  # the stall timeout is 2 s; without a bound the join never returns
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error: no frame from the robot for 2 s" in proc.stdout, proc.stdout + proc.stderr
    if then == "start":
        assert "raised: CaptureStalled no frame from the robot for 2 s" in proc.stdout
    root = tmp_path / "ds"
    assert_valid(root, episodes=1)
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == FRAMES_BEFORE_HANG


def test_operator_ending_the_episode_during_a_stuck_read(terminal, tmp_path: Path) -> None:
    # `n` while the camera's read hangs, `p` for the next episode: one line, no traceback.
    root = tmp_path / "ds"
    term = terminal(
        *FAST,
        "--robot.type=faulty_sim",
        "--robot.fault=hang",
        f"--robot.fail_at={FRAMES_BEFORE_HANG}",
        "--record.repo_id=lab/stall",
        f"--record.root={root}",
        "--record.num_episodes=3",
        "--record.episode_time_s=0",
    )
    rows = root / ".dorobot/journal"
    deadline = time.monotonic() + 60
    while sum(p.stat().st_size for p in rows.glob("*/rows.log")) < FRAMES_BEFORE_HANG * 72:
        assert time.monotonic() < deadline, term.screen()
        time.sleep(0.02)
    time.sleep(0.3)  # the next read, a tick later, is now stuck (for well under the 2 s stall timeout)
    term.send("n")
    term.wait_for("Reset the scene")
    term.send("p")
    screen = term.wait_for("DONE")
    assert "EXIT=1" in screen, screen
    assert "Traceback" not in screen, screen
    errors = [line for line in screen.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no frame from the robot for 2 s" in errors[0], screen
    assert_valid(root, episodes=1)
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == FRAMES_BEFORE_HANG
