"""What the benchmarks read about processes and folders: memory, CPU time, bytes on disk."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of a live process in MB; None if there is none (not started, exited)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None  # gone, or a zombie (which has no VmRSS line)


def cpu_s(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far; 0 if there is none."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def walk_files(path: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(path, stat) of every file under `path`; files or folders that vanish meanwhile are left out."""
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    with contextlib.suppress(OSError):
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            yield entry.path, entry.stat(follow_symlinks=False)
        except OSError:
            continue


def dir_bytes(path: Path) -> int:
    """Bytes of every file under `path`."""
    return sum(st.st_size for _path, st in walk_files(path))
