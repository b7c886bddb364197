"""The episode journal: the durable, append-only record of an episode while it is captured.

Every captured frame crosses the `write()` system call before its capture tick ends, so a
process that dies keeps everything already captured (the page cache belongs to the kernel).
Nothing is held in Python memory between ticks, whatever the episode length.

Layout of one journal, `ROOT/.dorobot/journal/<id>/`:

    header.json            fps, features and task, written when the journal opens
    rows.log               one record per frame: the vector features, the capture time and,
                           per stream the robot reports (header's `streams`), the age of the
                           message the frame used and which message it was
    <video_key>/seg_NNNNNN.raw
                           one record per frame: raw RGB pixels, `segment_frames` per file, so a
                           consumer can release the raw frames it has encoded piece by piece
    closed.json            written (atomically) when the operator ends the episode

Each record is a 16-byte header (magic, frame index, payload length, CRC-32 of the payload)
followed by the payload. A torn last record, from a kill in the middle of a write, fails the
length or checksum test and is ignored. Camera records are written before the row record of
the same frame, so the row count is the number of complete frames.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from operating_platform.dataset.features import DEFAULT_FEATURES, vector_keys, video_keys
from operating_platform.dataset.fsutil import write_json_atomic
from operating_platform.dataset.journal_store import CLOSED_FILE, retire_journal

MAGIC = b"DRJ1"
_RECORD = struct.Struct("<4sIII")
HEADER_FILE = "header.json"
ROWS_FILE = "rows.log"
DEFAULT_SEGMENT_FRAMES = 30


class JournalError(RuntimeError):
    """A journal on disk cannot be read as one (missing header, wrong format)."""


def _write_all(fd: int, header: bytes, payload: memoryview) -> None:
    # writev on a regular file writes everything unless the disk fills; finish a short write
    # so that only a kill, never a partial syscall, can tear a record.
    total = len(header) + payload.nbytes
    done = os.writev(fd, [header, payload])
    while done < total:
        rest = (header + payload.tobytes())[done:]
        done += os.write(fd, rest)


def _record(frame_index: int, payload: memoryview) -> bytes:
    return _RECORD.pack(MAGIC, frame_index, payload.nbytes, zlib.crc32(payload))


class JournalWriter:
    """Appends validated frames of one episode to its journal directory.

    Owned by the capture thread while recording; `close()` hands the directory over to whoever
    finalizes it. Frames must already be validated (see `features.validate_frame`).
    """

    def __init__(
        self,
        path: Path,
        features: dict[str, dict[str, Any]],
        fps: int,
        task: str,
        segment_frames: int = DEFAULT_SEGMENT_FRAMES,
        extra: dict[str, Any] | None = None,
        streams: Sequence[str] = (),
    ) -> None:
        self.path = Path(path)
        self.features = features
        self.segment_frames = segment_frames
        self.streams = list(streams)
        self._vector_keys = vector_keys(features)
        self._video_keys = video_keys(features)
        self.path.mkdir()  # the caller makes its parent, so a vanished dataset is not recreated
        header = {
            "format": 1,
            "fps": fps,
            "task": task,
            "segment_frames": segment_frames,
            "features": {k: v for k, v in features.items() if k not in DEFAULT_FEATURES},
            "created_unix": time.time(),
            "streams": self.streams,
            **(extra or {}),
        }
        write_json_atomic(self.path / HEADER_FILE, header)
        for key in self._video_keys:
            (self.path / key).mkdir()
        self._rows_fd = os.open(self.path / ROWS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segment_fds: dict[str, int] = {}
        self.frames = 0
        self.closed = False

    def append(
        self,
        frame: dict[str, np.ndarray],
        capture_time: float,
        ages: np.ndarray | None = None,
        seqs: np.ndarray | None = None,
    ) -> int:
        """Write one frame; returns its frame index. No copy of the pixels is made.

        `ages` (seconds, float32) and `seqs` (int64) hold one value per stream of `streams`.
        """
        index = self.frames
        if index % self.segment_frames == 0:
            self._open_segments(index // self.segment_frames)
        for key in self._video_keys:
            pixels = memoryview(np.ascontiguousarray(frame[key])).cast("B")
            _write_all(self._segment_fds[key], _record(index, pixels), pixels)
        row = b"".join(frame[k].tobytes() for k in self._vector_keys) + struct.pack("<d", capture_time)
        if self.streams:
            row += np.asarray(ages, "<f4").tobytes() + np.asarray(seqs, "<i8").tobytes()
        _write_all(self._rows_fd, _record(index, memoryview(row)), memoryview(row))
        self.frames += 1
        return index

    def _open_segments(self, segment: int) -> None:
        for key in self._video_keys:
            old = self._segment_fds.pop(key, None)
            if old is not None:
                os.close(old)
            seg_path = self.path / key / f"seg_{segment:06d}.raw"
            self._segment_fds[key] = os.open(seg_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _close_fds(self) -> None:
        for fd in [self._rows_fd, *self._segment_fds.values()]:
            os.close(fd)
        self._segment_fds.clear()

    def close(self, episode_index: int, task: str | None = None) -> Path:
        """Seal the journal as episode `episode_index`; returns its directory."""
        if self.closed:
            raise JournalError(f"journal {self.path} is already closed")
        self._close_fds()
        self.closed = True
        closed = {"episode_index": episode_index, "frames": self.frames, "closed_unix": time.time()}
        if task is not None:
            closed["task"] = task
        # Not fsynced: ending an episode must return in milliseconds, and like the frames
        # themselves this survives a killed process; durability comes when it is published.
        write_json_atomic(self.path / CLOSED_FILE, closed, durable=False)
        return self.path

    def discard(self) -> None:
        """Delete the journal and everything in it; at once, as far as recovery can tell."""
        if not self.closed:
            self._close_fds()
            self.closed = True
        retire_journal(self.path)


@dataclass
class JournalRows:
    """The vector features of a journal's complete frames, as (frames, n) arrays, and their timing.

    `ages` and `seqs` are (frames, len(streams)): per frame and stream, how old the message
    was when the tick read it (seconds) and which message it was.
    """

    columns: dict[str, np.ndarray]
    capture_times: np.ndarray
    streams: list[str]
    ages: np.ndarray
    seqs: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.capture_times)


def _scan_records(path: Path, payload_size: int) -> Iterator[tuple[int, memoryview]]:
    """Yield (frame_index, payload) for each intact record; stop at the first torn or foreign one."""
    record_size = _RECORD.size + payload_size
    with open(path, "rb") as f:
        while True:
            blob = f.read(record_size)
            if len(blob) < record_size:
                return
            magic, index, length, crc = _RECORD.unpack_from(blob)
            payload = memoryview(blob)[_RECORD.size :]
            if magic != MAGIC or length != payload_size or zlib.crc32(payload) != crc:
                return
            yield index, payload


class JournalReader:
    """Reads a journal written by `JournalWriter`, trusting only records that pass their checks."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.header = json.loads((self.path / HEADER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise JournalError(f"{self.path}: unreadable journal header ({exc})") from exc
        if self.header.get("format") != 1:
            raise JournalError(f"{self.path}: unknown journal format {self.header.get('format')!r}")
        self.features: dict[str, dict[str, Any]] = self.header["features"]
        self.fps: int = self.header["fps"]
        self.segment_frames: int = self.header["segment_frames"]
        self.vector_keys = vector_keys(self.features)
        self.video_keys = video_keys(self.features)
        self.streams: list[str] = self.header.get("streams", [])
        closed_path = self.path / CLOSED_FILE
        self.closed: dict[str, Any] | None = (
            json.loads(closed_path.read_text(encoding="utf-8")) if closed_path.exists() else None
        )

    @property
    def task(self) -> str:
        return (self.closed or {}).get("task", self.header["task"])

    def _row_layout(self) -> list[tuple[str, np.dtype, int]]:
        return [
            (k, np.dtype(self.features[k]["dtype"]), int(np.prod(self.features[k]["shape"])))
            for k in self.vector_keys
        ]

    def _row_size(self) -> int:
        vectors = sum(dt.itemsize * n for _, dt, n in self._row_layout())
        return vectors + 8 + len(self.streams) * (4 + 8)

    def read_rows(self) -> JournalRows:
        layout = self._row_layout()
        row_size = self._row_size()
        chunks = [bytes(p) for _, p in _scan_records(self.path / ROWS_FILE, row_size)]
        raw = np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(len(chunks), row_size)
        columns: dict[str, np.ndarray] = {}
        offset = 0
        for key, dtype, n in layout:
            width = dtype.itemsize * n
            columns[key] = raw[:, offset : offset + width].copy().view(dtype).reshape(len(chunks), n)
            offset += width
        times = raw[:, offset : offset + 8].copy().view(np.float64).reshape(-1)
        offset += 8
        n = len(self.streams)
        ages = raw[:, offset : offset + 4 * n].copy().view("<f4").reshape(len(chunks), n)
        offset += 4 * n
        seqs = raw[:, offset : offset + 8 * n].copy().view("<i8").reshape(len(chunks), n)
        return JournalRows(columns, times, self.streams, ages, seqs)

    def frame_shape(self, video_key: str) -> tuple[int, int, int]:
        return tuple(self.features[video_key]["shape"])  # type: ignore[return-value]

    def _segments(self, video_key: str) -> list[Path]:
        return sorted((self.path / video_key).glob("seg_*.raw"))

    def _row_record_size(self) -> int:
        return _RECORD.size + self._row_size()

    def written_rows(self) -> int:
        """Frames whose row record is fully written, for a journal that may still be growing.

        The file size only grows past bytes already copied, and a frame's camera records are
        written before its row, so every camera frame below this count is complete.
        """
        try:
            return (self.path / ROWS_FILE).stat().st_size // self._row_record_size()
        except FileNotFoundError:
            raise JournalError(f"{self.path}: the journal is gone (discarded?)") from None

    def refresh_closed(self) -> dict[str, Any] | None:
        if self.closed is None:
            with contextlib.suppress(FileNotFoundError):
                self.closed = json.loads((self.path / CLOSED_FILE).read_text(encoding="utf-8"))
        return self.closed

    def released_frames(self) -> int:
        """Frames whose raw pixels were released (their encoded copy is safe in staging).

        Segments are released in order, for all cameras together; a kill in the middle of a
        release can leave one camera a segment behind, so the furthest camera counts.
        """
        released = 0
        for key in self.video_keys:
            segments = self._segments(key)
            if segments:
                first = int(segments[0].stem.split("_")[1])
                released = max(released, first * self.segment_frames)
        return released

    def release_segment(self, segment: int) -> None:
        """Delete every camera's raw segment `segment` (its frames are encoded and durable)."""
        for key in self.video_keys:
            (self.path / key / f"seg_{segment:06d}.raw").unlink(missing_ok=True)

    def follow(
        self, poll_s: float = 0.02, still_wanted: Callable[[], bool] = lambda: True, start: int = 0
    ) -> Iterator[int]:
        """Yield frame indices as they become complete, until the journal is closed and all are yielded.

        Used to encode an episode while it is being recorded. `still_wanted` is polled while
        waiting, so a follower can give up (its parent died, the episode was discarded).
        """
        done = start
        while True:
            if not still_wanted():
                raise JournalError(f"{self.path}: no longer wanted")
            closed = self.refresh_closed()
            available = self.written_rows()
            if closed is not None:
                available = min(available, int(closed["frames"]))
            while done < available:
                yield done
                done += 1
                if not still_wanted():  # checked per frame: a follower must not outlive its parent
                    raise JournalError(f"{self.path}: no longer wanted")
            if closed is not None:
                if done < int(closed["frames"]):
                    raise JournalError(f"{self.path}: only {done} of {closed['frames']} frames are intact")
                return
            time.sleep(poll_s)

    def cursor(self, video_key: str, start: int = 0) -> FrameCursor:
        return FrameCursor(self, video_key, start)

    def complete_frames(self) -> int:
        """Frames whose row and every camera image are intact (raw, or released once encoded)."""
        count = self.read_rows().frames
        released = self.released_frames()
        for key in self.video_keys:
            size = int(np.prod(self.frame_shape(key)))
            segments = [
                s for s in self._segments(key) if int(s.stem.split("_")[1]) * self.segment_frames >= released
            ]
            count = min(count, released + sum(1 for seg in segments for _ in _scan_records(seg, size)))
        return count


