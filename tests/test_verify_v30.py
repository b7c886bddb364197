"""Tests of the v3.0 checks: LeRobot 0.4's own dataset passes, so does a copy with one episode per
file, and each kind of damage the v3.0 loader would trip on gives its own problem line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operating_platform.cli import USAGE, main
from operating_platform.dataset.verify import verify_dataset
from tests.conftest import REFERENCE_V3
from tests.test_verify import (
    CAM,
    _assert_any_damage_is_reported,
    _assert_fresh_dataset_ok,
    _assert_reference_ok,
    _problem_with,
    _writable_copy,
)

DATA0 = "data/chunk-000/file-000.parquet"
DATA1 = "data/chunk-000/file-001.parquet"
VIDEO0 = f"videos/{CAM}/chunk-000/file-000.mp4"
VIDEO1 = f"videos/{CAM}/chunk-000/file-001.mp4"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
TASKS = "meta/tasks.parquet"
STATS = "meta/stats.json"
FPS = 30


def _set_columns(path: Path, **columns: list) -> None:
    """Rewrite a parquet file with some columns replaced, keeping types and schema metadata."""
    table = pq.read_table(path)
    for name, values in columns.items():
        position = table.column_names.index(name)
        field = table.schema.field(position)
        table = table.set_column(position, field, pa.array(values, field.type))
    pq.write_table(table, path)


def _episode_column(root: Path, name: str) -> list:
    return pq.read_table(root / EPISODES).column(name).to_pylist()


def _stream_copy(src: Path, dst: Path, start: float, end: float) -> None:
    """Copy the packets shown in [start, end) s from src to dst, without re-encoding, from time 0."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in, opaque=True)
        s_out.time_base = s_in.time_base
        shift = round(start / s_in.time_base)
        for packet in inp.demux(s_in):
            if packet.dts is None or not start <= float(packet.pts * s_in.time_base) + 1e-9 < end:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = s_out
            out.mux(packet)


def _split_into_one_episode_per_file(root: Path) -> None:
    """Episode 0 stays in file-000 of data and video, episode 1 moves to file-001."""
    lengths = _episode_column(root, "length")
    table = pq.read_table(root / DATA0)
    pq.write_table(table.slice(0, lengths[0]), root / DATA0)
    pq.write_table(table.slice(lengths[0], lengths[1]), root / DATA1)

    starts = _episode_column(root, f"videos/{CAM}/from_timestamp")
    ends = _episode_column(root, f"videos/{CAM}/to_timestamp")
    whole = root / "whole.mp4"
    shutil.move(root / VIDEO0, whole)
    _stream_copy(whole, root / VIDEO0, starts[0], ends[0])
    _stream_copy(whole, root / VIDEO1, starts[1], ends[1])
    whole.unlink()

    _set_columns(
        root / EPISODES,
        **{
            "data/file_index": [0, 1],
            f"videos/{CAM}/file_index": [0, 1],
            f"videos/{CAM}/from_timestamp": [0.0, 0.0],
            f"videos/{CAM}/to_timestamp": [ends[0] - starts[0], ends[1] - starts[1]],
        },
    )


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    return _writable_copy(REFERENCE_V3, tmp_path / "ds")


@pytest.fixture
def split(tmp_path: Path) -> Path:
    root = _writable_copy(REFERENCE_V3, tmp_path / "split")
    _split_into_one_episode_per_file(root)
    return root


# --- clean datasets -----------------------------------------------------------------------------


@pytest.mark.parametrize("decode", [True, False])
def test_reference_v30_dataset_is_ok(ds: Path, decode: bool) -> None:
    _assert_reference_ok(ds, decode)


@pytest.mark.parametrize("decode", [True, False])
def test_one_episode_per_file_is_ok(split: Path, decode: bool) -> None:
    # The copy really has two files of each kind, each holding one episode from time 0.
    assert pq.read_table(split / DATA0).column("episode_index").to_pylist() == [0] * 20
    assert pq.read_table(split / DATA1).column("episode_index").to_pylist() == [1] * 20
    for video in (VIDEO0, VIDEO1):
        with av.open(str(split / video)) as container:
            assert sum(1 for _ in container.decode(video=0)) == 20
    assert _episode_column(split, f"videos/{CAM}/from_timestamp") == [0.0, 0.0]
    report = verify_dataset(split, decode_videos=decode)
    assert report.ok, report.summary()
    assert (report.episodes, report.frames) == (2, 40)


