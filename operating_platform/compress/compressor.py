"""The compression loop: the oldest waiting file re-encoded, checked, swapped in; again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import av

from operating_platform.compress.settings import CompressSettings
from operating_platform.compress.transcode import CopyRefused, check_copy, transcode
from operating_platform.compress.waiting import Waiting, waiting_files
from operating_platform.dataset.compress_target import compress_dir
from operating_platform.dataset.diskspace import is_disk_full
from operating_platform.dataset.fsutil import make_dirs_within, write_json_atomic
from operating_platform.dataset.metadata import DatasetError, DoRobotDatasetMetadata
from operating_platform.dataset.swap import FileId, staged_path, swap_in

REFUSED_FILE = "refused.json"
POLL_S = 1.0  # how often an idle loop looks for newly committed episodes
NO_ROOM_WAIT_S = 30.0
GIVE_UP_S = 30.0  # how long a dataset may stay unreadable before the loop stops


class Controls:
    """How the loop is driven from outside: paused while the recorder needs the CPU, told when
    the session is over (`final`: the last v3.0 files are packed, so they may be compressed
    too), stopped; `wake` cuts an idle wait short when one of those changes."""

    def __init__(self, final: bool = False) -> None:
        self.paused = threading.Event()
        self.final = threading.Event()
        self.stop = threading.Event()
        self.wake = threading.Event()
        if final:
            self.final.set()


class Stopped(Exception):
    """The loop was told to stop; the file being compressed stays as it was."""


class Compressor:
    """Compresses the waiting videos of the dataset at `root` to `settings`, oldest first.

    It promises: a file is replaced only by a copy with the same frames at the same timestamps,
    every frame above the PSNR floor, by one atomic rename under the dataset's files lock; a
    copy that fails the check is dropped and the file remembered as refused (the original
    stays); a stop or a kill at any point leaves every file whole. `report` receives a dict per
    event: `state` (with the backlog), `swapped`, `refused` and `error`.
    """

    def __init__(
        self,
        root: Path,
        settings: CompressSettings,
        report: Callable[[dict[str, Any]], None],
        controls: Controls | None = None,
    ) -> None:
        self.root = Path(root)
        self.settings = settings
        self.codec = settings.codec
        self.report = report
        self.controls = controls or Controls(final=True)
        self._refused = self._read_refused()

    def run(self) -> None:
        """Compress what waits; return once the session is over (`final`) and nothing is left.
        Raises `Stopped` when told to stop."""
        unreadable_since: float | None = None
        while not self.controls.stop.is_set():
            self._wait_while_paused()
            try:
                meta = DoRobotDatasetMetadata.load(self.root)
                unreadable_since = None
            except DatasetError as exc:
                # Read between a commit's files and its info.json: look again. A dataset that
                # stays unreadable (removed, damaged) is not ours to wait for.
                unreadable_since = unreadable_since or time.monotonic()
                if time.monotonic() - unreadable_since > GIVE_UP_S:
                    self.report({"event": "error", "error": f"stopped: {exc}"})
                    raise Stopped from None
                time.sleep(0.2)
                continue
            waiting = waiting_files(meta, self.codec, self.controls.final.is_set(), self._skip())
            self._report_backlog(meta, waiting)
            ready = [w for w in waiting if w.ready]
            if ready:
                self._compress(ready[0])
            elif self.controls.final.is_set():
                return
            else:
                self.controls.wake.wait(POLL_S)
                self.controls.wake.clear()
        raise Stopped

    def _wait_while_paused(self) -> None:
        while self.controls.paused.is_set():
            if self.controls.stop.wait(0.05):
                raise Stopped

    def _between_frames(self) -> None:
        if self.controls.stop.is_set():
            raise Stopped
        self._wait_while_paused()

    def _compress(self, waiting: Waiting) -> None:
        path = self.root / waiting.relative
        staged = staged_path(self.root, waiting.relative)
        make_dirs_within(self.root, staged.parent)
        self.report({"event": "compressing", "file": waiting.relative, "camera": waiting.camera})
        try:
            transcode(path, staged, self.settings.video, self._between_frames)
            check = check_copy(path, staged, self.settings.min_psnr, self._between_frames)
        except Stopped:
            staged.unlink(missing_ok=True)
            raise
        except CopyRefused as exc:
            staged.unlink(missing_ok=True)
            self._refuse(waiting, str(exc))
            return
        except (OSError, av.error.FFmpegError) as exc:
            staged.unlink(missing_ok=True)
            self._failed(waiting, exc)
            return
        if swap_in(self.root, waiting.relative, staged, waiting.file_id):
            self.report(
                {"event": "swapped", "file": waiting.relative, "camera": waiting.camera,
                 "episodes": list(waiting.episodes), "codec": self.codec, **asdict(check)}
            )  # fmt: skip

    def _failed(self, waiting: Waiting, exc: BaseException) -> None:
        try:
            moved = FileId.of(self.root / waiting.relative) != waiting.file_id
        except OSError:
            moved = True
        if moved:
            return  # packed or renamed meanwhile: the next round sees it where it is now
        if is_disk_full(exc):
            self.report({"event": "error", "error": "no room left on the disk for a compressed copy"})
            if self.controls.stop.wait(NO_ROOM_WAIT_S):
                raise Stopped
            return
        self._refuse(waiting, f"{type(exc).__name__}: {exc}")

    def _refuse(self, waiting: Waiting, reason: str) -> None:
        self._refused[waiting.relative] = {**asdict(waiting.file_id), "reason": reason}
        write_json_atomic(compress_dir(self.root) / REFUSED_FILE, self._refused)
        self.report({"event": "refused", "file": waiting.relative, "reason": reason})

    def _skip(self) -> set[FileId]:
        return {FileId(r["inode"], r["size"], r["mtime_ns"]) for r in self._refused.values()}

    def _read_refused(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads((compress_dir(self.root) / REFUSED_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _report_backlog(self, meta: DoRobotDatasetMetadata, waiting: list[Waiting]) -> None:
        episodes = {e for w in waiting for e in w.episodes}
        self.report(
            {"state": "paused" if self.controls.paused.is_set() else "compressing" if waiting else "idle",
             "waiting_files": len(waiting), "waiting_episodes": len(episodes),
             "waiting_s": sum(w.seconds for w in waiting), "episodes": meta.total_episodes}
        )  # fmt: skip