class FrameCursor:
    """Reads one camera's frames in order, keeping the current segment open.

    Every frame is read into the same buffer: a frame is valid until the next `read()`. Reading
    each frame into a fresh megabyte-sized object would fragment the allocator's heap, and the
    encoder process would then grow by a frame's size per frame read.
    """

    def __init__(self, reader: JournalReader, video_key: str, start: int = 0) -> None:
        self.dir = reader.path / video_key
        self.shape = reader.frame_shape(video_key)
        self.size = int(np.prod(self.shape))
        self.segment_frames = reader.segment_frames
        self.next = start
        self._file: Any = None
        self._buffer = bytearray(_RECORD.size + self.size)
        self._payload = memoryview(self._buffer)[_RECORD.size :]

    def read(self) -> np.ndarray:
        """The next frame; raises `JournalError` if it is missing or damaged."""
        index = self.next
        if index % self.segment_frames == 0 or self._file is None:
            self.close()
            seg = self.dir / f"seg_{index // self.segment_frames:06d}.raw"
            try:
                self._file = open(seg, "rb", buffering=0)  # noqa: SIM115 - kept open across calls
            except FileNotFoundError:
                raise JournalError(f"{seg}: missing (frame {index})") from None
            self._file.seek((index % self.segment_frames) * len(self._buffer))
        if self._file.readinto(self._buffer) < len(self._buffer):
            raise JournalError(f"{self.dir}: frame {index} is incomplete")
        magic, found, length, crc = _RECORD.unpack_from(self._buffer)
        if magic != MAGIC or found != index or length != self.size or zlib.crc32(self._payload) != crc:
            raise JournalError(f"{self.dir}: frame {index} is damaged")
        self.next += 1
        return np.frombuffer(self._payload, dtype=np.uint8).reshape(self.shape)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def new_journal_id() -> str:
    """A sortable, unique name for a journal directory."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}"
