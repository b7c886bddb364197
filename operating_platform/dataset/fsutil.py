"""File operations that never leave a half-written file under its final name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# What the program keeps in a dataset folder for itself (journals, locks, plans); LeRobot ignores it.
PRIVATE_DIR = ".dorobot"


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def make_dirs_within(root: Path, path: Path) -> None:
    """Create `path` and its missing parents below `root`, but never `root` itself.

    A dataset folder deleted or moved away while the program runs must stay gone: recreating
    it would leave a half-dataset where the operator removed one. A missing `root` therefore
    raises FileNotFoundError, which the caller reports as the folder having disappeared.
    """
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        current.mkdir(exist_ok=True)


def temp_path(final: Path) -> Path:
    """Where a file is written before it is renamed to `final` (hidden, so no reader globs it)."""
    return final.with_name(f".{final.name}.tmp")


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True, sync_dir: bool = True) -> None:
    """Replace `path` with `data`, so `path` holds the old content or the new, never a torn mix.

    `durable` fsyncs the file before the rename and, with `sync_dir`, the directory after, so
    the result survives a power cut and not only a killed process; it costs milliseconds. A
    caller that must not see a failing directory fsync as a failed write (the rename already
    happened, readers see the new file) passes `sync_dir=False` and fsyncs it itself.
    """
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A full disk must not leave a torn hidden file for the next reader to trip over.
        tmp.unlink(missing_ok=True)
        raise
    if durable and sync_dir:
        fsync_dir(path.parent)


def write_json_atomic(
    path: Path, obj: Any, indent: int | None = 4, durable: bool = True, sync_dir: bool = True
) -> None:
    data = json.dumps(obj, indent=indent, ensure_ascii=False).encode("utf-8")
    write_bytes_atomic(path, data, durable, sync_dir)


def append_lines_durable(path: Path, lines: list[str]) -> None:
    """Append whole lines and fsync, so a committed line survives a power cut."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
