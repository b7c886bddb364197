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


def temp_path(final: Path) -> Path:
    """Where a file is written before it is renamed to `final` (hidden, so no reader globs it)."""
    return final.with_name(f".{final.name}.tmp")


def publish(tmp: Path, final: Path) -> None:
    """fsync `tmp`, rename it over `final`, fsync the directory: `final` is old or new, never torn."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        f.write(data)
    publish(tmp, path)


def write_json_atomic(path: Path, obj: Any, indent: int | None = 4) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=indent, ensure_ascii=False)).encode("utf-8"))


def append_lines_durable(path: Path, lines: list[str]) -> None:
    """Append whole lines and fsync, so a committed line survives a power cut."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
