"""The encoder process: its own interpreter, its own session, and gone when the recorder is."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.conftest import FAST, SLOW_ENCODING, assert_valid, run_recover, start_record, wait_for_line


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_encoder_runs_apart_and_exits_when_the_recorder_is_killed(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    flags = [*FAST, *SLOW_ENCODING, "--record.repo_id=lab/enc", f"--record.root={root}"]
    proc = start_record(*flags, "--record.num_episodes=20", "--record.episode_time_s=0.5")
    seen: list[str] = []
    try:
        wait_for_line(proc, r"Queued episode 1 ", seen, timeout=120)
        (encoder,) = _children(proc.pid)
        cmdline = Path(f"/proc/{encoder}/cmdline").read_bytes().split(b"\0")
        assert b"operating_platform.dataset.encode_worker" in cmdline, cmdline
        # A session of its own: signals sent to the recorder's group or terminal miss it.
        assert os.getsid(encoder) == encoder != os.getsid(proc.pid)
        assert os.getpriority(os.PRIO_PROCESS, encoder) >= 10
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        while _alive(encoder) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(encoder), "the encoder outlived the recorder"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    # It let go of the encoder lock on its way out: recovery finishes the episodes at once.
    rec = run_recover(root)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert_valid(root)
