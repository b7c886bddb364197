"""The true time of every frame: per-stream age and repeats in the timing file, and a stream
that falls silent stopping the episode with its name, the frames before it kept."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq

from operating_platform.core import status
from operating_platform.core.record import CaptureStats
from tests.conftest import FAST, assert_valid, episode_lengths, error_lines, run_record

CAMERA = "observation.images.image_top"
STREAMING = ["--robot.type=streaming_sim", *FAST[1:], "--record.repo_id=lab/streams"]
ENV = {"DOROBOT_PLUGINS": "streaming_robot"}


def _timing(root: Path, episode: int) -> dict[str, np.ndarray]:
    table = pq.read_table(root / ".dorobot" / "timing" / f"episode_{episode:06d}.parquet")
    return {name: table.column(name).to_numpy() for name in table.column_names}


def test_timing_file_keeps_each_streams_age_and_repeated_frames(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    flags = [f"--record.root={root}", "--record.num_episodes=2", "--record.episode_time_s=1"]
    done = run_record(*STREAMING, *flags, "--robot.repeat_every=3", env=ENV)
    assert done.returncode == 0, done.stderr
    assert_valid(root, episodes=2)
    output = done.stdout + done.stderr
    for episode, length in enumerate(episode_lengths(root)):
        t = _timing(root, episode)
        assert len(t["frame_index"]) == length == 30
        np.testing.assert_allclose(t["timestamp"], np.arange(length) / 30, atol=1e-6)
        assert np.all(np.diff(t["capture_time"]) > 0)  # the wall-clock time of each read
        seq = t[f"{CAMERA}.seq"]
        # The camera sends a new message every third tick; the tick numbers run on across episodes.
        first_tick = 0 if episode == 0 else 30
        assert np.array_equal(seq, (np.arange(length) + first_tick) // 3)
        expected = np.concatenate([[False], seq[1:] == seq[:-1]])
        assert np.array_equal(t[f"{CAMERA}.repeated"], expected)
        assert expected.sum() >= 19
        assert not t["observation.state.repeated"].any()
        assert np.all(t[f"{CAMERA}.age_s"] >= 0) and np.all(t["observation.state.age_s"] >= 0)
        # A repeated frame is older than the fresh one it repeats: at least a tick, at 30 fps.
        assert np.median(t[f"{CAMERA}.age_s"][expected]) > 0.02
        line = re.search(rf"Episode {episode} captured: .*image_top (\d+) repeated", output)
        assert line and int(line.group(1)) == expected.sum(), output


def test_a_stream_falling_silent_stops_the_episode_and_keeps_its_frames(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    flags = [f"--record.root={root}", "--record.num_episodes=3", "--record.episode_time_s=3"]
    flags += ["--robot.silent_after=40", "--robot.stale_timeout_s=0.5"]
    done = run_record(*STREAMING, *flags, env=ENV)
    assert done.returncode == 1, done.stderr
    (error,) = error_lines(done.stderr)
    assert "image_top" in error and "--robot.stale_timeout_s=0.5" in error, error
    assert "frames before it are saved" in error
    assert_valid(root, episodes=1)
    (length,) = episode_lengths(root)
    # Frames up to the moment the camera had been silent for half a second: 40 + about 15.
    assert 40 < length < 90
    t = _timing(root, 0)
    assert t[f"{CAMERA}.age_s"].max() <= 0.5
    assert t[f"{CAMERA}.repeated"][41:].all()  # the frozen camera's frames, each one flagged


def test_status_line_shows_repeated_frames_and_worst_age_per_stream() -> None:
    stats = CaptureStats(30, ["observation.state", CAMERA])
    stats.stream_frame(np.array([0.001, 0.040]), np.array([False, True]))
    stats.stream_frame(np.array([0.002, 0.075]), np.array([False, True]))
    record = SimpleNamespace(
        fps=30,
        stats=stats,
        session_missed_ticks=0,
        episode_frames=2,
        status=lambda: None,
        halted=None,
        task="Pick",
    )
    line = status.render(record, "REC", 0, None, (2**30, 10.0)).plain
    assert "observation.state 0/2 ms" in line and "image_top 2/75 ms" in line, line
