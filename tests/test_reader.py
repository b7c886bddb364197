"""`DatasetReader` reads the same episodes out of both LeRobot layouts: the reference datasets
LeRobot wrote itself, and a dataset this program recorded from the (deterministic) sim robot."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from operating_platform.dataset.metadata import DatasetError
from operating_platform.dataset.reader import DatasetReader, VideoSegment
from operating_platform.robots import make_robot
from operating_platform.robots.sim import SimRobotConfig
from tests.conftest import REFERENCE, REFERENCE_V3, run_session

CAM = "observation.images.cam"
V3_VIDEO = REFERENCE_V3 / "videos" / CAM / "chunk-000" / "file-000.mp4"


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    return dst


def _fingerprint(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _edit_info(root: Path, **changes: object) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    info.update(changes)
    path.write_text(json.dumps(info, indent=4))


# -- the reference datasets --------------------------------------------------------------------------


@pytest.mark.parametrize("root", [REFERENCE, REFERENCE_V3], ids=["v2.1", "v3.0"])
def test_reference_metadata(root: Path) -> None:
    reader = DatasetReader.open(root)
    assert reader.codebase_version == root.name.rsplit("-", 2)[1]
    assert reader.fps == 30
    assert reader.total_episodes == 2 and reader.total_frames == 40
    assert reader.tasks == ["pick the cube"]
    assert reader.video_keys == [CAM]
    assert list(reader.features)[:3] == ["action", "observation.state", CAM]
    for index in range(2):
        entry = reader.episode(index)
        assert (entry.index, entry.length, entry.tasks) == (index, 20, ["pick the cube"])
        assert entry.stats["episode_index"]["min"] == [index]
        assert entry.stats["index"]["max"] == [20 * index + 19]
        assert entry.stats[CAM]["count"] == [20]
        assert np.asarray(entry.stats[CAM]["mean"]).shape == (3, 1, 1)


def test_reference_v21_stats_are_the_files() -> None:
    reader = DatasetReader.open(REFERENCE)
    lines = (REFERENCE / "meta/episodes_stats.jsonl").read_text().splitlines()
    for index, line in enumerate(lines):
        assert reader.episode(index).stats == json.loads(line)["stats"]
        assert set(reader.episode(index).stats["action"]) == {"min", "max", "mean", "std", "count"}


def test_reference_v30_stats_are_the_files() -> None:
    reader = DatasetReader.open(REFERENCE_V3)
    table = pq.read_table(REFERENCE_V3 / "meta/episodes/chunk-000/file-000.parquet")
    stats = reader.episode(1).stats
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert stats["action"]["q50"] == table.column("stats/action/q50").to_pylist()[1]
    assert stats[CAM]["max"] == table.column(f"stats/{CAM}/max").to_pylist()[1]
    assert set(stats) == set(reader.features)


@pytest.mark.parametrize("root", [REFERENCE, REFERENCE_V3], ids=["v2.1", "v3.0"])
def test_reference_episode_tables(root: Path) -> None:
    reader = DatasetReader.open(root)
    for index in range(2):
        table = reader.episode_table(index)
        assert table.num_rows == 20
        assert table.column("episode_index").to_pylist() == [index] * 20
        assert table.column("frame_index").to_pylist() == list(range(20))
        assert table.column("index").to_pylist() == list(range(20 * index, 20 * index + 20))
        stored = pq.ParquetFile(next((root / "data").rglob("*.parquet"))).schema_arrow
        assert table.schema.equals(stored, check_metadata=True)


def test_both_layouts_give_the_same_rows() -> None:
    v21, v30 = DatasetReader.open(REFERENCE), DatasetReader.open(REFERENCE_V3)
    for index in range(2):
        ours, theirs = v21.episode_table(index), v30.episode_table(index)
        for column in ("action", "observation.state", "timestamp", "index"):
            assert ours.column(column).to_pylist() == theirs.column(column).to_pylist(), column


def test_reference_v21_segments_and_frames() -> None:
    reader = DatasetReader.open(REFERENCE)
    for index in range(2):
        path = REFERENCE / f"videos/chunk-000/{CAM}/episode_{index:06d}.mp4"
        assert reader.video_segment(index, CAM) == VideoSegment(path, 0.0, 20 / 30)
        frames = list(reader.frames(index, CAM))
        direct = _decode(path)
        assert len(frames) == len(direct) == 20
        for ours, theirs in zip(frames, direct, strict=True):
            assert ours.shape == (48, 64, 3) and ours.dtype == np.uint8
            assert np.array_equal(ours, theirs)


def test_reference_v30_segments_and_frames() -> None:
    reader = DatasetReader.open(REFERENCE_V3)
    direct = _decode(V3_VIDEO)
    assert len(direct) == 40  # both episodes in one file
    for index in range(2):
        segment = reader.video_segment(index, CAM)
        assert segment.path == V3_VIDEO
        assert segment.from_timestamp == pytest.approx(index * 20 / 30)
        assert segment.to_timestamp == pytest.approx((index + 1) * 20 / 30)
        frames = list(reader.frames(index, CAM))
        assert len(frames) == 20
        for ours, theirs in zip(frames, direct[20 * index : 20 * index + 20], strict=True):
            assert _psnr(ours, theirs) > 45
    # The second episode is the second half of the file, not the first again.
    second = list(reader.frames(1, CAM))
    assert not np.array_equal(second[0], direct[0])


def test_both_layouts_give_the_same_frames() -> None:
    v21, v30 = DatasetReader.open(REFERENCE), DatasetReader.open(REFERENCE_V3)
    for index in range(2):
        ours, theirs = list(v21.frames(index, CAM)), list(v30.frames(index, CAM))
        psnrs = [_psnr(a, b) for a, b in zip(ours, theirs, strict=True)]
        assert min(psnrs) > 30, psnrs


@pytest.mark.parametrize("root", [REFERENCE, REFERENCE_V3], ids=["v2.1", "v3.0"])
def test_reading_changes_nothing(root: Path, tmp_path: Path) -> None:
    copy = _copy(root, tmp_path / "ds")
    before = _fingerprint(copy)
    reader = DatasetReader.open(copy)
    for index in range(reader.total_episodes):
        reader.episode_table(index)
        list(reader.frames(index, CAM))
    assert _fingerprint(copy) == before


# -- only what info.json counts ----------------------------------------------------------------------


def test_v21_rows_past_info_are_ignored(tmp_path: Path) -> None:
    copy = _copy(REFERENCE, tmp_path / "ds")
    # As a commit interrupted before info.json: episode 1 listed, info.json counting one episode.
    _edit_info(copy, total_episodes=1, total_frames=20, splits={"train": "0:1"})
    with (copy / "meta/tasks.jsonl").open("a") as f:
        f.write(json.dumps({"task_index": 1, "task": "an uncounted task"}) + "\n")
    reader = DatasetReader.open(copy)
    assert reader.total_episodes == 1 and reader.total_frames == 20
    assert reader.tasks == ["pick the cube"]
    assert reader.episode(0).length == 20
    with pytest.raises(IndexError, match="episode 1 is not in"):
        reader.episode(1)
    with pytest.raises(IndexError):
        list(reader.frames(1, CAM))


def test_v30_rows_past_info_are_ignored(tmp_path: Path) -> None:
    copy = _copy(REFERENCE_V3, tmp_path / "ds")
    _edit_info(copy, total_episodes=1, total_frames=20, splits={"train": "0:1"})
    reader = DatasetReader.open(copy)
    assert reader.total_episodes == 1
    assert reader.episode_table(0).num_rows == 20  # the file's other episode is not part of it
    assert len(list(reader.frames(0, CAM))) == 20
    with pytest.raises(IndexError):
        reader.video_segment(1, CAM)


# -- what it refuses ---------------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as exc:
        DatasetReader.open(tmp_path)
    assert "is not a dataset" in _one_line(exc) and "meta/info.json" in _one_line(exc)


def test_unsupported_version(tmp_path: Path) -> None:
    copy = _copy(REFERENCE, tmp_path / "ds")
    _edit_info(copy, codebase_version="v2.0")
    with pytest.raises(DatasetError) as exc:
        DatasetReader.open(copy)
    assert "v2.0" in _one_line(exc) and "v2.1 and v3.0" in _one_line(exc)


def test_episode_info_counts_but_does_not_list(tmp_path: Path) -> None:
    copy = _copy(REFERENCE, tmp_path / "ds")
    _edit_info(copy, total_episodes=3, total_frames=60)
    with pytest.raises(DatasetError) as exc:
        DatasetReader.open(copy)
    assert "episode 2" in _one_line(exc)


def test_frames_of_a_missing_video(tmp_path: Path) -> None:
    copy = _copy(REFERENCE_V3, tmp_path / "ds")
    (copy / "videos" / CAM / "chunk-000" / "file-000.mp4").unlink()
    reader = DatasetReader.open(copy)
    with pytest.raises(DatasetError) as exc:
        list(reader.frames(0, CAM))
    assert "missing" in _one_line(exc)


def test_frames_of_a_short_video(tmp_path: Path) -> None:
    copy = _copy(REFERENCE, tmp_path / "ds")
    _edit_info(copy, total_frames=41)
    lines = (copy / "meta/episodes.jsonl").read_text().splitlines()
    lines[1] = json.dumps({"episode_index": 1, "tasks": ["pick the cube"], "length": 21})
    (copy / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    reader = DatasetReader.open(copy)
    with pytest.raises(DatasetError, match="has 20 frames of episode 1"):
        list(reader.frames(1, CAM))
    with pytest.raises(DatasetError, match="holds 20 rows of episode 1"):
        reader.episode_table(1)


def test_unknown_camera() -> None:
    reader = DatasetReader.open(REFERENCE)
    with pytest.raises(KeyError, match=r"its cameras: observation\.images\.cam"):
        reader.video_segment(0, "observation.state")


# -- a dataset this program recorded ----------------------------------------------------------------


@pytest.fixture(scope="module", params=["v2.1", "v3.0"])
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("recorded") / "ds"
    # Lossless-ish encoding: each decoded frame is then closer to its own capture than to any
    # other, although consecutive sim frames differ little at this size.
    done = run_session(root, "--record.crf=0", f"--record.format={request.param}", episodes=2)
    assert done.returncode == 0, done.stdout + done.stderr
    return root, request.param


def _sim_captures(count: int) -> list[dict[str, np.ndarray]]:
    """What the sim robot of the FAST flags captures, tick by tick, from its connection on."""
    robot = make_robot(SimRobotConfig(camera_width=160, camera_height=120))
    robot.open()
    try:
        return [robot.capture() for _ in range(count)]
    finally:
        robot.close()


def test_recorded_dataset_reads_back_what_was_captured(recorded: tuple[Path, str]) -> None:
    root, layout = recorded
    reader = DatasetReader.open(root)
    assert reader.codebase_version == layout
    assert reader.total_episodes == 2
    assert [reader.episode(i).length for i in range(2)] == [30, 30]
    assert reader.tasks == ["Pick the cube"]
    assert reader.video_keys == ["observation.images.image_top", "observation.images.image_wrist"]
    captures = _sim_captures(120)
    actions = np.stack([c["action"] for c in captures])
    for index in range(2):
        table = reader.episode_table(index)
        assert table.num_rows == 30
        # Each row's action is exactly the one the robot gave at some tick: find that tick.
        rows = np.array(table.column("action").to_pylist(), np.float32)
        ticks = [int(np.flatnonzero((actions == row).all(axis=1))[0]) for row in rows]
        assert ticks == sorted(ticks) and len(set(ticks)) == 30, ticks
        for key in reader.video_keys:
            frames = list(reader.frames(index, key))
            assert len(frames) == 30
            for frame, tick in zip(frames, ticks, strict=True):
                # The frame captured at that tick, within codec error, and none of the ones around it.
                nearby = range(max(0, tick - 5), tick + 6)
                psnr = {other: _psnr(frame, captures[other][key]) for other in nearby}
                assert psnr[tick] > 28 and max(psnr, key=psnr.__getitem__) == tick, (key, tick, psnr)