def test_empty_v30_dataset_is_ok(tmp_path: Path) -> None:
    _assert_fresh_dataset_ok(REFERENCE_V3, tmp_path, ("total_episodes", "total_frames", "total_tasks"))


def test_v21_keys_left_in_info_are_only_notes(ds: Path) -> None:
    path = ds / "meta" / "info.json"
    info = json.loads(path.read_text())
    info.update(total_chunks=1, total_videos=2)
    path.write_text(json.dumps(info, indent=4))
    report = verify_dataset(ds)
    assert report.ok, report.summary()
    assert any("total_chunks, total_videos" in note for note in report.notes), report.notes


def test_cli_verifies_v30_and_says_so(ds: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "v3.0" in USAGE
    assert main(["verify", str(ds)]) == 0
    assert "valid (2 episodes, 40 frames)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "v3.0" in capsys.readouterr().out


# --- info.json and meta/ ------------------------------------------------------------------------


def test_info_missing_a_v30_key(ds: Path) -> None:
    path = ds / "meta" / "info.json"
    info = json.loads(path.read_text())
    del info["data_files_size_in_mb"]
    path.write_text(json.dumps(info, indent=4))
    report = verify_dataset(ds)
    assert report.problems == ["meta/info.json: missing keys: data_files_size_in_mb"], report.summary()


def test_wrong_total_frames(ds: Path) -> None:
    path = ds / "meta" / "info.json"
    info = json.loads(path.read_text())
    info["total_frames"] = 41
    path.write_text(json.dumps(info, indent=4))
    report = verify_dataset(ds)
    _problem_with(report, "meta/info.json", "total_frames is 41", "sum to 40")
    _problem_with(report, "meta/info.json", "total_frames is 41", "hold 40 rows")
    assert len(report.problems) == 2, report.summary()  # the stats count the real frames


def test_unreadable_info_json_still_gets_the_v30_checks(ds: Path) -> None:
    (ds / "meta" / "info.json").write_text('{"codebase_version": "v3.0", ')
    report = verify_dataset(ds)
    # Judged as v2.1 it would also list tasks.jsonl, episodes.jsonl... as missing.
    assert len(report.problems) == 1, report.summary()
    _problem_with(report, "meta/info.json", "not valid JSON")


def test_wrong_dataset_to_index(ds: Path) -> None:
    _set_columns(ds / EPISODES, dataset_to_index=[21, 40])
    report = verify_dataset(ds)
    line = _problem_with(report, f"{EPISODES} row 0", "dataset_to_index is 21")
    assert "expected dataset_from_index + length = 20" in line
    assert len(report.problems) == 1, report.summary()


def test_episodes_out_of_order(ds: Path) -> None:
    table = pq.read_table(ds / EPISODES)
    pq.write_table(table.take([1, 0]), ds / EPISODES)
    report = verify_dataset(ds)
    _problem_with(report, f"{EPISODES} row 0", "episode_index is 1, expected 0")


def test_episode_row_in_the_wrong_metadata_file(ds: Path) -> None:
    _set_columns(ds / EPISODES, **{"meta/episodes/file_index": [0, 3]})
    report = verify_dataset(ds)
    line = _problem_with(report, f"{EPISODES} row 1", "meta/episodes/chunk_index, file_index")
    assert "(0, 3), expected (0, 0)" in line


def test_missing_quantile_in_episode_stats(ds: Path) -> None:
    table = pq.read_table(ds / EPISODES)
    pq.write_table(table.drop_columns(["stats/action/q50"]), ds / EPISODES)
    report = verify_dataset(ds)
    assert report.problems == [f"{EPISODES}: missing columns: stats/action/q50"], report.summary()


def test_episode_stats_with_wrong_shape(ds: Path) -> None:
    # A camera quantile per channel, (3,), where LeRobot wants (3, 1, 1).
    table = pq.read_table(ds / EPISODES)
    name = f"stats/{CAM}/q99"
    flat = pa.array([[0.5, 0.5, 0.5]] * 2, pa.list_(pa.float64()))
    table = table.set_column(table.column_names.index(name), name, flat)
    pq.write_table(table, ds / EPISODES)
    report = verify_dataset(ds)
    _problem_with(report, f"{EPISODES} row 0", f"stats of '{CAM}'", "q99 has shape (3,), expected (3, 1, 1)")


def test_missing_quantile_in_stats_json(ds: Path) -> None:
    path = ds / STATS
    stats = json.loads(path.read_text())
    del stats["observation.state"]["q01"]
    path.write_text(json.dumps(stats, indent=4))
    report = verify_dataset(ds)
    assert report.problems == [f"{STATS}: stats of 'observation.state': missing q01"], report.summary()


def test_stats_json_count_not_the_frames_of_all_episodes(ds: Path) -> None:
    path = ds / STATS
    stats = json.loads(path.read_text())
    stats["action"]["count"] = [39]
    path.write_text(json.dumps(stats, indent=4))
    report = verify_dataset(ds)
    line = _problem_with(report, STATS, "stats of 'action': count is 39")
    assert "40" in line


def test_wrong_task_index_in_tasks_parquet(ds: Path) -> None:
    _set_columns(ds / TASKS, task_index=[1])
    report = verify_dataset(ds)
    line = _problem_with(report, TASKS, "task_index is 1 at row 0, expected 0")
    assert "by position" in line
    assert len(report.problems) == 1, report.summary()


def test_tasks_parquet_without_pandas_index(ds: Path) -> None:
    # The task as a plain column: pandas would give a RangeIndex and LeRobot would name tasks 0, 1...
    pq.write_table(pa.table({"task_index": [0], "task": ["pick the cube"]}), ds / TASKS)
    report = verify_dataset(ds)
    _problem_with(report, TASKS, "pandas", "__index_level_0__")


def test_task_of_another_episode_in_data_rows(split: Path) -> None:
    _set_columns(split / DATA1, task_index=[0] * 19 + [1])
    report = verify_dataset(split)
    _problem_with(report, DATA1, "episode 1: task_index values [1] are not tasks of episode 1")


# --- data files ---------------------------------------------------------------------------------


def test_missing_data_file(split: Path) -> None:
    (split / DATA1).unlink()
    report = verify_dataset(split)
    _problem_with(report, DATA1, "missing (episode 1 points to it)")
    _problem_with(report, "meta/info.json", "total_frames is 40", "hold 20 rows")
    assert report.frames == 20


def test_extra_unreferenced_parquet(ds: Path) -> None:
    shutil.copyfile(ds / DATA0, ds / DATA1)
    report = verify_dataset(ds)
    _problem_with(report, DATA1, "not referenced by any episode", "LeRobot would load it")
    _problem_with(report, "meta/info.json", "hold 80 rows")


def test_data_file_with_an_episode_too_few(split: Path) -> None:
    # Episode 1's rows land in file-000 after episode 0's, but the metadata still says file-001.
    both = pa.concat_tables([pq.read_table(split / DATA0), pq.read_table(split / DATA1)])
    pq.write_table(both, split / DATA0)
    (split / DATA1).unlink()
    report = verify_dataset(split)
    _problem_with(report, DATA0, "40 rows, expected 20 (episode 0 points to it)")


def test_wrong_global_index_in_a_shared_file(ds: Path) -> None:
    # Episode 1 restarting `index` at 0 inside the file it shares with episode 0.
    _set_columns(ds / DATA0, index=list(range(20)) * 2)
    report = verify_dataset(ds)
    line = _problem_with(report, DATA0, "episode 1: column 'index' is 0 at row 20")
    assert "expected 20" in line
    assert len(report.problems) == 1, report.summary()


def test_data_files_out_of_path_order(split: Path) -> None:
    # Episode 0 in file-001 and episode 1 in file-000: LeRobot would read episode 1's rows first.
    (split / DATA0).rename(split / "tmp.parquet")
    (split / DATA1).rename(split / DATA0)
    (split / "tmp.parquet").rename(split / DATA1)
    _set_columns(split / EPISODES, **{"data/file_index": [1, 0]})
    report = verify_dataset(split)
    _problem_with(report, f"{EPISODES} row 1", f"episode 1 is in {DATA0}, which LeRobot reads before {DATA1}")


def test_timestamps_not_frame_index_over_fps(split: Path) -> None:
    table = pq.read_table(split / DATA1)
    _set_columns(split / DATA1, timestamp=[(i + 20) / FPS for i in range(table.num_rows)])
    report = verify_dataset(split)
    _problem_with(report, DATA1, "episode 1: timestamp is 0.666667 at row 0, expected frame_index / fps")


def test_stray_hidden_tmp_file(ds: Path) -> None:
    shutil.copyfile(ds / DATA0, ds / "data" / "chunk-000" / ".file-000.parquet.tmp")
    report = verify_dataset(ds)
    assert report.problems == [
        "data/chunk-000/.file-000.parquet.tmp: temporary file left behind (not part of the dataset)"
    ]


def test_hidden_parquet_is_loaded_by_lerobot(ds: Path) -> None:
    shutil.copyfile(ds / DATA0, ds / "data" / "chunk-000" / ".file-001.parquet")
    report = verify_dataset(ds)
    _problem_with(report, "data/chunk-000/.file-001.parquet", "temporary file", "LeRobot would load")
    _problem_with(report, "meta/info.json", "hold 80 rows")


def test_recorder_folder_is_ignored(ds: Path) -> None:
    (ds / ".dorobot" / "staging").mkdir(parents=True)
    (ds / ".dorobot" / "staging" / "file-001.parquet").write_bytes(b"half written")
    report = verify_dataset(ds)
    assert report.ok, report.summary()


# --- videos -------------------------------------------------------------------------------------


def test_overlapping_video_ranges(ds: Path) -> None:
    _set_columns(ds / EPISODES, **{f"videos/{CAM}/from_timestamp": [0.0, 0.5]})
    report = verify_dataset(ds)
    _problem_with(report, VIDEO0, "episodes 0 and 1 overlap", "[0.000000, 0.666667) and [0.500000, 1.333333)")


def test_to_timestamp_beyond_the_file(split: Path) -> None:
    _set_columns(split / EPISODES, **{f"videos/{CAM}/to_timestamp": [2 / 3, 1.0]})
    report = verify_dataset(split)
    line = _problem_with(report, VIDEO1, "episode 1: to_timestamp 1.000000 s is beyond the end of the video")
    assert "(0.666667 s)" in line


def test_video_range_shorter_than_the_episode(ds: Path) -> None:
    # Episode 1 said to end one frame early: LeRobot's tools would cut a frame short.
    _set_columns(ds / EPISODES, **{f"videos/{CAM}/to_timestamp": [2 / 3, 4 / 3 - 1 / FPS]})
    report = verify_dataset(ds)
    _problem_with(report, VIDEO0, "episode 1: to_timestamp - from_timestamp", "19 frames", "has 20")
    _problem_with(report, VIDEO0, "episode 1: 19 decoded frames between", "expected 20")


def test_frames_not_at_from_timestamp_plus_k_over_fps(ds: Path) -> None:
    # Episode 1 said to start half a frame early: as many frames fall in its range, but the loader
    # asks for from_timestamp + k / fps and finds no frame within 1e-4 s of it.
    half = 0.5 / FPS
    _set_columns(ds / EPISODES, **{f"videos/{CAM}/from_timestamp": [0.0, 2 / 3 - half]})
    _set_columns(ds / EPISODES, **{f"videos/{CAM}/to_timestamp": [2 / 3, 4 / 3 - half]})
    report = verify_dataset(ds)
    line = _problem_with(report, VIDEO0, "episode 1: frame 0 is at 0.666667 s")
    assert "expected from_timestamp + 0 / fps = 0.650000 s" in line


@pytest.mark.parametrize("decode", [True, False])
def test_truncated_video(split: Path, decode: bool) -> None:
    data = (split / VIDEO1).read_bytes()
    (split / VIDEO1).write_bytes(data[: len(data) // 2])
    report = verify_dataset(split, decode_videos=decode)
    _problem_with(report, VIDEO1)
    assert not any(p.startswith(VIDEO0) for p in report.problems), report.summary()


def test_missing_video_file(split: Path) -> None:
    (split / VIDEO1).unlink()
    report = verify_dataset(split)
    assert report.problems == [f"{VIDEO1}: missing (episode 1 points to it for camera {CAM})"]


def test_unreferenced_video_file(ds: Path) -> None:
    shutil.copyfile(ds / VIDEO0, ds / VIDEO1)
    report = verify_dataset(ds)
    assert report.problems == [f"{VIDEO1}: video not referenced by any episode in meta/episodes"]


def test_codec_differs_from_the_feature_info(ds: Path) -> None:
    path = ds / "meta" / "info.json"
    info = json.loads(path.read_text())
    info["features"][CAM]["info"]["video.codec"] = "h264"
    path.write_text(json.dumps(info, indent=4))
    report = verify_dataset(ds)
    assert report.problems == [f"{VIDEO0}: codec av1, but meta/info.json says h264"]


# --- any damage at all --------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage"])
def test_any_damaged_file_is_reported_without_raising(split: Path, damage: str) -> None:
    _assert_any_damage_is_reported(split, damage)
