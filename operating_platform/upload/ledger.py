"""The local record of what is already at a destination: `ROOT/.dorobot/upload/<dest>.jsonl`.

One line is appended per file once its upload is complete (its size, mtime and sha256 here),
per deletion, and per metadata publication. A killed uploader loses at most the line it was
writing (a torn last line is ignored), so a resumed upload sends again at most the file that was
in flight. The file is rewritten compactly, atomically, when it has grown well past its content.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operating_platform.dataset.fsutil import write_bytes_atomic
from operating_platform.dataset.metadata import PRIVATE_DIR
from operating_platform.upload.destination import Destination

UPLOAD_DIR = "upload"


@dataclass(frozen=True)
class Entry:
    """A file as it was when its upload completed."""

    size: int
    mtime_ns: int
    sha256: str


class UploadLedger:
    """What this dataset's uploads to one destination have completed.

    It promises that every file it lists was completely at the destination, with the content
    whose sha256 it gives, when the line was written; `remote_episodes` is the episode count
    of the last info.json published there. It may forget (then a file is sent again), never
    claim what did not happen.
    """

    def __init__(self, root: Path, dest: Destination) -> None:
        self.dest = dest
        self.path = Path(root) / PRIVATE_DIR / UPLOAD_DIR / f"{dest.key}.jsonl"
        self.files: dict[str, Entry] = {}
        self.remote_episodes = 0
        # Hub only: the last commit made, and the commit the codebase-version tag points at.
        self.commit = ""
        self.tagged = ""
        self._lines = 0
        self._load()

    # -- reading --------------------------------------------------------------------------------

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        for raw in data.split(b"\n"):
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # the torn last line of a killed writer, or a blank one
            if isinstance(line, dict):
                self._apply(line)
                self._lines += 1
        if self._lines > 2 * len(self.files) + 50:
            self._compact()

    def _apply(self, line: dict[str, Any]) -> None:
        if "put" in line:
            self.files[line["put"]] = Entry(int(line["size"]), int(line["mtime_ns"]), str(line["sha256"]))
        elif "del" in line:
            self.files.pop(line["del"], None)
        elif "episodes" in line:
            self.remote_episodes = int(line["episodes"])
        elif "commit" in line:
            self.commit = str(line["commit"])
        elif "tagged" in line:
            self.tagged = str(line["tagged"])

    def matches(self, rel: str, size: int, sha256: str) -> bool:
        entry = self.files.get(rel)
        return entry is not None and entry.size == size and entry.sha256 == sha256

    # -- writing --------------------------------------------------------------------------------

    def put(self, rel: str, entry: Entry) -> None:
        self._append({"put": rel, "size": entry.size, "mtime_ns": entry.mtime_ns, "sha256": entry.sha256})

    def delete(self, rel: str) -> None:
        self._append({"del": rel})

    def published(self, episodes: int) -> None:
        self._append({"episodes": episodes})

    def committed(self, commit: str) -> None:
        self._append({"commit": commit})

    def tag_moved(self, commit: str) -> None:
        self._append({"tagged": commit})

    def reconcile(self, remote_sizes: dict[str, int]) -> None:
        """Forget every file the destination no longer holds as recorded (someone removed or
        replaced it): it is sent again. Nothing is written; the next upload records it anew."""
        for rel in [rel for rel, e in self.files.items() if remote_sizes.get(rel) != e.size]:
            del self.files[rel]

    def _append(self, line: dict[str, Any]) -> None:
        self._apply(line)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write() per line: a kill leaves whole lines and at most one torn one. No fsync:
        # losing a line to a power cut only means sending that file again.
        with open(self.path, "ab") as f:
            f.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
        self._lines += 1

    def _compact(self) -> None:
        lines = [{"destination": self.dest.url}]
        lines += [
            {"put": rel, "size": e.size, "mtime_ns": e.mtime_ns, "sha256": e.sha256}
            for rel, e in sorted(self.files.items())
        ]
        lines.append({"episodes": self.remote_episodes})
        if self.commit:
            lines.append({"commit": self.commit})
        if self.tagged:
            lines.append({"tagged": self.tagged})
        data = b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines)
        # A dataset on a read-only or full disk can still be uploaded; compaction waits.
        with contextlib.suppress(OSError):
            write_bytes_atomic(self.path, data, durable=False)
            self._lines = len(lines)
