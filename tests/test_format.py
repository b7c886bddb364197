"""The recorded dataset matches LeRobot's own v2.1 output in every field that does not depend on
the data (the reference was written by LeRobot 0.3.3 itself)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import assert_valid, run_record

DATA_INDEPENDENT_INFO_KEYS = ["codebase_version", "chunks_size", "fps", "data_path", "video_path"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "ds"
    proc = run_record(
        "--robot.type=sim",
        "--record.repo_id=lab/demo",
        f"--record.root={root}",
        "--record.single_task=Pick the cube",
        "--record.num_episodes=2",
        "--record.episode_time_s=1",
        "--record.reset_time_s=0",
    )
    assert proc.returncode == 0, proc.stderr
    return root


def _info(root: Path) -> dict:
    return json.loads((root / "meta/info.json").read_text())


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_demo_is_valid(demo: Path) -> None:
    assert_valid(demo, episodes=2)
    # A timed episode holds exactly episode_time_s * fps frames, however the threads were scheduled.
    assert [ep["length"] for ep in _jsonl(demo / "meta/episodes.jsonl")] == [30, 30]


def test_info_json_matches_reference(demo: Path, reference_root: Path) -> None:
    ours, ref = _info(demo), _info(reference_root)
    assert list(ours) == list(ref)
    for key in DATA_INDEPENDENT_INFO_KEYS:
        assert ours[key] == ref[key], key
    assert ours["robot_type"] == "so101_sim"
    assert ours["splits"] == {"train": "0:2"}
    assert ours["total_episodes"] == 2 and ours["total_tasks"] == 1 and ours["total_chunks"] == 1
    assert ours["total_videos"] == 4
    # Written as LeRobot writes it: indent 4, non-ASCII kept.
    assert (demo / "meta/info.json").read_text() == json.dumps(ours, indent=4, ensure_ascii=False)

    defaults = ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    assert list(ours["features"])[-5:] == defaults
    for key in defaults:
        assert ours["features"][key] == ref["features"][key]
    for key in ("action", "observation.state"):
        ft = ours["features"][key]
        assert list(ft) == list(ref["features"][key])
        assert ft["dtype"] == "float32" and ft["shape"] == [6]
        assert ft["names"][0] == "shoulder_pan.pos" and ft["names"][-1] == "gripper.pos"
    ref_cam = ref["features"]["observation.images.cam"]
    for cam in ("observation.images.image_top", "observation.images.image_wrist"):
        ft = ours["features"][cam]
        assert list(ft) == list(ref_cam)
        assert ft["shape"] == [480, 640, 3] and ft["names"] == ref_cam["names"]
        assert list(ft["info"]) == list(ref_cam["info"])
        assert ft["info"]["video.codec"] == "h264" and ft["info"]["video.pix_fmt"] == "yuv420p"
        assert (ft["info"]["video.height"], ft["info"]["video.width"]) == (480, 640)
        assert ft["info"]["video.fps"] == 30 and ft["info"]["has_audio"] is False


def test_parquet_schema_matches_reference(demo: Path, reference_root: Path) -> None:
    ref_file = pq.ParquetFile(reference_root / "data/chunk-000/episode_000000.parquet")
    for ep in (0, 1):
        ours_file = pq.ParquetFile(demo / f"data/chunk-000/episode_{ep:06d}.parquet")
        # Same names, Arrow types and Hugging Face metadata: the reference's joints are named
        # differently but the column layout is identical.
        assert ours_file.schema_arrow.names == ref_file.schema_arrow.names
        assert ours_file.schema_arrow.types == ref_file.schema_arrow.types
        # Arrow's type equality ignores the list child's name; LeRobot's files call it "element".
        assert str(ours_file.schema_arrow.remove_metadata()) == str(ref_file.schema_arrow.remove_metadata())
        assert json.loads(ours_file.schema_arrow.metadata[b"huggingface"]) == json.loads(
            ref_file.schema_arrow.metadata[b"huggingface"]
        )
        assert (
            ours_file.schema_arrow.metadata[b"huggingface"] == ref_file.schema_arrow.metadata[b"huggingface"]
        )
        assert ours_file.metadata.row_group(0).column(0).compression == "SNAPPY"


def test_parquet_columns_follow_the_rules(demo: Path) -> None:
    episodes = _jsonl(demo / "meta/episodes.jsonl")
    start = 0
    for ep in episodes:
        table = pq.read_table(demo / f"data/chunk-000/episode_{ep['episode_index']:06d}.parquet").to_pydict()
        n = ep["length"]
        assert table["frame_index"] == list(range(n))
        assert table["index"] == list(range(start, start + n))
        assert set(table["episode_index"]) == {ep["episode_index"]}
        assert set(table["task_index"]) == {0}
        np.testing.assert_allclose(table["timestamp"], np.arange(n) / 30, atol=1e-6)
        start += n
    assert start == _info(demo)["total_frames"]


def test_jsonl_files_match_reference_format(demo: Path, reference_root: Path) -> None:
    for name in ("tasks.jsonl", "episodes.jsonl", "episodes_stats.jsonl"):
        ours = (demo / "meta" / name).read_text()
        ref = (reference_root / "meta" / name).read_text()
        assert ours.endswith("\n")
        ours_rows, ref_rows = _jsonl(demo / "meta" / name), _jsonl(reference_root / "meta" / name)
        assert [list(r) for r in ours_rows][:1] == [list(r) for r in ref_rows][:1]
        # default separators, one object a line, exactly as json.dumps writes them
        assert ours == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ours_rows)
        assert ref == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ref_rows)
    assert _jsonl(demo / "meta/tasks.jsonl") == [{"task_index": 0, "task": "Pick the cube"}]


def test_episode_stats_have_reference_shapes(demo: Path, reference_root: Path) -> None:
    ref = _jsonl(reference_root / "meta/episodes_stats.jsonl")[0]["stats"]
    info = _info(demo)
    for row in _jsonl(demo / "meta/episodes_stats.jsonl"):
        stats = row["stats"]
        assert list(stats) == list(info["features"])
        for key, per in stats.items():
            ref_key = "observation.images.cam" if key.startswith("observation.images.") else key
            assert list(per) == list(ref[ref_key]), key
            for stat in ("min", "max", "mean", "std"):
                assert np.asarray(per[stat]).shape == np.asarray(ref[ref_key][stat]).shape, (key, stat)
        length = _jsonl(demo / "meta/episodes.jsonl")[row["episode_index"]]["length"]
        assert stats["action"]["count"] == [length]
        assert stats["observation.images.image_top"]["count"] == [length]  # fewer than 100 frames: all


def test_no_private_files_leak_into_the_dataset(demo: Path) -> None:
    visible = sorted(p.relative_to(demo).as_posix() for p in demo.rglob("*") if ".dorobot" not in p.parts)
    assert not [p for p in visible if p.endswith(".tmp") or "/." in "/" + p]
    assert not list((demo / ".dorobot" / "journal").iterdir())
