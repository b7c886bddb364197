"""Where episode journals live under `ROOT/.dorobot/`, and how they move between places.

    journal/<id>/    episodes being recorded or waiting to be committed: recovery's work list
    staging/<id>/    the encoded videos and parquet of journal <id>, before they are published
    retired/<id>/    journals whose episode is committed (or discarded): only left to delete
    failed/<id>/     set aside whole: could not be committed (the cause is in error.txt)
    partial/<id>/    set aside whole: the episode being recorded when a session died

Every move between these folders is one rename on one filesystem, so a kill leaves a journal
wholly in one place. Above all, a journal leaves `journal/` in one step when it is retired: a
journal deleted file by file could be caught by a kill with its "already committed" marker gone
and its frames still there, and recovery would commit it a second time.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from operating_platform import faults
from operating_platform.dataset.fsutil import make_dirs_within

JOURNAL, STAGING, RETIRED, FAILED, PARTIAL = "journal", "staging", "retired", "failed", "partial"
SET_ASIDE = (FAILED, PARTIAL)
ERROR_FILE = "error.txt"
CLOSED_FILE = "closed.json"
COMMIT_FILE = "commit.json"


def private_dir_of(journal_dir: Path) -> Path:
    """`ROOT/.dorobot` for a journal in any of its folders."""
    return Path(journal_dir).parent.parent


def staging_dir(journal_dir: Path) -> Path:
    return private_dir_of(journal_dir) / STAGING / Path(journal_dir).name


def _move(journal_dir: Path, kind: str) -> Path:
    """Rename a journal into `.dorobot/<kind>/`, never recreating a dataset folder moved away."""
    private = private_dir_of(journal_dir)
    target = private / kind / journal_dir.name
    make_dirs_within(private.parent, target.parent)
    os.rename(journal_dir, target)
    return target


def retire_journal(journal_dir: Path) -> None:
    """Take a committed or discarded journal out of recovery's reach at once, then delete it.

    The rename is the moment it stops counting; what is left in `retired/` after a kill is
    removed by the next recovery and never read.
    """
    journal_dir = Path(journal_dir)
    if journal_dir.exists():
        retired = _move(journal_dir, RETIRED)
    else:
        retired = private_dir_of(journal_dir) / RETIRED / journal_dir.name
    faults.pause("retire")
    shutil.rmtree(staging_dir(journal_dir), ignore_errors=True)
    shutil.rmtree(retired, ignore_errors=True)


def set_aside_journal(journal_dir: Path, kind: str, why: str) -> Path:
    """Move a journal whole to `.dorobot/<kind>/`, with `why` in its error.txt; returns where.

    Used for an episode that cannot be committed: its raw data is kept, never deleted, and the
    dataset carries on without a gap. Its encoded copies in staging are kept too (they may hold
    frames whose raw pixels were already released) and come back with it.
    """
    journal_dir = Path(journal_dir)
    (journal_dir / ERROR_FILE).write_text(f"{why}\n", encoding="utf-8")
    # A commit that was rolled back must not pass, once brought back, for one that succeeded.
    (journal_dir / COMMIT_FILE).unlink(missing_ok=True)
    return _move(journal_dir, kind)


def bring_back(set_aside_dir: Path) -> Path:
    """Return a set-aside journal to `journal/`, where recovery commits it; returns its new place."""
    set_aside_dir = Path(set_aside_dir)
    (set_aside_dir / COMMIT_FILE).unlink(missing_ok=True)
    return _move(set_aside_dir, JOURNAL)


def recording_order(path: Path) -> tuple[int, str]:
    """Sort key: ended episodes by the index they were closed as, the open one after them."""
    try:
        closed = json.loads((path / CLOSED_FILE).read_text(encoding="utf-8"))
        return (int(closed["episode_index"]), path.name)
    except (OSError, ValueError, KeyError, TypeError):
        return (1 << 62, path.name)


def journals_in(private_dir: Path, kind: str = JOURNAL) -> list[Path]:
    """The journals in `.dorobot/<kind>/`, in recording order."""
    folder = Path(private_dir) / kind
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=recording_order)


def set_aside_reason(journal_dir: Path) -> str:
    try:
        return (Path(journal_dir) / ERROR_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"


def leftovers(private_dir: Path) -> Iterator[Path]:
    """Retired journals a kill left half-deleted, and staging folders whose journal is gone."""
    private_dir = Path(private_dir)
    yield from (p for p in (private_dir / RETIRED).glob("*") if p.is_dir())
    homes = [private_dir / kind for kind in (JOURNAL, *SET_ASIDE)]
    for entry in (private_dir / STAGING).glob("*"):
        if not any((home / entry.name).exists() for home in homes):
            yield entry
