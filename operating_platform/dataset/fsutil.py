"""File operations that never leave a half-written file under its final name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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


def temp_path(final: Path) -> Path:
    """Where a file is written before it is renamed to `final` (hidden, so no reader globs it)."""
    return final.with_name(f".{final.name}.tmp")


def publish(tmp: Path, final: Path, durable: bool = True) -> None:
    """Rename `tmp` over `final`, so `final` is old or new, never torn.

    `durable` also fsyncs the file before and the directory after, so the result survives a
    power cut, not only a killed process; it costs milliseconds.
    """
    if durable:
        fsync_file(tmp)
    os.replace(tmp, final)
    if durable:
        fsync_dir(final.parent)


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        publish(tmp, path, durable)
    except BaseException:
        # A full disk must not leave a torn hidden file for the next reader to trip over.
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any, indent: int | None = 4, durable: bool = True) -> None:
    data = json.dumps(obj, indent=indent, ensure_ascii=False).encode("utf-8")
    write_bytes_atomic(path, data, durable)


def append_lines_durable(path: Path, lines: list[str]) -> None:
    """Append whole lines and fsync, so a committed line survives a power cut."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
