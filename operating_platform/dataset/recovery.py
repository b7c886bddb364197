"""Recovery: bring a dataset left by a killed or failed session back to a valid state, losing nothing.

info.json is the commit point: an episode it counts is committed, anything else is not. So
recovery
1. trims the metadata files to what info.json counts (a torn or extra line or row is from a
   commit that never reached info.json) and removes files of episodes it does not count, along
   with temporary files: the half-published episode is rolled back;
2. goes through the episode journals in recording order: a journal whose commit reached
   info.json is retired; every other closed journal (the episodes the operator had ended) is
   encoded and committed with the next index; the journal of the episode being recorded at the
   crash is committed with its intact frames (`salvage_partial`) or set aside whole;
3. on request, brings back episodes set aside earlier (`retry_failed`, `salvage_partial`) and
   commits them under the next free index;
4. finishes packing the files (v3.0; see compact.py), including a merge a kill interrupted,
   and a compressed copy's swap a kill interrupted (see swap.py);
5. removes what retired journals and staging left behind.
A full disk is not the episodes' fault: their journals stay where they are, recovery stops and
says how much space it needs. Running it twice changes nothing the second time. Each step is
reported, episode by episode.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from operating_platform import faults
from operating_platform.dataset import swap
from operating_platform.dataset.diskspace import MB, MIN_FREE_BYTES, free_bytes, is_disk_full
from operating_platform.dataset.finalize import finalize_journal
from operating_platform.dataset.fsutil import make_dirs_within, write_json_atomic
from operating_platform.dataset.journal import (
    CLOSED_FILE,
    ROWS_FILE,
    JournalError,
    JournalReader,
)
from operating_platform.dataset.journal_store import (
    FAILED,
    JOURNAL,
    PARTIAL,
    bring_back,
    journals_in,
    leftovers,
    recording_order,
    retire_journal,
    set_aside_journal,
    set_aside_reason,
    staging_dir,
)
from operating_platform.dataset.lock import ENCODER_LOCK, FileLock, lock_session
from operating_platform.dataset.metadata import (
    INFO_PATH,
    PRIVATE_DIR,
    DatasetError,
    DoRobotDatasetMetadata,
)
from operating_platform.dataset.publish import committing_index
from operating_platform.dataset.video import VideoSettings

ENCODER_WAIT_S = 30.0


@dataclass
class RecoveryReport:
    """What recovery found and did, one line per action.

    `no_space` says why recovery stopped with episodes still in `journal/`; with that, or with
    anything in `set_aside`, the `dorobot recover` command exits non-zero.
    """

    actions: list[str] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)
    set_aside: list[Path] = field(default_factory=list)
    no_space: str | None = None
    still_set_aside: dict[str, int] = field(default_factory=dict)  # kind -> count, set aside earlier

    @property
    def changed(self) -> bool:
        return bool(self.actions)


class _DiskFull(Exception):
    """Raised inside recovery to stop at the first journal the disk has no room for."""


def recover_dataset(
    root: Path,
    salvage_partial: bool = False,
    say: Callable[[str], None] = lambda _line: None,
    hold_session_lock: bool = True,
    retry_failed: bool = False,
) -> RecoveryReport:
    """Recover `root` in place; `say` receives each action as it happens.

    `salvage_partial` commits the intact frames of episodes cut short by a crash, this one's
    and any set aside in `partial/` earlier; `retry_failed` tries again the episodes set aside in
    `failed/`. Both commit under the next free index.
    """
    root = Path(root)
    report = RecoveryReport()

    def act(line: str) -> None:
        report.actions.append(line)
        say(line)

    if not (root / INFO_PATH).exists():
        raise DatasetError(f"{root} is not a dataset (no {INFO_PATH})")
    session = lock_session(root) if hold_session_lock else None
    encoders = FileLock(root, ENCODER_LOCK)
    try:
        if not encoders.acquire(wait_s=ENCODER_WAIT_S):
            raise DatasetError(f"an encoder process of an earlier session still works in {root}; try again")
        info = DoRobotDatasetMetadata.read_info(root)
        DoRobotDatasetMetadata.layout(info.get("codebase_version")).trim_to_info(root, info, act)
        meta = DoRobotDatasetMetadata.load(root)
        meta.finish_interrupted(act)
        swap.finish_interrupted(root, act)
        _roll_back_uncounted_files(meta, act)
        try:
            for journal in journals_in(meta.private_dir):
                faults.pause("recover")
                _recover_journal(meta, journal, salvage_partial, report, act)
            for journal in _set_aside_to_retry(meta, retry_failed, salvage_partial):
                _retry_set_aside(meta, journal, report, act)
            meta.compact(final=True, say=act)
        except _DiskFull:
            _report_no_space(meta, report, act)
        _remove_leftovers(meta, act)
        this_run = set(report.set_aside)
        for kind in (FAILED, PARTIAL):
            if earlier := [j for j in journals_in(meta.private_dir, kind) if j not in this_run]:
                report.still_set_aside[kind] = len(earlier)
    finally:
        encoders.release()
        if session is not None:
            session.release()
    return report


def _roll_back_uncounted_files(meta: DoRobotDatasetMetadata, act: Callable[[str], None]) -> None:
    """Take away what the dataset does not count: a half-published episode, temporary files.

    A half-published episode's videos go back to its journal's staging, where they may be the
    only copy of frames whose raw pixels were already released; anything else is deleted.
    """
    expected = meta.committed_files()
    keys = meta.video_keys
    committing = _journals_being_committed(meta)
    returns = {
        meta.video_path(index, key): staging_dir(journal) / f"{key}.mp4"
        for index, journal in committing.items()
        for key in keys
    }
    for top in ("data", "videos", "meta", f"{PRIVATE_DIR}/timing"):
        base = meta.root / top
        if not base.exists():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            is_meta = top == "meta" and not path.name.startswith(".")
            if path in expected or is_meta:
                continue
            rel = path.relative_to(meta.root)
            if path in returns and not returns[path].exists():
                make_dirs_within(meta.root, returns[path].parent)
                os.replace(path, returns[path])
                act(f"{rel}: not committed; moved back to staging to be committed again")
            else:
                path.unlink()
                act(f"{rel}: removed (not part of any committed episode)")


def _journals_being_committed(meta: DoRobotDatasetMetadata) -> dict[int, Path]:
    """Episode index -> journal, for journals whose commit did not reach info.json."""
    found = {}
    for journal in journals_in(meta.private_dir):
        index = committing_index(journal)
        if index is not None and index >= meta.total_episodes:
            found[index] = journal
    return found


def _recover_journal(
    meta: DoRobotDatasetMetadata,
    journal: Path,
    salvage_partial: bool,
    report: RecoveryReport,
    act: Callable[[str], None],
) -> None:
    name = journal.name
    index = committing_index(journal)
    if index is not None and index < meta.total_episodes:
        retire_journal(journal)
        act(f"journal {name}: episode {index} was already committed; removed its journal")
        return
    if not (journal / ROWS_FILE).exists():
        # Cut short while it was opened: its rows file is created before any frame is written.
        retire_journal(journal)
        act(f"journal {name}: no frame was captured; removed")
        return
    try:
        reader = JournalReader(journal)
        if reader.closed is None:
            frames = reader.complete_frames()
            if frames == 0:
                retire_journal(journal)
                act(f"journal {name}: no complete frame was captured; removed")
                return
            if not salvage_partial:
                why = "the episode being recorded when the session ended"
                report.set_aside.append(set_aside_journal(journal, PARTIAL, why))
                act(
                    f"journal {name}: the episode being recorded ({frames} frames) is set aside whole in "
                    f"{PRIVATE_DIR}/{PARTIAL}/{name}; `dorobot recover {meta.root} --salvage-partial` "
                    "commits it"
                )
                return
            write_json_atomic(journal / CLOSED_FILE, {"episode_index": meta.total_episodes, "frames": frames})
            act(f"journal {name}: salvaging the partial episode's {frames} intact frames")
        video = VideoSettings(**reader.header.get("video", {}))
        index = finalize_journal(journal, meta, video)
    except (JournalError, OSError, ValueError) as exc:
        if is_disk_full(exc):
            raise _DiskFull from exc
        report.set_aside.append(set_aside_journal(journal, FAILED, str(exc)))
        act(
            f"journal {name}: cannot be committed ({exc}); set aside whole in {PRIVATE_DIR}/{FAILED}/{name}; "
            f"`dorobot recover {meta.root} --retry-failed` tries again once the cause is fixed"
        )
        return
    report.committed.append(index)
    act(f"journal {name}: committed as episode {index} ({meta.episode_length(index)} frames)")


def _set_aside_to_retry(
    meta: DoRobotDatasetMetadata, retry_failed: bool, salvage_partial: bool
) -> list[Path]:
    kinds = [kind for kind, wanted in ((FAILED, retry_failed), (PARTIAL, salvage_partial)) if wanted]
    found = [journal for kind in kinds for journal in journals_in(meta.private_dir, kind)]
    return sorted(found, key=recording_order)


def _retry_set_aside(
    meta: DoRobotDatasetMetadata, journal: Path, report: RecoveryReport, act: Callable[[str], None]
) -> None:
    kind = journal.parent.name
    act(f"{PRIVATE_DIR}/{kind}/{journal.name}: set aside earlier ({set_aside_reason(journal)}); trying again")
    _recover_journal(meta, bring_back(journal), True, report, act)


def _report_no_space(
    meta: DoRobotDatasetMetadata, report: RecoveryReport, act: Callable[[str], None]
) -> None:
    """Everything not yet committed stays in `journal/`; say how much room finishing it takes."""
    waiting = journals_in(meta.private_dir, JOURNAL)
    needed = MIN_FREE_BYTES + sum(_bytes_to_commit(j) for j in waiting)
    free = free_bytes(meta.root)
    short = max(needed - free, MB) / MB
    report.no_space = (
        f"the disk holding {meta.root} is full ({free / MB:.0f} MB free): {len(waiting)} "
        f"episode(s) stay in {PRIVATE_DIR}/{JOURNAL}, nothing is lost; free at least {short:.0f} MB, "
        f"then run `dorobot recover {meta.root}` again"
    )
    act(report.no_space)


def _bytes_to_commit(journal: Path) -> int:
    """A generous estimate of what committing a journal writes: its videos and its parquet."""
    raw = sum(p.stat().st_size for p in journal.rglob("*") if p.is_file())
    return raw // 10 + 2 * MB


def _remove_leftovers(meta: DoRobotDatasetMetadata, act: Callable[[str], None]) -> None:
    for entry in leftovers(meta.private_dir):
        shutil.rmtree(entry, ignore_errors=True)
        act(f"{entry.parent.name} {entry.name}: removed leftovers of an earlier attempt")
