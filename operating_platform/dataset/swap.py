"""Putting a re-encoded copy of a committed video file in its place, safe against a kill.

A copy holds the same frames at the same timestamps (checked before it gets here), so no row
of the dataset changes: only the file's bytes. The copy is staged under `.dorobot/compress/`,
on the dataset's filesystem, and renamed over the original, so the path holds the old file or
the new one at every instant. Before the rename, `swap.json` names the copy and the original's
inode; recovery finishes a swap it names (the copy was checked) if the original is still in
place, and removes any other staged copy.

Files are replaced only under `files.lock`, which packing (v3.0) takes too: a copy made from a
file that was packed or renamed meanwhile no longer matches the recorded inode and size, and is
dropped instead of swapped.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from operating_platform import faults
from operating_platform.dataset.compress_target import compress_dir
from operating_platform.dataset.fsutil import fsync_dir, fsync_file, write_json_atomic
from operating_platform.dataset.lock import COMPRESS_LOCK, FILES_LOCK, FileLock

SWAP_FILE = "swap.json"
STAGED_SUFFIX = ".staged.mp4"


@dataclass(frozen=True)
class FileId:
    """Which file a path held when a copy of it was made."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileId:
        st = path.stat()
        return cls(st.st_ino, st.st_size, st.st_mtime_ns)


def staged_path(root: Path, relative: str) -> Path:
    return compress_dir(root) / (relative.replace("/", "__") + STAGED_SUFFIX)


@contextlib.contextmanager
def files_lock(root: Path) -> Iterator[None]:
    """Held while committed files are replaced or renamed (a swap here, packing in v3.0)."""
    lock = FileLock(Path(root), FILES_LOCK)
    lock.acquire(wait_s=float("inf"))
    try:
        yield
    finally:
        lock.release()


def swap_in(root: Path, relative: str, staged: Path, original: FileId) -> bool:
    """Rename `staged` over `root/relative` if that is still the file the copy was made from.

    Returns False (and removes the copy) if the file changed meanwhile.
    """
    root = Path(root)
    target = root / relative
    fsync_file(staged)
    with files_lock(root):
        try:
            unchanged = FileId.of(target) == original
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            staged.unlink(missing_ok=True)
            return False
        intent = compress_dir(root) / SWAP_FILE
        write_json_atomic(intent, {"target": relative, "staged": staged.name, "inode": original.inode})
        faults.pause("swap-1")
        os.replace(staged, target)
        fsync_dir(target.parent)
        faults.pause("swap-2")
        intent.unlink()
    return True


def finish_interrupted(root: Path, say: Callable[[str], None]) -> None:
    """Recovery: finish the swap `swap.json` names if its original is still there; drop copies
    no compressor is working on any more."""
    root = Path(root)
    folder = compress_dir(root)
    if not folder.exists():
        return
    intent_path = folder / SWAP_FILE
    with files_lock(root):  # a live compressor writes and removes swap.json only under it
        if intent_path.exists():
            intent = json.loads(intent_path.read_text(encoding="utf-8"))
            staged, target = folder / intent["staged"], root / intent["target"]
            if staged.exists() and _inode(target) == intent["inode"]:
                os.replace(staged, target)
                fsync_dir(target.parent)
                say(f"{intent['target']}: finished swapping in its compressed copy, interrupted earlier")
            intent_path.unlink()
    compressor = FileLock(root, COMPRESS_LOCK)
    if not compressor.acquire():
        return  # a compressor of an earlier session still works: its copy is not a leftover
    try:
        for leftover in folder.glob(f"*{STAGED_SUFFIX}"):
            leftover.unlink()
            say(f"{leftover.name}: removed a compressed copy that was not swapped in")
    finally:
        compressor.release()


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None
