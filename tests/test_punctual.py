"""Capture keeps its clock whatever the encoder; what it could not keep, and a slow encoder, are said.

The encoder process runs only on CPU time capture leaves (SCHED_IDLE); an encoder slower than
capture falls behind into the journal and the recorder says so, in one line, while the first
episode is still being recorded; skipped ticks are named per episode, for the whole session, and
on the status line.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import re
import signal
import time
from pathlib import Path

import numpy as np

from operating_platform.core.async_episode_saver import REPORT_FRAMES, EncoderPace
from operating_platform.core.record import Record, RecordConfig
from operating_platform.core.status import render
from operating_platform.robots import SimRobot, SimRobotConfig
from tests.conftest import FAST, child_pids, run_record, run_session, start_record, wait_for_line

# Three full-size cameras on SVT-AV1's preset 6: a few frames a second on a two-core machine,
# far below the 30 capture needs.
SLOW_SVT = [
    "--robot.num_cameras=3",
    "--robot.camera_width=640",
    "--robot.camera_height=480",
    "--record.vcodec=libsvtav1",
    "--record.preset=6",
    "--record.crf=30",
]
SLOW_WARNING = re.compile(
    r"The encoder \(libsvtav1 preset 6\) cannot keep up on this machine: it encodes ([\d.]+) frames/s, "
    r"capture makes 30\. Recording goes on; episodes wait in the journal \(it grows about [\d,]+ MB "
    r"per minute of recording\) and are encoded during resets and after the session\. To keep up, "
    r"record with a faster --record\.preset \(up to 12\) or --record\.vcodec=libx264$"
)


def _policies(pid: int) -> dict[int, int]:
    """Each thread's scheduling policy (stat field 41), by thread id."""
    found = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError):  # a thread may end while we look
                found[int(task.name)] = int(task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[38])
    return found


def test_the_encoder_runs_only_on_cpu_time_capture_leaves(tmp_path: Path) -> None:
    # SVT-AV1 starts threads of its own: every one of them must inherit the idle class.
    proc = start_record(
        *FAST,
        "--record.vcodec=libsvtav1",
        "--record.repo_id=lab/idle",
        f"--record.root={tmp_path / 'ds'}",
        "--record.num_episodes=3",
        "--record.episode_time_s=1.5",
    )
    seen: list[str] = []
    encoder_threads: dict[int, int] = {}
    recorder_threads: dict[int, int] = {}
    try:
        # From here the encoder process is past its start-up and has encoded an episode.
        wait_for_line(proc, r"Queued episode 0 ", seen, timeout=60)
        while proc.poll() is None:
            recorder_threads.update(_policies(proc.pid))
            for child in child_pids(proc.pid):
                encoder_threads.update(_policies(child))
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        out = "".join(seen) + proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    assert len(encoder_threads) > 1, encoder_threads  # its own threads, and the encoder's
    assert set(encoder_threads.values()) == {os.SCHED_IDLE}, encoder_threads
    assert set(recorder_threads.values()) == {os.SCHED_OTHER}, recorder_threads  # capture's among them


def test_an_encoder_that_cannot_keep_up_is_said_while_the_first_episode_is_recorded(tmp_path: Path) -> None:
    proc = start_record(
        *FAST,
        *SLOW_SVT,
        "--record.repo_id=lab/slow",
        f"--record.root={tmp_path / 'ds'}",
        "--record.num_episodes=1",
        "--record.episode_time_s=60",
    )
    seen: list[str] = []
    try:
        wait_for_line(proc, r"cannot keep up|Queued episode", seen, timeout=120)
    finally:
        proc.kill()  # what it has recorded is of no interest, and encoding it would take minutes
        proc.communicate(timeout=60)
    # Said before the episode ended, once, in one line that says what to do.
    said = [line for line in seen if "cannot keep up" in line]
    assert len(said) == 1 and "Queued episode" not in "".join(seen), "".join(seen)
    match = SLOW_WARNING.search(said[0].strip())
    assert match, said[0]
    assert 0 < float(match[1]) < 27, said[0]


