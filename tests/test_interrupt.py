"""Ctrl-C while recording keeps the episode captured so far."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import FAST, assert_valid


def test_ctrl_c_saves_the_current_episode(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "operating_platform.core.main",
            *FAST,
            "--record.repo_id=lab/int",
            f"--record.root={root}",
            "--record.num_episodes=3",
            "--record.episode_time_s=60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    journal = root / ".dorobot" / "journal"
    deadline = time.monotonic() + 60
    # Interrupt once frames are really being captured (a journal exists and has grown).
    while time.monotonic() < deadline:
        rows = list(journal.glob("*/rows.log")) if journal.exists() else []
        if rows and rows[0].stat().st_size >= 20 * 72:  # 72-byte row records
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert_valid(root, episodes=1)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["total_frames"] >= 20
