"""The episode journal keeps every written frame and trusts nothing torn or corrupted."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from operating_platform.dataset.features import with_default_features
from operating_platform.dataset.journal import JournalError, JournalReader, JournalWriter

FEATURES = with_default_features(
    {
        "action": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
        "observation.images.cam": {
            "dtype": "video",
            "shape": [8, 10, 3],
            "names": ["height", "width", "channels"],
        },
    }
)


def _frame(i: int) -> dict[str, np.ndarray]:
    return {
        "action": np.array([i, i + 0.5, -i], dtype=np.float32),
        "observation.images.cam": np.full((8, 10, 3), i % 256, dtype=np.uint8),
    }


def _write(path: Path, n: int, segment_frames: int = 4) -> JournalWriter:
    writer = JournalWriter(path, FEATURES, 30, "task", segment_frames=segment_frames)
    for i in range(n):
        writer.append(_frame(i), capture_time=100.0 + i)
    return writer


def test_round_trip_across_segments(tmp_path: Path) -> None:
    writer = _write(tmp_path / "j", 10)
    writer.close(episode_index=7)
    reader = JournalReader(tmp_path / "j")
    assert reader.closed["episode_index"] == 7 and reader.closed["frames"] == 10
    rows = reader.read_rows()
    np.testing.assert_array_equal(rows.columns["action"], np.stack([_frame(i)["action"] for i in range(10)]))
    np.testing.assert_array_equal(rows.capture_times, 100.0 + np.arange(10))
    cursor = reader.cursor("observation.images.cam")
    assert [int(cursor.read()[3, 3, 1]) for _ in range(10)] == list(range(10))
    with pytest.raises(JournalError, match="frame 10"):
        cursor.read()
    assert len(list((tmp_path / "j" / "observation.images.cam").iterdir())) == 3  # 4 + 4 + 2 frames


def test_torn_last_record_is_ignored(tmp_path: Path) -> None:
    writer = _write(tmp_path / "j", 6)
    writer.close(0)
    rows_log = tmp_path / "j" / "rows.log"
    size = rows_log.stat().st_size
    os.truncate(rows_log, size - 5)  # a kill in the middle of the last row's write
    reader = JournalReader(tmp_path / "j")
    assert reader.read_rows().frames == 5
    assert reader.complete_frames() == 5


def test_corrupted_record_ends_the_trusted_part(tmp_path: Path) -> None:
    _write(tmp_path / "j", 8).close(0)
    seg = tmp_path / "j" / "observation.images.cam" / "seg_000001.raw"  # frames 4..7
    data = bytearray(seg.read_bytes())
    data[16 + 2 * (16 + 240) + 7] ^= 0xFF  # flip one pixel of frame 6
    seg.write_bytes(bytes(data))
    reader = JournalReader(tmp_path / "j")
    assert reader.complete_frames() == 6
    cursor = reader.cursor("observation.images.cam")
    for _ in range(6):
        cursor.read()
    with pytest.raises(JournalError, match="frame 6 is damaged"):
        cursor.read()


def test_frames_are_on_disk_before_close(tmp_path: Path) -> None:
    # Nothing waits for close: a process that dies now still leaves these frames readable.
    writer = _write(tmp_path / "j", 5)
    reader = JournalReader(tmp_path / "j")
    assert reader.closed is None
    assert reader.complete_frames() == 5
    writer.discard()
    assert not (tmp_path / "j").exists()


def test_follow_yields_frames_as_they_are_written(tmp_path: Path) -> None:
    writer = _write(tmp_path / "j", 3)
    reader = JournalReader(tmp_path / "j")
    follower = reader.follow(poll_s=0.001)
    assert [next(follower) for _ in range(3)] == [0, 1, 2]
    writer.append(_frame(3), 0.0)
    assert next(follower) == 3
    writer.append(_frame(4), 0.0)
    writer.close(0)
    assert list(follower) == [4]


def test_follow_gives_up_when_no_longer_wanted(tmp_path: Path) -> None:
    _write(tmp_path / "j", 5)
    wanted = [True]
    follower = JournalReader(tmp_path / "j").follow(poll_s=0.001, still_wanted=lambda: wanted[0])
    assert [next(follower), next(follower)] == [0, 1]
    wanted[0] = False  # e.g. the recorder that owned this encoder died: stop within a frame
    with pytest.raises(JournalError, match="no longer wanted"):
        next(follower)


def test_unreadable_header_is_a_journal_error(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "header.json").write_text("{not json")
    with pytest.raises(JournalError, match="header"):
        JournalReader(tmp_path / "j")
