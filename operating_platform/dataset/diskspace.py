"""Free disk space: how much recording needs, and the error when it runs out."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from operating_platform.dataset.features import video_keys

MB = 2**20
# Below this much free space recording stops: room to close the episode, encode the ones
# waiting, and write the metadata, whatever the camera setup.
MIN_FREE_BYTES = 32 * MB
# ... or below this many seconds of raw journal, if that is more.
MARGIN_SECONDS = 2.0


class DiskFullError(OSError):
    """The disk holding the dataset is (about to be) full; the message says how much is needed."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def raw_bytes_per_second(features: dict[str, dict[str, Any]], fps: int) -> int:
    """What the journal grows by per second of recording."""
    pixels = sum(int(features[k]["shape"][0] * features[k]["shape"][1] * 3) for k in video_keys(features))
    return (pixels + 1024) * fps


def low_water_bytes(features: dict[str, dict[str, Any]], fps: int) -> int:
    """Free space below which recording stops."""
    return max(MIN_FREE_BYTES, int(MARGIN_SECONDS * raw_bytes_per_second(features, fps)))


def check_room(path: Path, needed: int, what: str) -> None:
    """Raise `DiskFullError` unless `path`'s disk has `needed` bytes free."""
    free = free_bytes(path)
    if free < needed:
        raise DiskFullError(
            f"the disk holding {path} is almost full ({free / MB:.0f} MB free, {what} needs "
            f"{needed / MB:.0f} MB); free at least {(needed - free) / MB:.0f} MB"
        )
