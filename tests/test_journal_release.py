"""Raw frames leave the journal once their encoded form is durable, and nothing is lost by it:
an encoder that dies mid-episode leaves enough to rebuild the episode exactly."""

from __future__ import annotations

import time
from pathlib import Path

from operating_platform.core.record import Record, RecordConfig
from operating_platform.dataset.journal import JournalReader
from operating_platform.robots import SimRobotConfig, make_robot
from tests.conftest import FAST, assert_valid, run_record


def test_journal_holds_only_the_encoders_lag(tmp_path: Path) -> None:
    robot = make_robot(SimRobotConfig(camera_width=160, camera_height=120))
    cfg = RecordConfig(repo_id="lab/release", single_task="t", root=str(tmp_path / "ds"))
    record = Record(fps=30, robot=robot, record_cfg=cfg)
    robot.connect()
    record.start(max_frames=150)  # 5 segments of 30 frames
    journal = JournalReader(record.dataset.episode_journal)
    deadline = time.monotonic() + 60
    released = 0
    while time.monotonic() < deadline and released < 120:
        released = journal.released_frames()
        time.sleep(0.05)
    # While the episode is still open, its first four segments are already gone.
    assert released >= 120
    segments = sorted(p.name for p in (journal.path / "observation.images.image_top").iterdir())
    assert segments == ["seg_000004.raw"]
    while record.capturing:
        time.sleep(0.02)
    assert record.save().frames == 150
    record.stop()
    assert_valid(tmp_path / "ds", episodes=1)


def _session(root: Path, env: dict | None = None):
    return run_record(
        *FAST,
        "--robot.seed=3",
        "--record.repo_id=lab/release",
        f"--record.root={root}",
        "--record.num_episodes=2",  # the encoder dies in the last one, 75 frames in
        "--record.episode_time_s=3",
        env=env,
    )


def test_encoder_dying_mid_episode_is_rebuilt_exactly(tmp_path: Path) -> None:
    clean = _session(tmp_path / "clean")
    crashed = _session(tmp_path / "crashed", env={"DOROBOT_INJECT_CRASH": "1:75"})
    assert clean.returncode == 0 and crashed.returncode == 0, crashed.stdout + crashed.stderr
    assert "the encoder process died" in crashed.stdout and "✓ Episode 1 saved" in crashed.stdout
    assert_valid(tmp_path / "crashed", episodes=2)
    # Same frames, same statistics (the released frames' stats came back from the staging log).
    for name in ("meta/episodes.jsonl", "meta/episodes_stats.jsonl", "data/chunk-000/episode_000001.parquet"):
        assert (tmp_path / "clean" / name).read_bytes() == (tmp_path / "crashed" / name).read_bytes(), name
