"""Recovery: bring a dataset left by a killed or failed session back to a valid state, losing nothing.

info.json is the commit point: an episode it counts is committed, anything else is not. So
recovery
1. trims the JSONL files to the lines info.json counts (a torn or extra line is from a commit
   that never reached info.json) and removes files of episodes it does not count, along with
   temporary files: the half-published episode is rolled back;
2. goes through the episode journals in recording order: a journal whose commit reached
   info.json is deleted; every other closed journal (the episodes the operator had ended) is
   encoded and committed with the next index; the journal of the episode being recorded at the
   crash is committed with its intact frames (`salvage_partial`) or set aside whole;
3. removes staging leftovers.
Running it twice changes nothing the second time. Each step is reported, episode by episode.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from operating_platform.dataset.features import video_keys
from operating_platform.dataset.finalize import (
    committing_index,
    discard_journal,
    finalize_journal,
    set_aside_journal,
    staging_dir_for,
)
from operating_platform.dataset.fsutil import make_dirs_within, write_bytes_atomic, write_json_atomic
from operating_platform.dataset.journal import (
    CLOSED_FILE,
    HEADER_FILE,
    ROWS_FILE,
    JournalError,
    JournalReader,
)
from operating_platform.dataset.lock import ENCODER_LOCK, FileLock, lock_session
from operating_platform.dataset.metadata import (
    EPISODES_PATH,
    EPISODES_STATS_PATH,
    INFO_PATH,
    PRIVATE_DIR,
    TASKS_PATH,
    DatasetError,
    DoRobotDatasetMetadata,
)
from operating_platform.dataset.video import VideoSettings

ENCODER_WAIT_S = 30.0


@dataclass
class RecoveryReport:
    """What recovery found and did, one line per action."""

    actions: list[str] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)
    set_aside: list[Path] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def recover_dataset(
    root: Path,
    salvage_partial: bool = False,
    say: Callable[[str], None] = lambda _line: None,
    hold_session_lock: bool = True,
) -> RecoveryReport:
    """Recover `root` in place; `say` receives each action as it happens."""
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
        _trim_jsonl(root, info, act)
        meta = DoRobotDatasetMetadata.load(root)
        _roll_back_uncounted_files(meta, act)
        for journal in _journals_in_order(meta.private_dir / "journal"):
            _recover_journal(meta, journal, salvage_partial, report, act)
        _remove_stale_staging(meta, act)
    finally:
        encoders.release()
        if session is not None:
            session.release()
    return report


def _trim_jsonl(root: Path, info: dict, act: Callable[[str], None]) -> None:
    counts = {
        TASKS_PATH: info["total_tasks"],
        EPISODES_PATH: info["total_episodes"],
        EPISODES_STATS_PATH: info["total_episodes"],
    }
    for rel, keep in counts.items():
        path = root / rel
        data = path.read_bytes() if path.exists() else b""
        lines = data.split(b"\n")
        complete = lines[:-1]  # the part after the last newline is torn (or empty)
        if len(complete) < keep:
            raise DatasetError(
                f"{path}: {len(complete)} complete lines but info.json counts {keep}; "
                f"this is damage recovery cannot undo, run `dorobot verify {root}`"
            )
        wanted = b"".join(line + b"\n" for line in complete[:keep])
        if wanted != data:
            write_bytes_atomic(path, wanted)
            dropped = len(complete) - keep + (1 if lines[-1] else 0)
            act(f"{rel}: removed {dropped} line(s) of a commit that never reached info.json")


def _roll_back_uncounted_files(meta: DoRobotDatasetMetadata, act: Callable[[str], None]) -> None:
    """Take away what the dataset does not count: a half-published episode, temporary files.

    A half-published episode's videos go back to its journal's staging, where they may be the
    only copy of frames whose raw pixels were already released; anything else is deleted.
    """
    expected = {meta.data_path(i) for i in range(meta.total_episodes)}
    keys = video_keys(meta.features)
    for key in keys:
        expected |= {meta.video_path(i, key) for i in range(meta.total_episodes)}
    committing = _journals_being_committed(meta)
    returns = {
        meta.video_path(index, key): staging_dir_for(meta, journal) / f"{key}.mp4"
        for index, journal in committing.items()
        for key in keys
    }
    for top in ("data", "videos", "meta"):
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
    for journal in _journals_in_order(meta.private_dir / "journal"):
        index = committing_index(journal)
        if index is not None and index >= meta.total_episodes:
            found[index] = journal
    return found


def _journals_in_order(journal_root: Path) -> list[Path]:
    def order(path: Path) -> tuple[int, str]:
        try:
            closed = json.loads((path / CLOSED_FILE).read_text(encoding="utf-8"))
            return (int(closed["episode_index"]), path.name)
        except (OSError, ValueError, KeyError):
            return (1 << 62, path.name)  # the episode being recorded comes after every ended one

    if not journal_root.exists():
        return []
    return sorted((p for p in journal_root.iterdir() if p.is_dir()), key=order)


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
        discard_journal(meta, journal)
        act(f"journal {name}: episode {index} was already committed; removed its journal")
        return
    if not (journal / HEADER_FILE).exists() and not (journal / ROWS_FILE).exists():
        # Cut short before its header was written, which comes before any frame.
        discard_journal(meta, journal)
        act(f"journal {name}: no frame was captured; removed")
        return
    try:
        reader = JournalReader(journal)
        if reader.closed is None:
            frames = reader.complete_frames()
            if frames == 0:
                discard_journal(meta, journal)
                act(f"journal {name}: no complete frame was captured; removed")
                return
            if not salvage_partial:
                why = "the episode being recorded when the session ended"
                report.set_aside.append(set_aside_journal(meta, journal, "partial", why))
                act(
                    f"journal {name}: the episode being recorded ({frames} frames) is set aside whole in "
                    f"{PRIVATE_DIR}/partial/{name}; `dorobot recover --salvage-partial` commits it"
                )
                return
            write_json_atomic(journal / CLOSED_FILE, {"episode_index": meta.total_episodes, "frames": frames})
            act(f"journal {name}: salvaging the partial episode's {frames} intact frames")
        video = VideoSettings(**reader.header.get("video", {}))
        index = finalize_journal(journal, meta, video)
    except (JournalError, OSError, ValueError) as exc:
        report.set_aside.append(set_aside_journal(meta, journal, "failed", str(exc)))
        act(f"journal {name}: cannot be committed ({exc}); set aside whole in {PRIVATE_DIR}/failed/{name}")
        return
    report.committed.append(index)
    act(f"journal {name}: committed as episode {index} ({meta.episode_length(index)} frames)")


def _remove_stale_staging(meta: DoRobotDatasetMetadata, act: Callable[[str], None]) -> None:
    staging = meta.private_dir / "staging"
    if not staging.exists():
        return
    for entry in staging.iterdir():
        if not (meta.private_dir / "journal" / entry.name).exists():
            shutil.rmtree(entry, ignore_errors=True)
            act(f"staging {entry.name}: removed leftovers of an earlier attempt")
