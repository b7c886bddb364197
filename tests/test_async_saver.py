"""The background saver: nothing waits, nothing is dropped, the order and indices hold."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from operating_platform.core.record import Record, RecordConfig
from operating_platform.robots import SimRobotConfig, make_robot
from tests.conftest import SLOW_ENCODING, assert_valid, run_session


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _small_record(root: Path, **cfg) -> Record:
    robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48, seed=5))
    config = RecordConfig(repo_id="lab/async", single_task="Pick the cube", root=str(root), **cfg)
    record = Record(fps=30, robot=robot, record_cfg=config)
    robot.connect()
    return record


def test_rapid_saves_all_land_once_in_order(tmp_path: Path) -> None:
    record = _small_record(tmp_path / "ds")
    metas = []
    for n in range(20):
        record.start(max_frames=3 + n % 4)
        while record.capturing:
            time.sleep(0.002)
        metas.append(record.save())
    stats = record.stop()
    assert [m.episode_index for m in metas] == list(range(20))
    assert all(m.queued for m in metas)
    assert (stats.queued, stats.completed, stats.failed) == (20, 20, 0)
    assert_valid(tmp_path / "ds", episodes=20)
    lengths = [ep["length"] for ep in _jsonl(tmp_path / "ds/meta/episodes.jsonl")]
    assert lengths == [m.frames for m in metas] == [3 + n % 4 for n in range(20)]
    assert not list((tmp_path / "ds/.dorobot/journal").iterdir())


def test_status_tracks_every_episode(tmp_path: Path) -> None:
    record = _small_record(tmp_path / "ds")
    for _ in range(3):
        record.start(max_frames=5)
        while record.capturing:
            time.sleep(0.002)
        record.save()
    record.stop()
    status = record.status()
    assert (status.pending, status.encoding, status.completed, status.failed) == (0, 0, 3, 0)
    assert [(p.episode_index, p.frames, p.encoded_frames) for p in status.episodes] == [
        (i, 5, 5) for i in range(3)
    ]


def test_discard_while_encoding_reuses_the_index(tmp_path: Path) -> None:
    record = _small_record(tmp_path / "ds")
    record.start(max_frames=10)
    while record.capturing:
        time.sleep(0.002)
    assert record.save().episode_index == 0
    record.start()
    time.sleep(0.3)  # the encoder is following this episode when it is discarded
    assert record.discard() > 0
    record.start(max_frames=4)
    while record.capturing:
        time.sleep(0.002)
    assert record.save().episode_index == 1
    record.stop()
    assert_valid(tmp_path / "ds", episodes=2)
    assert [ep["length"] for ep in _jsonl(tmp_path / "ds/meta/episodes.jsonl")] == [10, 4]
    assert not list((tmp_path / "ds/.dorobot/staging").iterdir())


def test_sync_and_async_give_identical_datasets(tmp_path: Path) -> None:
    for mode in ("true", "false"):
        proc = run_session(tmp_path / mode, "--robot.seed=7", f"--record.use_async_save={mode}")
        assert proc.returncode == 0, proc.stderr
        assert_valid(tmp_path / mode, episodes=3)
    assert "Queued episode" in _session_log(tmp_path / "true")
    assert "Queued episode" not in _session_log(tmp_path / "false")
    files = sorted(p.relative_to(tmp_path / "true") for p in (tmp_path / "true").rglob("*"))
    # The recorder's own files (timing, logs) hold wall-clock times; the dataset's must not differ.
    compared = [f for f in files if f.suffix in (".parquet", ".json", ".jsonl") and f.parts[0] != ".dorobot"]
    assert len(compared) == 3 + 4
    for rel in compared:
        assert (tmp_path / "true" / rel).read_bytes() == (tmp_path / "false" / rel).read_bytes(), rel
    for mode in ("true", "false"):
        assert len(list((tmp_path / mode / ".dorobot/timing").glob("episode_*.parquet"))) == 3


def _session_log(root: Path) -> str:
    return "".join(p.read_text() for p in (root / ".dorobot/logs").glob("*.log"))


def test_exit_with_saves_pending_waits_and_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = run_session(root, *SLOW_ENCODING)
    assert proc.returncode == 0, proc.stderr
    assert "Waiting for" in proc.stdout and "pending saves" in proc.stdout
    assert "Save stats: queued=3 completed=3 failed=0" in proc.stdout
    assert_valid(root, episodes=3)
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == 90


def test_injected_encoder_failure_is_retried(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = run_session(root, env={"DOROBOT_INJECT_FAULTS": "encode:1:1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "✗ Episode 1 failed (attempt 1): InjectedFault" in out and "retrying in 2s" in out
    assert "✓ Episode 1 saved successfully" in out
    assert "Save stats: queued=3 completed=3 failed=0" in out
    assert_valid(root, episodes=3)


def test_encoder_process_crash_is_retried(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = run_session(root, env={"DOROBOT_INJECT_FAULTS": "crash:0:1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the encoder process died (killed by signal 9)" in proc.stdout
    assert_valid(root, episodes=3)


def test_permanent_failure_sets_the_episode_aside_without_a_gap(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = run_session(root, "--record.async_save_max_retries=1", env={"DOROBOT_INJECT_FAULTS": "encode:1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "could not be saved after 2 attempts" in proc.stdout
    assert "Save stats: queued=3 completed=2 failed=1" in proc.stdout
    assert_valid(root, episodes=2)
    # The episode after the failed one took its index; the failed one is kept whole.
    second = pq.read_table(root / "data/chunk-000/episode_000001.parquet").to_pydict()
    assert set(second["episode_index"]) == {1} and second["index"][0] == 30
    (failed,) = (root / ".dorobot/failed").iterdir()
    assert "InjectedFault" in (failed / "error.txt").read_text()
    assert json.loads((failed / "closed.json").read_text())["frames"] == 30
    assert (failed / "rows.log").stat().st_size == 30 * 72


def test_full_queue_waits_and_never_drops(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = run_session(root, *SLOW_ENCODING, "--record.async_save_queue_size=1", episodes=4)
    assert proc.returncode == 0, proc.stderr
    assert "Save queue full (1 episodes waiting): waiting for a free slot" in proc.stdout
    assert "Save stats: queued=4 completed=4 failed=0" in proc.stdout
    assert_valid(root, episodes=4)


@pytest.mark.parametrize("use_async", [True, False])
def test_save_returns_episode_metadata(tmp_path: Path, use_async: bool) -> None:
    record = _small_record(tmp_path / "ds", use_async_save=use_async)
    record.start(max_frames=6)
    while record.capturing:
        time.sleep(0.002)
    meta = record.save()
    record.stop()
    assert (meta.episode_index, meta.frames, meta.queued) == (0, 6, use_async)
    assert_valid(tmp_path / "ds", episodes=1)
