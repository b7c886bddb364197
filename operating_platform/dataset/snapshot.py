"""A consistent view of a dataset that is still being written: what an upload may send.

The recorder keeps committing episodes (and, in v3.0, packing files) while an upload reads the
folder. `read_snapshot` returns the metadata and the file list of one committed state, never a
mix of two: info.json, the commit point, is read before and after everything else until both
reads agree, and the dataset's layout cuts the rest to what info.json counts, or says to read
again while a change is under way (`DoRobotDatasetMetadata.snapshot`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operating_platform.dataset.metadata import INFO_PATH, DatasetError, DoRobotDatasetMetadata

ATTEMPTS = 200


@dataclass(frozen=True)
class Snapshot:
    """One committed state of a dataset.

    `meta` holds the bytes of every file under `meta/` (relative path -> content, info.json
    included) exactly as a reader of that state must see them; `files` lists the relative
    paths of the `data/` and `videos/` files the committed episodes use. Nothing under the
    recorder's own `.dorobot/` is ever part of it.
    """

    codebase_version: str
    total_episodes: int
    meta: dict[str, bytes] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def info(self) -> dict[str, Any]:
        return json.loads(self.meta[INFO_PATH])


def read_snapshot(root: Path) -> Snapshot:
    """The dataset at `root` as of one commit; raises `DatasetError` if it is not a dataset."""
    root = Path(root)
    for _ in range(ATTEMPTS):
        before = _read_info(root)
        info = _parse_info(root, before)
        layout = DoRobotDatasetMetadata.layout(info.get("codebase_version"))
        meta = _read_meta(root)
        state = layout.snapshot(root, info, meta) if _read_info(root) == before else None
        if state is None:
            time.sleep(0.01)  # a commit or a merge is under way: read the state it leaves
            continue
        meta, files = state
        meta[INFO_PATH] = before
        return Snapshot(str(info["codebase_version"]), int(info["total_episodes"]), meta, files)
    raise DatasetError(
        f"{root}: its metadata kept changing or disagrees with info.json; run `dorobot verify {root}`"
    )


def _read_info(root: Path) -> bytes:
    try:
        return (root / INFO_PATH).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{root} is not a dataset: {INFO_PATH} is missing") from None


def _parse_info(root: Path, data: bytes) -> dict[str, Any]:
    try:
        info = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{root}: damaged {INFO_PATH} ({exc}); run `dorobot verify {root}`") from None
    if not isinstance(info, dict):
        raise DatasetError(f"{root}: damaged {INFO_PATH}; run `dorobot verify {root}`")
    return info


def _read_meta(root: Path) -> dict[str, bytes]:
    meta: dict[str, bytes] = {}
    folder = root / "meta"
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(root)
        # Hidden names are files being written (`.info.json.tmp`), never part of a commit.
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        try:
            meta[rel.as_posix()] = path.read_bytes()
        except FileNotFoundError:
            continue  # replaced or removed while listed; the info.json check decides
    return meta
