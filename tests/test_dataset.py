"""Recording into a dataset: resuming, refusing to overwrite, refusing bad frames without losing any."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from operating_platform.dataset.dorobot_dataset import DatasetError, DoRobotDataset
from operating_platform.dataset.features import FrameError
from operating_platform.robots import SimRobotConfig, make_robot
from tests.conftest import FAST, assert_valid, run_record


def _snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".lock"  # lock files hold the pid of whoever last locked
    }


def _info(root: Path) -> dict:
    return json.loads((root / "meta/info.json").read_text())


def _record_into(root: Path, *flags: str, episodes: int = 1):
    return run_record(
        *FAST,
        "--record.repo_id=lab/resume",
        f"--record.root={root}",
        f"--record.num_episodes={episodes}",
        "--record.episode_time_s=1",
        *flags,
    )


@pytest.fixture
def one_episode(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    proc = _record_into(root)
    assert proc.returncode == 0, proc.stderr
    return root


def test_existing_dataset_is_never_overwritten(one_episode: Path) -> None:
    before = _snapshot(one_episode)
    proc = _record_into(one_episode)
    assert proc.returncode == 1
    assert "--record.resume=true" in proc.stderr and "Traceback" not in proc.stderr
    assert _snapshot(one_episode) == before


def test_resume_appends_with_contiguous_indices(one_episode: Path) -> None:
    first_length = _info(one_episode)["total_frames"]
    proc = _record_into(one_episode, "--record.resume=true", episodes=2)
    assert proc.returncode == 0, proc.stderr
    assert_valid(one_episode, episodes=3)
    info = _info(one_episode)
    assert info["total_episodes"] == 3 and info["total_tasks"] == 1
    second = pq.read_table(one_episode / "data/chunk-000/episode_000001.parquet").to_pydict()
    assert second["index"][0] == first_length
    assert set(second["episode_index"]) == {1}


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("--record.fps=15", "fps"),
        ("--robot.num_cameras=1", "features"),
        ("--robot.camera_width=320", "gives 320x120 images, the dataset's are 160x120"),
        (
            "--record.vcodec=libsvtav1",
            "--record.vcodec=libsvtav1 writes av1 videos, but its observation.images.image_top videos "
            "are h264; pass --record.vcodec=libx264",
        ),
    ],
)
def test_resume_refuses_a_different_setup(one_episode: Path, flag: str, named: str) -> None:
    before = _snapshot(one_episode)
    proc = _record_into(one_episode, "--record.resume=true", flag)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0] and "cannot resume" in lines[0], proc.stderr
    assert _snapshot(one_episode) == before


def test_resume_refuses_videos_of_another_pixel_format(one_episode: Path) -> None:
    # As a dataset written by another tool could be: new episodes would contradict info.json.
    info_path = one_episode / "meta/info.json"
    info = _info(one_episode)
    info["features"]["observation.images.image_top"]["info"]["video.pix_fmt"] = "yuv444p"
    info_path.write_text(json.dumps(info, indent=4))
    before = _snapshot(one_episode)
    proc = _record_into(one_episode, "--record.resume=true")
    assert proc.returncode == 1
    assert "videos are yuv444p, this recorder writes yuv420p" in proc.stderr, proc.stderr
    assert _snapshot(one_episode) == before


def test_resume_refuses_damaged_info_json(one_episode: Path) -> None:
    info = one_episode / "meta/info.json"
    info.write_text(info.read_text()[:100])
    before = _snapshot(one_episode)
    proc = _record_into(one_episode, "--record.resume=true")
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "damaged metadata" in lines[0]
    assert _snapshot(one_episode) == before


@pytest.mark.parametrize(
    ("fault", "named"),
    [("nan", "observation.state"), ("shape", "action"), ("dtype", "observation.images.image_top")],
)
def test_bad_frame_stops_recording_and_keeps_every_frame_before_it(
    tmp_path: Path, fault: str, named: str
) -> None:
    root = tmp_path / "ds"
    proc = run_record(
        *FAST,
        "--robot.type=faulty_sim",
        f"--robot.fault={fault}",
        "--robot.fail_at=40",
        "--robot.camera_width=160",
        "--robot.camera_height=120",
        "--record.repo_id=lab/faulty",
        f"--record.root={root}",
        "--record.num_episodes=5",
        "--record.episode_time_s=1",
        env={"DOROBOT_PLUGINS": "faulty_robot"},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"'{named}'" in proc.stderr and "Traceback" not in proc.stderr
    assert_valid(root)
    # No reset time: every tick before the bad frame was captured, and every one of them is kept.
    assert _info(root)["total_frames"] == 40
    assert _info(root)["total_episodes"] == 2


def _sim_dataset(tmp_path: Path) -> tuple[DoRobotDataset, object]:
    robot = make_robot(SimRobotConfig(camera_width=64, camera_height=48, seed=3))
    robot.connect()
    ds = DoRobotDataset.create("lab/unit", tmp_path / "ds", 30, robot.robot_type, robot.features)
    return ds, robot


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda f: f.__setitem__("action", f["action"].astype(np.float64)), "action"),
        (lambda f: f.__setitem__("observation.state", np.full(6, np.inf, np.float32)), "observation.state"),
        (
            lambda f: f.__setitem__("observation.images.image_wrist", np.zeros((48, 64), np.uint8)),
            "observation.images.image_wrist",
        ),
        (lambda f: f.pop("observation.images.image_top"), "observation.images.image_top"),
        (lambda f: f.__setitem__("observation.extra", np.zeros(1, np.float32)), "observation.extra"),
    ],
)
def test_add_frame_refuses_bad_frames_naming_the_feature(tmp_path: Path, change, named: str) -> None:
    ds, robot = _sim_dataset(tmp_path)
    good = [robot.capture() for _ in range(5)]
    for frame in good:
        ds.add_frame(frame, "t")
    bad = robot.capture()
    change(bad)
    with pytest.raises(FrameError, match=named.replace(".", r"\.")):
        ds.add_frame(bad, "t")
    assert ds.save_episode() == 0
    assert_valid(ds.root, episodes=1)
    table = pq.read_table(ds.meta.data_path(0)).to_pydict()
    np.testing.assert_array_equal(
        np.array(table["action"], np.float32), np.stack([f["action"] for f in good])
    )


def test_create_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="resume"):
        DoRobotDataset.create("lab/x", tmp_path / "ds", 30, None, {})
    assert (tmp_path / "ds" / "notes.txt").read_text() == "mine"


def test_discard_drops_only_the_current_episode(tmp_path: Path) -> None:
    ds, robot = _sim_dataset(tmp_path)
    for _ in range(4):
        ds.add_frame(robot.capture(), "t")
    assert ds.save_episode() == 0
    for _ in range(7):
        ds.add_frame(robot.capture(), "t")
    assert ds.discard_episode() == 7
    for _ in range(3):
        ds.add_frame(robot.capture(), "t")
    assert ds.save_episode() == 1
    assert_valid(ds.root, episodes=2)
    assert _info(ds.root)["total_frames"] == 7
    assert not list(ds.journal_dir.iterdir())


def test_video_false_records_joints_only(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = _record_into(root, "--record.video=false")
    assert proc.returncode == 0, proc.stderr
    assert_valid(root, episodes=1)
    info = _info(root)
    assert info["video_path"] is None and info["total_videos"] == 0
    assert not [k for k, ft in info["features"].items() if ft["dtype"] == "video"]
    assert not (root / "videos").exists()


def _keyframes_and_size(root: Path) -> tuple[list[int], int]:
    path = root / "videos/chunk-000/observation.images.image_top/episode_000000.mp4"
    with av.open(str(path)) as container:
        keys = [i for i, frame in enumerate(container.decode(video=0)) if frame.key_frame]
    return keys, path.stat().st_size


def test_video_settings_reach_the_encoder(tmp_path: Path) -> None:
    low = _record_into(tmp_path / "low", "--record.g=7", "--record.crf=45")
    high = _record_into(tmp_path / "high", "--record.g=7", "--record.crf=5")
    av1 = _record_into(tmp_path / "av1", "--record.vcodec=libsvtav1", "--record.preset=12", "--record.crf=30")
    for proc in (low, high, av1):
        assert proc.returncode == 0, proc.stderr
    for name in ("low", "high", "av1"):
        assert_valid(tmp_path / name, episodes=1)
    low_keys, low_size = _keyframes_and_size(tmp_path / "low")
    _, high_size = _keyframes_and_size(tmp_path / "high")
    assert low_keys == [0, 7, 14, 21, 28]
    assert low_size * 3 < high_size
    assert _info(tmp_path / "av1")["features"]["observation.images.image_top"]["info"]["video.codec"] == "av1"
    assert (
        _info(tmp_path / "low")["features"]["observation.images.image_top"]["info"]["video.codec"] == "h264"
    )
