"""Packing a v3.0 dataset's small files into files of LeRobot's sizes, safe against a kill.

Episodes are committed into files of their own (formats/v30.py). Here consecutive files of one
kind (the data, or one camera's videos) are packed greedily into groups of at most the
dataset's size cap (`data_files_size_in_mb`, `video_files_size_in_mb`). A group is merged once
it is closed, i.e. the next file did not fit, so each file is rewritten about once however long
the session; the last, still growing group is merged only when asked (`final`: the end of a
session, `dorobot recover`, `dorobot convert`). Files after a merged group are renamed down so
the numbering stays dense, as LeRobot's own writer leaves it.

A merge is built in `.dorobot/compact/`, then its plan is written: that is the moment it
counts. Applying the plan (the merged file renamed over the group's first file, the others
removed, later files renamed down, the episodes' rows rewritten) checks each file's inode
before touching it, so applying it again after a kill, as recovery does, finishes the job
without ever removing the wrong file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import pyarrow as pa
import pyarrow.parquet as pq

from operating_platform import faults
from operating_platform.dataset.fsutil import fsync_dir, fsync_file, make_dirs_within, write_json_atomic
from operating_platform.dataset.metadata import INFO_PATH
from operating_platform.dataset.swap import files_lock

if TYPE_CHECKING:
    from operating_platform.dataset.formats.v30 import V30Metadata

COMPACT_DIR = "compact"
PLAN_FILE = "plan.json"
MB = 1024 * 1024  # LeRobot's "MB" in data_files_size_in_mb


@dataclass
class _File:
    """One file of a kind and the episodes it holds, in order."""

    chunk: int
    file: int
    path: Path
    size: int
    codec: str | None = None  # videos only: files of two codecs cannot be joined by copying
    episodes: list[int] = field(default_factory=list)


def _files(meta: V30Metadata, stream: str) -> list[_File]:
    files: list[_File] = []
    for row in meta.episode_rows:
        slot = (row[f"{stream}/chunk_index"], row[f"{stream}/file_index"])
        if not files or (files[-1].chunk, files[-1].file) != slot:
            path = meta.stream_path(stream, *slot)
            codec = None if stream == "data" else _codec(path)
            files.append(_File(*slot, path, path.stat().st_size, codec))
        files[-1].episodes.append(row["episode_index"])
    return files


def _groups(files: list[_File], cap: int) -> list[list[_File]]:
    groups: list[list[_File]] = []
    size = 0
    for f in files:
        if groups and size + f.size <= cap and f.codec == groups[-1][-1].codec:
            groups[-1].append(f)
            size += f.size
        else:
            groups.append([f])
            size = f.size
    return groups


# (inode, size, mtime) -> codec: packing looks at every file after each commit, and a file
# changes identity whenever it is rewritten, so an entry never goes stale.
_codecs: dict[tuple[int, int, int], str] = {}


def _codec(path: Path) -> str:
    st = path.stat()
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _codecs:
        with av.open(str(path)) as container:
            _codecs[key] = container.streams.video[0].codec_context.codec.canonical_name
    return _codecs[key]


def _cap(meta: V30Metadata, stream: str) -> int:
    key = "data_files_size_in_mb" if stream == "data" else "video_files_size_in_mb"
    return int(meta.info[key] * MB)


def settled_files(meta: V30Metadata, stream: str, final: bool) -> set[Path]:
    """The video files packing will not merge again: alone in a closed group (with `final`,
    the session is over and the last group is closed too). Only these may be re-encoded."""
    groups = _groups(_files(meta, stream), _cap(meta, stream))
    closed = groups if final else groups[:-1]
    return {group[0].path for group in closed if len(group) == 1}


def compact(meta: V30Metadata, final: bool, say: Callable[[str], None] = lambda _line: None) -> int:
    """Merge every closed group (and with `final` the last one too); returns how many merges."""
    merged = 0
    for stream in meta.streams:
        # Held from looking at the files to the plan applied: a compressed copy swapped in
        # meanwhile would change a file of the group under the merge.
        with files_lock(meta.root):
            while _merge_next(meta, stream, final, say):
                merged += 1
    return merged


def _merge_next(meta: V30Metadata, stream: str, final: bool, say: Callable[[str], None]) -> bool:
    groups = _groups(_files(meta, stream), _cap(meta, stream))
    closed = groups if final else groups[:-1]
    group = next((g for g in closed if len(g) > 1), None)
    if group is None:
        return False
    say(
        f"{stream}: packing episodes {group[0].episodes[0]}-{group[-1].episodes[-1]} into "
        f"{meta.relative(group[0].path)} ({len(group)} files)"
    )
    apply_plan(meta, _build(meta, stream, group, groups))
    return True


def _build(meta: V30Metadata, stream: str, group: list[_File], groups: list[list[_File]]) -> dict[str, Any]:
    """Write the merged file into staging and the plan that puts it in place; returns the plan."""
    staging = meta.private_dir / COMPACT_DIR
    make_dirs_within(meta.root, staging)
    target = group[0]
    staged = staging / f"merged{target.path.suffix}"
    rows: dict[int, dict[str, Any]] = {}
    if stream == "data":
        tables = [pq.read_table(f.path) for f in group]
        pq.write_table(pa.concat_tables(tables), staged, compression="snappy")
        for f in group:
            for episode in f.episodes:
                rows[episode] = {"data/chunk_index": target.chunk, "data/file_index": target.file}
    else:
        offsets = _merge_videos([f.path for f in group], staged, [meta.frames_in(f.episodes) for f in group])
        committed = meta.episode_rows  # a copy: read it once, not once per episode
        for f, offset in zip(group, offsets, strict=True):
            for episode in f.episodes:
                row = committed[episode]
                rows[episode] = {
                    f"{stream}/chunk_index": target.chunk,
                    f"{stream}/file_index": target.file,
                    f"{stream}/from_timestamp": row[f"{stream}/from_timestamp"] + offset,
                    f"{stream}/to_timestamp": row[f"{stream}/to_timestamp"] + offset,
                }
    fsync_file(staged)
    # Files after the group move down to follow it, keeping the numbering dense.
    after = [f for g in groups[groups.index(group) + 1 :] for f in g]
    moves = []
    slot = (target.chunk, target.file)
    for f in after:
        slot = meta.next_slot(*slot)
        destination = meta.stream_path(stream, *slot)
        moves.append(
            {"from": meta.relative(f.path), "to": meta.relative(destination), "inode": _inode(f.path)}
        )
        for episode in f.episodes:
            rows.setdefault(episode, {}).update(
                {f"{stream}/chunk_index": slot[0], f"{stream}/file_index": slot[1]}
            )
    plan = {
        "stream": stream,
        "staged": meta.relative(staged),
        "target": meta.relative(target.path),
        "remove": [{"path": meta.relative(f.path), "inode": _inode(f.path)} for f in group[1:]],
        "moves": moves,
        "rows": {str(k): v for k, v in rows.items()},
    }
    write_json_atomic(staging / PLAN_FILE, plan)  # the merge counts from here on
    return plan


def _merge_videos(sources: list[Path], output: Path, frames: list[int]) -> list[float]:
    """Stream-copy `sources` one after another into `output`; returns where each starts, in s.

    Each source starts on a keyframe (every episode is encoded on its own), so the copy needs
    no re-encoding; a source's frames are shifted by the frames before it, at its own rate.
    """
    offsets: list[float] = []
    with av.open(str(output), "w", format="mp4") as out:
        out_stream = None
        elapsed = 0.0
        for source, count in zip(sources, frames, strict=True):
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                if out_stream is None:
                    out_stream = out.add_stream_from_template(stream, opaque=True)  # copy, never encode
                fps = stream.average_rate or stream.base_rate
                packets = [p for p in container.demux(stream) if p.dts is not None]
                first = min(p.pts for p in packets)
                shift = round(elapsed / stream.time_base) - first
                for packet in packets:
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = out_stream
                    out.mux(packet)
                offsets.append(elapsed)
                elapsed += count / float(fps)
    return offsets


def _inode(path: Path) -> int:
    return path.stat().st_ino


def _same_file(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino == inode
    except FileNotFoundError:
        return False


def apply_plan(meta: V30Metadata, plan: dict[str, Any]) -> None:
    """Put a built merge in place; every step can be run again after a kill and is then a no-op."""
    root = meta.root
    staged, target = root / plan["staged"], root / plan["target"]
    faults.pause("pack-1")
    if staged.exists():
        os.replace(staged, target)
    faults.pause("pack-2")
    for entry in plan["remove"]:
        if _same_file(root / entry["path"], entry["inode"]):
            (root / entry["path"]).unlink()
    faults.pause("pack-3")
    for move in plan["moves"]:
        if _same_file(root / move["from"], move["inode"]):
            make_dirs_within(root, (root / move["to"]).parent)
            os.replace(root / move["from"], root / move["to"])
    for parent in {target.parent, *((root / m["to"]).parent for m in plan["moves"])}:
        fsync_dir(parent)
    faults.pause("pack-4")
    meta.update_rows({int(k): v for k, v in plan["rows"].items()})
    faults.pause("pack-5")
    # The same counters, written anew: whoever watches info.json for changes (an upload) sees
    # that the files moved.
    write_json_atomic(root / INFO_PATH, meta.info, sync_dir=False)
    (meta.private_dir / COMPACT_DIR / PLAN_FILE).unlink(missing_ok=True)


def finish_interrupted(meta: V30Metadata, say: Callable[[str], None]) -> None:
    """Recovery: finish a merge whose plan was written, drop one that was still being built."""
    staging = meta.private_dir / COMPACT_DIR
    plan_path = staging / PLAN_FILE
    if plan_path.exists():
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
        apply_plan(meta, plan)
        say(f"{plan['stream']}: finished packing files into {plan['target']}, interrupted earlier")
    if staging.exists():
        for leftover in staging.iterdir():
            leftover.unlink()
