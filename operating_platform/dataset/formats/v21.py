"""LeRobot v2.1: one parquet and one video per episode; episodes listed in three JSONL files.

A commit appends one line to each JSONL file (and one per new task), then replaces info.json.
Lines past info.json's counts are from a commit that never finished: recovery cuts them off.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from operating_platform.dataset.features import video_keys
from operating_platform.dataset.fsutil import append_lines_durable, write_bytes_atomic
from operating_platform.dataset.jsonl import jsonl_line, read_jsonl
from operating_platform.dataset.metadata import (
    DatasetError,
    DoRobotDatasetMetadata,
    EpisodeRecord,
)
from operating_platform.dataset.stats import BASIC_STATS

DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
TASKS_PATH = "meta/tasks.jsonl"
EPISODES_PATH = "meta/episodes.jsonl"
EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"


class V21Metadata(DoRobotDatasetMetadata):
    """`meta/` of a v2.1 dataset: info.json, tasks.jsonl, episodes.jsonl, episodes_stats.jsonl."""

    codebase_version = "v2.1"
    data_template = DATA_PATH
    video_template = VIDEO_PATH
    extra_counters: ClassVar[dict[str, int]] = {"total_videos": 0, "total_chunks": 0}

    @classmethod
    def create_files(cls, root: Path) -> None:
        for rel in (TASKS_PATH, EPISODES_PATH, EPISODES_STATS_PATH):
            (root / rel).touch()

    @classmethod
    def load_committed(cls, root: Path, info: dict[str, Any]) -> V21Metadata:
        tasks_rows = read_jsonl(root / TASKS_PATH)
        episodes = read_jsonl(root / EPISODES_PATH)
        tasks = [row["task"] for row in sorted(tasks_rows, key=lambda r: r["task_index"])]
        episodes = episodes[: info["total_episodes"]]
        if len(episodes) != info["total_episodes"] or len(tasks) < info["total_tasks"]:
            raise DatasetError(
                f"{root}: info.json counts {info['total_episodes']} episodes but meta/ lists "
                f"{len(episodes)}; run `dorobot verify {root}`"
            )
        return cls(root, info, tasks, [int(ep["length"]) for ep in episodes])

    @classmethod
    def trim_to_info(cls, root: Path, info: dict[str, Any], act: Callable[[str], None]) -> None:
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

    @classmethod
    def snapshot(
        cls, root: Path, info: dict[str, Any], meta: dict[str, bytes]
    ) -> tuple[dict[str, bytes], list[str]] | None:
        # The JSONL files are appended before info.json: cut each to the lines it counts.
        counted = {
            TASKS_PATH: info["total_tasks"],
            EPISODES_PATH: info["total_episodes"],
            EPISODES_STATS_PATH: info["total_episodes"],
        }
        trimmed = dict(meta)
        for rel, wanted in counted.items():
            lines = [line for line in meta.get(rel, b"").splitlines(keepends=True) if line.endswith(b"\n")]
            if len(lines) < wanted:
                return None
            trimmed[rel] = b"".join(lines[:wanted])
        files = []
        keys = video_keys(info["features"]) if info.get("video_path") else []
        for index in range(info["total_episodes"]):
            chunk = index // info["chunks_size"]
            files.append(info["data_path"].format(episode_chunk=chunk, episode_index=index))
            files += [
                info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=index)
                for key in keys
            ]
        return trimmed, files

    def data_path(self, episode_index: int) -> Path:
        chunk = episode_index // self.info["chunks_size"]
        return self.root / DATA_PATH.format(episode_chunk=chunk, episode_index=episode_index)

    def video_path(self, episode_index: int, video_key: str) -> Path:
        chunk = episode_index // self.info["chunks_size"]
        return self.root / VIDEO_PATH.format(
            episode_chunk=chunk, video_key=video_key, episode_index=episode_index
        )

    def _write_episode(self, record: EpisodeRecord, new_tasks: list[str]) -> Callable[[], None]:
        first_task = self._committed_tasks
        episode = {"episode_index": record.episode_index, "tasks": record.tasks, "length": record.length}
        stats = {k: {s: v for s, v in per.items() if s in BASIC_STATS} for k, per in record.stats.items()}
        appends = {
            TASKS_PATH: [
                jsonl_line({"task_index": first_task + i, "task": task}) for i, task in enumerate(new_tasks)
            ],
            EPISODES_PATH: [jsonl_line(episode)],
            EPISODES_STATS_PATH: [jsonl_line({"episode_index": record.episode_index, "stats": stats})],
        }
        sizes = {rel: (self.root / rel).stat().st_size for rel in appends}

        def undo() -> None:
            for rel, size in sizes.items():
                os.truncate(self.root / rel, size)

        try:
            for rel, lines in appends.items():
                if lines:
                    append_lines_durable(self.root / rel, lines)
        except BaseException:
            undo()
            raise
        return undo

    def _set_counters(self, info: dict[str, Any], episodes: int, frames: int, tasks: int) -> None:
        super()._set_counters(info, episodes, frames, tasks)
        info["total_videos"] = episodes * len(video_keys(info["features"]))
        info["total_chunks"] = math.ceil(episodes / info["chunks_size"])
