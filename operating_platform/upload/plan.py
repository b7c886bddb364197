"""What one upload round sends, in the order that keeps the remote copy a valid dataset."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from operating_platform.dataset.metadata import INFO_PATH
from operating_platform.dataset.snapshot import Snapshot
from operating_platform.upload.ledger import Entry, UploadLedger

# The dataset's own folders: a remote file under them that the dataset no longer has is removed.
DATASET_FOLDERS = ("data", "videos", "meta")


class LocalFileMissing(FileNotFoundError):
    """A file the dataset's metadata lists is not on the local disk."""


@dataclass(frozen=True)
class Item:
    """One file to send: a data or video file read from `path`, or metadata bytes `data`."""

    rel: str
    size: int
    path: Path | None = None
    data: bytes | None = None
    mtime_ns: int = 0
    sha256: str = ""


@dataclass
class Plan:
    """A round: `files` (data, videos), then `meta` (info.json last), then `deletions`.

    Everything in it comes from one `snapshot`, so the metadata it publishes describes exactly
    the files it sends with it (or sent in earlier rounds). `retag` asks for the destination's
    version tag to be moved to its newest state (the Hub's).
    """

    snapshot: Snapshot
    files: list[Item] = field(default_factory=list)
    meta: list[Item] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    retag: bool = False

    @property
    def items(self) -> list[Item]:
        return [*self.files, *self.meta]

    @property
    def bytes(self) -> int:
        return sum(item.size for item in self.items)

    @property
    def empty(self) -> bool:
        return not self.files and not self.meta and not self.deletions and not self.retag


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_plan(
    root: Path,
    snapshot: Snapshot,
    ledger: UploadLedger,
    remote_paths: set[str],
    extra_meta: dict[str, bytes] | None = None,
    retag: bool = False,
) -> Plan:
    """The round that brings the destination from what `ledger` records to `snapshot`.

    A file whose size and mtime match its record is not read at all; one whose mtime changed
    is hashed, and sent only if its content did change. `extra_meta` (the Hub's dataset card)
    goes with the metadata.
    """
    plan = Plan(snapshot=snapshot, retag=retag)
    for rel in snapshot.files:
        path = root / rel
        try:
            st = path.stat()
        except FileNotFoundError:
            raise LocalFileMissing(f"{path} is missing; run `dorobot verify {root}`") from None
        entry = ledger.files.get(rel)
        if entry is not None and entry.size == st.st_size:
            if entry.mtime_ns == st.st_mtime_ns:
                continue
            digest = sha256_file(path)
            if digest == entry.sha256 and os.stat(path).st_mtime_ns == st.st_mtime_ns:
                ledger.put(rel, Entry(st.st_size, st.st_mtime_ns, digest))  # touched, not changed
                continue
        plan.files.append(Item(rel, st.st_size, path=path, mtime_ns=st.st_mtime_ns))
    meta = {**snapshot.meta, **(extra_meta or {})}
    for rel in sorted(meta, key=lambda r: (r == INFO_PATH, r)):
        data = meta[rel]
        digest = sha256_bytes(data)
        if not ledger.matches(rel, len(data), digest):
            plan.meta.append(Item(rel, len(data), data=data, sha256=digest))
    keep = set(snapshot.files) | set(meta)
    plan.deletions = sorted(
        rel for rel in remote_paths if rel.split("/", 1)[0] in DATASET_FOLDERS and rel not in keep
    )
    return plan