def test_an_encoder_that_gets_no_cpu_at_all_is_said_once_far_behind(tmp_path: Path) -> None:
    # Stopped, it never reports progress: only its growing lag can tell.
    proc = start_record(
        *FAST,
        "--record.repo_id=lab/starved",
        f"--record.root={tmp_path / 'ds'}",
        "--record.num_episodes=1",
        "--record.episode_time_s=60",
    )
    seen: list[str] = []
    try:
        wait_for_line(proc, r"Recording episode 0", seen)
        deadline = time.monotonic() + 30
        while not child_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        (encoder,) = child_pids(proc.pid)
        os.kill(encoder, signal.SIGSTOP)
        try:
            wait_for_line(proc, r"cannot keep up|Queued episode", seen, timeout=120)
        finally:
            os.kill(encoder, signal.SIGCONT)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    said = seen[-1].strip()
    assert "Queued episode" not in "".join(seen), "".join(seen)
    assert said.startswith(
        "The encoder (libx264 preset ultrafast) cannot keep up on this machine: it is over 10 s "
        "behind capture, which makes 30 frames/s. Recording goes on; episodes wait in the journal "
        "(it grows up to"
    ), said
    assert said.endswith("To keep up, record with fewer or smaller cameras, or a lower --record.fps"), said


def test_an_encoder_that_keeps_up_is_never_said_slow(tmp_path: Path) -> None:
    proc = run_record(
        *FAST,
        "--record.repo_id=lab/fast",
        f"--record.root={tmp_path / 'ds'}",
        "--record.num_episodes=2",
        "--record.episode_time_s=2",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cannot keep up" not in proc.stdout, proc.stdout
    assert re.search(r"^Capture over 2 episode\(s\): 120 ticks, \d+ late, \d+ skipped", proc.stdout, re.M), (
        proc.stdout
    )


def test_skipped_ticks_are_said_per_episode_and_for_the_session(tmp_path: Path) -> None:
    proc = run_session(
        tmp_path / "ds",
        "--robot.type=stalling_sim",
        "--robot.stall_at=10",
        "--robot.stall_s=0.5",
        episodes=2,
        env={"DOROBOT_PLUGINS": "stalling_robot"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    episodes = re.findall(
        r"^Episode (\d) captured: 30 frames, \d+ late, (\d+) skipped ticks(.*)$", proc.stdout, re.M
    )
    assert [index for index, _, _ in episodes] == ["0", "1"], proc.stdout
    (_, skipped, rest), (_, skipped_after, rest_after) = episodes
    # The half-second read makes the clock skip about 14 ticks, in the first episode only.
    assert int(skipped) >= 5 and int(skipped_after) == 0, proc.stdout
    assert f"; {skipped} ticks skipped: a robot read or the machine was too slow" in rest, rest
    assert "stamped 1/30 s apart" in rest and ".dorobot/timing/" in rest, rest
    assert "ticks skipped" not in rest_after, rest_after
    closing = re.search(
        r"^Capture over 2 episode\(s\): 60 ticks, \d+ late, (\d+) skipped(.*)$", proc.stdout, re.M
    )
    assert closing, proc.stdout
    assert closing[1] == skipped and f"{skipped} ticks skipped" in closing[2], closing[0]


class _StallingSim(SimRobot):
    """The simulated arm, one of whose reads takes 0.4 s (not registered: tests share the registry)."""

    stall_at = 10

    def connect(self) -> None:
        super().connect()
        self.captured = 0

    def capture(self) -> dict[str, np.ndarray]:
        self.captured += 1
        if self.captured == self.stall_at:
            time.sleep(0.4)
        return super().capture()


def _slow_encoder_session(robot: SimRobot, root: Path) -> Record:
    """A recorder with 3 cameras at 640x480 on SVT-AV1 preset 6, an encoder slower than capture."""
    cfg = RecordConfig(
        repo_id="lab/slow", single_task="Pick", root=str(root), vcodec="libsvtav1", preset="6", crf=30
    )
    record = Record(fps=30, robot=robot, record_cfg=cfg)
    robot.connect()
    return record


def test_status_line_shows_the_sessions_skipped_ticks_and_the_encoders_lag(tmp_path: Path) -> None:
    robot = _StallingSim(SimRobotConfig(num_cameras=3, camera_width=640, camera_height=480))
    record = _slow_encoder_session(robot, tmp_path / "ds")
    record.start(max_frames=30)  # the stall makes it skip ticks
    while record.capturing:
        time.sleep(0.01)
    record.save()
    first = record.session_stats.missed_ticks
    assert first >= 5 and first == record.stats.missed_ticks
    record.start(max_frames=300)
    lines: list[str] = []
    lag = None
    while record.capturing and lag is None:
        time.sleep(0.25)
        lines.append(render(record, "REC", 1, 10, (2**30, 10.0)).plain)
        lag = re.search(r"encoder (\d+\.\d) s behind", lines[-1])
    behind = record.status().behind_frames
    record.discard()
    record.stop()
    robot.disconnect()
    assert lag is not None, lines  # seconds of frames waiting in the journal, shown as it grows
    assert float(lag[1]) >= 1 and behind >= 30, (lines[-1], behind)
    shown = re.search(r"(\d+) skipped, (\d+) this session", lines[-1])
    assert shown and int(shown[2]) == first + int(shown[1]), lines[-1]


def _in_memory(path: Path) -> float:
    """The fraction of a file's pages the page cache holds (mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vector = (ctypes.c_ubyte * pages)()
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        start = ctypes.c_char.from_buffer(mapped)
        try:
            if libc.mincore(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vector):
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            del start  # the mapping cannot close while a pointer into it exists
    return sum(v & 1 for v in vector) / pages


def test_frames_far_ahead_of_a_slow_encoder_leave_memory_for_the_disk(tmp_path: Path) -> None:
    # Kept in the page cache, a journal growing by 80 MB/s makes capture's own writes dearer.
    robot = SimRobot(SimRobotConfig(num_cameras=3, camera_width=640, camera_height=480))
    record = _slow_encoder_session(robot, tmp_path / "ds")
    record.start(max_frames=300)  # 10 segments of 30 frames
    while record.capturing:
        time.sleep(0.05)
    journal = record.dataset.episode_journal
    segments = sorted(journal.glob("observation.images.*/seg_*.raw"))
    in_memory: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reached = record.status().episodes[-1].encoded_frames // 30
            # More than its margin of two segments ahead of the encoder.
            far = [p for p in segments if int(p.stem.split("_")[1]) >= reached + 3 and p.exists()]
            if not far:
                break  # it caught up before they left memory
            in_memory = {f"{p.parent.name}/{p.name}": round(_in_memory(p), 2) for p in far}
            if all(fraction < 0.2 for fraction in in_memory.values()):
                break
            time.sleep(0.5)
    finally:
        record.discard()
        record.stop()
        robot.disconnect()
    assert in_memory and all(fraction < 0.2 for fraction in in_memory.values()), in_memory


def test_encoder_pace_counts_only_stretches_where_frames_waited() -> None:
    following = EncoderPace()
    for n in range(1, 40):  # keeping up: each report finds fewer frames waiting than a report's worth
        assert following.report(1, n * REPORT_FRAMES, n * 0.5, n * REPORT_FRAMES + 10) is None
    assert following.fps is None
    behind = EncoderPace()
    measured = [
        behind.report(1, n * REPORT_FRAMES, 1.0 + n * 1.5, 30 * (1.0 + n * 1.5))  # 10 frames/s
        for n in range(1, 8)
    ]
    assert measured[0] is None  # not yet two seconds of it
    assert [round(m, 6) for m in measured[2:]] == [10.0] * 5 and behind.fps == 10.0
    # A new encode starts by opening its encoders: its first report measures nothing.
    assert behind.report(2, REPORT_FRAMES, 20.0, 300) is None
