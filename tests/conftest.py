"""Shared helpers: run the real program as a subprocess and check datasets with the verifier."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from operating_platform.dataset.verify import verify_dataset

# Written by LeRobot itself (0.3.3 and 0.4.4): 2 episodes of 20 frames, one 64x48 camera.
REFERENCE = Path(__file__).resolve().parent / "reference" / "lerobot-0.3.3-v2.1-sample"
REFERENCE_V3 = Path(__file__).resolve().parent / "reference" / "lerobot-0.4.4-v3.0-sample"
PLUGINS_DIR = Path(__file__).resolve().parent / "plugins"

# Started from a script's background job, the suite inherits SIGINT ignored, and so would every
# program it starts (an ignored signal survives exec): the tests send Ctrl-C as a terminal does,
# to programs started as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Small, fast sessions: the tests check behaviour, not throughput.
FAST = [
    "--robot.type=sim",
    "--robot.camera_width=160",
    "--robot.camera_height=120",
    "--record.single_task=Pick the cube",
    "--record.reset_time_s=0",
]


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that still run (none if it is gone)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _real_time_threads() -> list[int]:
    """This process's threads under a real-time scheduling policy."""
    found = []
    for task in Path("/proc/self/task").iterdir():
        try:
            if os.sched_getscheduler(int(task.name)) in (os.SCHED_FIFO, os.SCHED_RR):
                found.append(int(task.name))
        except OSError:  # the thread ended meanwhile
            continue
    return found


@pytest.fixture(autouse=True)
def _test_process_stays_off_real_time() -> Iterator[None]:
    """Fail the test that leaves the test process under a real-time policy (SVT-AV1 opened here
    by root does it): every recorder started afterwards would inherit SCHED_FIFO and, spinning,
    hold both cores until nothing else runs, this process included."""
    yield
    if leaked := _real_time_threads():
        for tid in leaked:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        pytest.fail(f"threads {leaked} of the test process were left under a real-time policy")


def run_record(
    *flags: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `python -m operating_platform.core.main` with `flags`; returns the finished process."""
    full_env = {**os.environ, "PYTHONPATH": str(PLUGINS_DIR), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "operating_platform.core.main", *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def run_session(root: Path, *flags: str, episodes: int = 3, env: dict[str, str] | None = None):
    """A timed session of `episodes` one-second episodes into `root`, on the small sim robot."""
    return run_record(
        *FAST,
        "--record.repo_id=lab/session",
        f"--record.root={root}",
        f"--record.num_episodes={episodes}",
        "--record.episode_time_s=1",
        *flags,
        env=env,
    )


# Three full-size cameras on x264's slowest preset: encoding cannot keep up with capture, so
# saves are still pending when a session ends.
SLOW_ENCODING = [
    "--robot.num_cameras=3",
    "--robot.camera_width=640",
    "--robot.camera_height=480",
    "--record.preset=veryslow",
]
QUEUED = re.compile(r"Queued episode (\d+) \(queue_pos=\d+, frames=(\d+)")


def queued_episodes(output: str) -> dict[int, int]:
    """Episode index -> frames, for every save the recorder announced in `output`."""
    return {int(i): int(f) for i, f in QUEUED.findall(output)}


def start_record(*flags: str) -> subprocess.Popen:
    """Start the recorder in the background, its output readable line by line."""
    return subprocess.Popen(
        [sys.executable, "-m", "operating_platform.core.main", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PLUGINS_DIR)},
    )


def wait_for_line(proc: subprocess.Popen, pattern: str, seen: list[str], timeout: float = 60) -> None:
    """Read the process's output into `seen` until a line matches `pattern`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if re.search(pattern, line):
            return
    raise AssertionError(f"{pattern!r} never printed:\n{''.join(seen)}")


def error_lines(stderr: str) -> list[str]:
    """The non-blank lines a run printed on stderr (each should be one `error:` line)."""
    return [line for line in stderr.splitlines() if line.strip()]


def run_recover(root: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "recover", str(root), *flags],
        capture_output=True,
        text=True,
        timeout=300,
    )


def episode_lengths(root: Path) -> list[int]:
    """Every episode's length as meta/ lists it, in either layout (read here, not by our code)."""
    path = root / "meta" / "episodes.jsonl"
    if path.exists():
        return [json.loads(line)["length"] for line in path.read_text().splitlines()]
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    return [length for f in files for length in pq.read_table(f, columns=["length"]).column(0).to_pylist()]


def assert_valid(root: Path, episodes: int | None = None) -> None:
    """The dataset verifies, and (when ours) every episode has its timing file, one row a frame."""
    report = verify_dataset(root)
    assert report.ok, "\n".join(report.problems)
    if episodes is not None:
        assert report.episodes == episodes
    if (root / ".dorobot").exists():
        timing = root / ".dorobot" / "timing"
        lengths = episode_lengths(root)
        found = sorted(p.name for p in timing.glob("*.parquet")) if timing.exists() else []
        assert found == [f"episode_{i:06d}.parquet" for i in range(len(lengths))], found
        for i, length in enumerate(lengths):
            table = pq.read_table(timing / f"episode_{i:06d}.parquet")
            assert table.column("frame_index").to_pylist() == list(range(length))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MB tmpfs, as a disk that can fill up or be made read-only."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture(scope="session")
def reference_root() -> Path:
    return REFERENCE


class Tmux:
    """A tmux server of one test's own (`tmux -L NAME`).

    Tests share no server: on the default one, a test killing its last session makes the
    server exit while the next test's `new-session` is connecting to it ("server exited
    unexpectedly")."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: str) -> str:
        cmd = ["tmux", "-L", self.name, *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(f"dorobot-{os.getpid()}-{tmp_path.name}")
    yield server
    server.kill()
