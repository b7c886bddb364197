"""No thread of the recorder or its encoder runs under a real-time scheduling policy.

SVT-AV1, run by root (as on many robot computers), starts its threads under SCHED_FIFO at the
highest priority: they would ignore niceness and take a core from the capture clock, and every
process started afterwards would inherit the policy. The recorder and its encoder keep them from
getting it at all.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST, child_pids

SVT = ["--record.vcodec=libsvtav1", "--record.preset=12", "--record.crf=30"]


def _policies(pid: int) -> set[int]:
    """The scheduling policy (stat field 41) of every thread of a process."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found.add(int(fields[38]))  # field 41 counted from 1, after pid and comm
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="SVT-AV1 asks for a real-time policy only when run by root")
def test_recording_with_svt_av1_keeps_every_thread_off_real_time(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "operating_platform.core.main", *FAST, *SVT,
            "--record.repo_id=lab/svt", f"--record.root={tmp_path / 'ds'}",
            "--record.num_episodes=2", "--record.episode_time_s=1.5",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    seen: dict[int, set[int]] = {}
    encoders = set()
    while proc.poll() is None:
        for pid in [proc.pid, *child_pids(proc.pid)]:
            if pid != proc.pid:
                encoders.add(pid)
            with contextlib.suppress(OSError):  # it may have ended meanwhile
                seen.setdefault(pid, set()).update(_policies(pid))
        time.sleep(0.05)
    out = proc.communicate()[0]
    assert proc.returncode == 0, out
    assert encoders, "the encoder process was never seen"
    # The encoder runs under SCHED_IDLE (below every normal thread), the recorder under SCHED_OTHER.
    realtime = {os.SCHED_FIFO, os.SCHED_RR}
    assert all(policies.isdisjoint(realtime) for policies in seen.values()), seen


@pytest.mark.skipif(os.geteuid() != 0, reason="SVT-AV1 asks for a real-time policy only when run by root")
def test_opening_an_svt_av1_encoder_never_gives_a_thread_real_time(tmp_path: Path) -> None:
    # In a fresh interpreter: the check of settings at start opens the encoder in the recorder.
    # Repairing after the fact is disabled, so a thread that got real-time at any point stays so.
    code = (
        "import os\n"
        "from operating_platform.dataset import realtime\n"
        "realtime.leave_realtime_scheduling = lambda: None\n"
        "from operating_platform.dataset.video import VideoSettings, VideoEncoder, probe_encoder\n"
        "import numpy as np\n"
        "probe_encoder(VideoSettings(vcodec='libsvtav1', preset='12', crf=30))\n"
        "print(sorted({os.sched_getscheduler(int(t)) for t in os.listdir('/proc/self/task')}))\n"
        "e = VideoEncoder('out.mp4', 64, 48, 30, VideoSettings(vcodec='libsvtav1', preset='12'))\n"
        "for _ in range(3): e.encode(np.zeros((48, 64, 3), np.uint8))\n"
        "print(sorted({os.sched_getscheduler(int(t)) for t in os.listdir('/proc/self/task')}))\n"
        "e.close()\n"
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    *policies, effective = proc.stdout.split()
    assert policies == [f"[{os.SCHED_OTHER}]"] * 2, proc.stdout
    # The opening thread got its capability back: only the encoder's threads went without it.
    own = Path("/proc/self/status").read_text().split("CapEff:")[1].split()[0]
    assert effective == own, (effective, own)
