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
from pathlib import Path

import pytest

from tests.conftest import PLUGINS_DIR, assert_valid

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
    except RuntimeError as exc:
        print("raised:", exc)
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
        assert "raised: capture stopped after an error: no frame from the robot" in proc.stdout
    root = tmp_path / "ds"
    assert_valid(root, episodes=1)
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == FRAMES_BEFORE_HANG
