"""Tests of the dataset verifier: the LeRobot reference passes, and each kind of damage is caught.

The helpers before the tests serve the v3.0 tests too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import av
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operating_platform.dataset.realtime import without_realtime
from operating_platform.dataset.verify import VerifyReport, verify_dataset
from tests.conftest import REFERENCE, REFERENCE_V3

EP0_PARQUET = "data/chunk-000/episode_000000.parquet"
EP1_PARQUET = "data/chunk-000/episode_000001.parquet"
EP0_VIDEO = "videos/chunk-000/observation.images.cam/episode_000000.mp4"
EP1_VIDEO = "videos/chunk-000/observation.images.cam/episode_000001.mp4"
CAM = "observation.images.cam"


def _writable_copy(src: Path, dst: Path) -> Path:
    # Copy contents without permissions, then make everything writable.
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for dirpath, _dirnames, filenames in os.walk(dst):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return dst


@pytest.fixture
def ds(tmp_path: Path) -> Path:
    return _writable_copy(REFERENCE, tmp_path / "ds")


def _problem_with(report: VerifyReport, *words: str) -> str:
    """The first problem line containing every word; fails the test with the report otherwise."""
    assert not report.ok, "expected the dataset to be reported broken"
    for line in report.problems:
        if all(word in line for word in words):
            return line
    raise AssertionError(f"no problem mentions {words}:\n{report.summary()}")


def _assert_reference_ok(root: Path, decode: bool) -> VerifyReport:
    """An undamaged copy of a LeRobot reference: no problem, no note, 2 episodes of 20 frames."""
    report = verify_dataset(root, decode_videos=decode)
    assert report.ok, report.summary()
    assert report.problems == [] and report.notes == []
    assert (report.episodes, report.frames) == (2, 40)
    return report


def _assert_fresh_dataset_ok(reference: Path, root: Path, counters: tuple[str, ...]) -> None:
    """What LeRobot's create() leaves: info.json alone, zero `counters` and splits, no info block on
    the camera yet (it is probed from the first video)."""
    info = json.loads((reference / "meta" / "info.json").read_text())
    info.update(dict.fromkeys(counters, 0), splits={})
    del info["features"][CAM]["info"]
    (root / "meta").mkdir()
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    report = verify_dataset(root)
    assert report.ok, report.summary()
    assert (report.episodes, report.frames) == (0, 0)


def _assert_any_damage_is_reported(root: Path, damage: str) -> None:
    """Damage each of the dataset's 8 files in turn: always a problem, never a check that crashed."""
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert len(files) == 8
    for rel in files:
        backup = (root / rel).read_bytes()
        if damage == "delete":
            (root / rel).unlink()
        elif damage == "truncate":
            (root / rel).write_bytes(backup[: len(backup) // 2])
        else:
            (root / rel).write_bytes(b"\x00garbage\xff" * 10)
        report = verify_dataset(root)
        assert not report.ok, f"{damage} {rel} went unnoticed"
        assert not any("could not be checked" in p for p in report.problems), report.summary()
        (root / rel).write_bytes(backup)
    assert verify_dataset(root).ok


def _edit_info(root: Path, **changes: object) -> None:
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    info.update(changes)  # update() keeps the key order of existing keys
    path.write_text(json.dumps(info, indent=4, ensure_ascii=False))


def _rewrite_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _reencode(path: Path, keep: int) -> None:
    """Re-encode a video with the reference's codec and size, keeping only its first `keep` frames."""
    with av.open(str(path)) as src:
        frames = [frame.to_ndarray(format="rgb24") for frame in src.decode(video=0)]
    with without_realtime(), av.open(str(path), "w") as out:  # SVT-AV1 must not make us real-time
        stream = out.add_stream("libsvtav1", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "2", "crf": "30", "preset": "12"}
        for array in frames[:keep]:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(stream.encode())


# --- the reference -----------------------------------------------------------------------------


@pytest.mark.parametrize("decode", [True, False])
def test_reference_dataset_is_ok(ds: Path, decode: bool) -> None:
    report = _assert_reference_ok(ds, decode)
    assert report.root == ds


def test_read_only_dataset_verifies_in_place(ds: Path) -> None:
    # The verifier only reads: it works on a dataset nobody may write to.
    for dirpath, _dirnames, filenames in os.walk(ds):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)
    try:
        assert verify_dataset(ds).ok
    finally:
        for dirpath, _dirnames, _filenames in os.walk(ds):
            os.chmod(dirpath, 0o755)


# --- damage, one kind per test ----------------------------------------------------------------


def test_wrong_total_frames(ds: Path) -> None:
    _edit_info(ds, total_frames=41)
    report = verify_dataset(ds)
    assert "41" in _problem_with(report, "meta/info.json", "total_frames")


def test_episode_line_removed_leaves_a_gap(ds: Path) -> None:
    path = ds / "meta" / "episodes.jsonl"
    _rewrite_jsonl(path, _read_jsonl(path)[1:])  # episode 0 gone: the first line is episode 1
    report = verify_dataset(ds)
    _problem_with(report, "meta/episodes.jsonl", "episode_index is 1, expected 0")
    _problem_with(report, "total_episodes is 2", "meta/episodes.jsonl has 1 line(s)")
    _problem_with(report, EP0_PARQUET, "not accounted for")


def test_parquet_deleted(ds: Path) -> None:
    (ds / EP1_PARQUET).unlink()
    report = verify_dataset(ds)
    _problem_with(report, EP1_PARQUET, "missing")
    _problem_with(report, "total_episodes is 2", "1 parquet file(s)")
    assert (report.episodes, report.frames) == (1, 20)


def test_parquet_truncated(ds: Path) -> None:
    _truncate_half(ds / EP0_PARQUET)
    report = verify_dataset(ds)
    _problem_with(report, EP0_PARQUET, "unreadable parquet")


def test_parquet_with_wrong_index_column(ds: Path) -> None:
    path = ds / EP1_PARQUET
    table = pq.read_table(path)
    # Episode 1 restarting its global index at 0 instead of 20: a classic counter bug.
    wrong = pa.array(range(table.num_rows), type=pa.int64())
    table = table.set_column(table.column_names.index("index"), "index", wrong)
    pq.write_table(table, path)
    report = verify_dataset(ds)
    line = _problem_with(report, EP1_PARQUET, "'index'")
    assert "expected 20" in line
    assert len(report.problems) == 1, report.summary()  # schema and metadata survived the rewrite


def test_video_truncated(ds: Path) -> None:
    _truncate_half(ds / EP1_VIDEO)
    for decode in (True, False):
        _problem_with(verify_dataset(ds, decode_videos=decode), EP1_VIDEO)


def test_video_with_fewer_frames(ds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVT_LOG", "1")  # SVT-AV1 prints a banner on each open otherwise
    _reencode(ds / EP0_VIDEO, keep=15)
    report = verify_dataset(ds)
    _problem_with(report, EP0_VIDEO, "15 decoded frames", "expected 20")
    assert len(report.problems) == 1, report.summary()  # codec, size and times still right
    _problem_with(verify_dataset(ds, decode_videos=False), EP0_VIDEO, "15 packets", "expected 20")


def test_stray_tmp_file(ds: Path) -> None:
    shutil.copyfile(ds / EP1_PARQUET, ds / (EP1_PARQUET + ".tmp"))
    report = verify_dataset(ds)
    _problem_with(report, EP1_PARQUET + ".tmp", "temporary file")
    assert report.episodes == 2  # LeRobot reads only *.parquet; the counters are still right


def test_stats_with_wrong_image_shape(ds: Path) -> None:
    path = ds / "meta" / "episodes_stats.jsonl"
    rows = _read_jsonl(path)
    cam = rows[0]["stats"]["observation.images.cam"]
    cam["min"] = [channel[0][0] for channel in cam["min"]]  # (3,) instead of (3,1,1)
    _rewrite_jsonl(path, rows)
    report = verify_dataset(ds)
    line = _problem_with(report, "meta/episodes_stats.jsonl line 1", "observation.images.cam", "min")
    assert "(3, 1, 1)" in line


def test_info_json_not_valid_json(ds: Path) -> None:
    (ds / "meta" / "info.json").write_text('{"codebase_version": "v2.1", ')
    report = verify_dataset(ds)  # must not raise
    _problem_with(report, "meta/info.json", "not valid JSON")


def test_pending_journal_is_a_note_not_a_problem(ds: Path) -> None:
    journal = ds / ".dorobot" / "journal"
    journal.mkdir(parents=True)
    (journal / "x").write_text("")
    report = verify_dataset(ds)
    assert report.ok, report.summary()
    assert any("1 unfinished episode journal" in n and "dorobot recover" in n for n in report.notes)


# --- a few more kinds of damage ----------------------------------------------------------------


def test_v3_dataset_goes_to_the_v3_checker() -> None:
    # The v3.0 layout has none of the v2.1 files; judged as v2.1 it would list them all missing.
    report = verify_dataset(REFERENCE_V3)
    assert report.ok, report.summary()
    assert (report.episodes, report.frames) == (2, 40)


def test_empty_dataset_is_ok(tmp_path: Path) -> None:
    counters = ("total_episodes", "total_frames", "total_tasks", "total_videos", "total_chunks")
    _assert_fresh_dataset_ok(REFERENCE, tmp_path, counters)


def test_missing_root_is_a_problem(tmp_path: Path) -> None:
    report = verify_dataset(tmp_path / "nowhere")
    assert not report.ok


def test_info_keys_out_of_order(ds: Path) -> None:
    path = ds / "meta" / "info.json"
    info = json.loads(path.read_text())
    info = {"fps": info.pop("fps"), **info}
    path.write_text(json.dumps(info, indent=4))
    _problem_with(verify_dataset(ds), "meta/info.json", "out of order")


def test_timestamps_off_by_more_than_tolerance(ds: Path) -> None:
    path = ds / EP0_PARQUET
    table = pq.read_table(path)
    shifted = pa.array([i / 30 + 0.001 for i in range(table.num_rows)], type=pa.float32())
    table = table.set_column(table.column_names.index("timestamp"), "timestamp", shifted)
    pq.write_table(table, path)
    _problem_with(verify_dataset(ds), EP0_PARQUET, "timestamp")


def test_unexpected_top_level_entry_is_a_note(ds: Path) -> None:
    (ds / "notes.txt").write_text("hello")
    (ds / "README.md").write_text("# a dataset")
    report = verify_dataset(ds)
    assert report.ok, report.summary()
    assert report.notes == ["notes.txt: unexpected entry at the top level of the dataset"]


@pytest.mark.parametrize("damage", ["delete", "truncate", "garbage"])
def test_any_damaged_file_is_reported_without_raising(ds: Path, damage: str) -> None:
    _assert_any_damage_is_reported(ds, damage)
