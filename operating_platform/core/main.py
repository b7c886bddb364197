"""The operator's program: parse the flags, connect the robot, record episodes on their timers.

    python -m operating_platform.core.main --robot.type=sim --record.repo_id=demo \
        --record.single_task="Pick the cube" --record.num_episodes=3 --record.episode_time_s=5
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from rich.console import Console

from operating_platform.core.configs import ControlPipelineConfig, parse_config
from operating_platform.core.record import Record
from operating_platform.core.record_config import ConfigError
from operating_platform.dataset.dorobot_dataset import DatasetError
from operating_platform.robots import make_robot

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)


def _wait_for_capture(record: Record) -> None:
    """Wait until the episode is complete (or capture stopped on an error)."""
    while record.capturing:
        time.sleep(0.02)


def _save(record: Record) -> None:
    started = time.perf_counter()
    record.pause()  # so that the count below is the episode's final length
    frames = record.episode_frames
    index = record.save()
    if index is None:
        console.print("Nothing captured in this episode; nothing saved.")
    else:
        elapsed = time.perf_counter() - started
        console.print(f"[green]✓[/] Saved episode {index} ({frames} frames) in {elapsed:.2f}s")


def record_session(cfg: ControlPipelineConfig) -> int:
    """Record `num_episodes` episodes unattended; returns the process exit code."""
    rc = cfg.record
    robot = make_robot(cfg.robot)
    record = Record(fps=rc.fps, robot=robot, record_cfg=rc)
    console.print(f"Dataset: {record.dataset.root} ({record.dataset.meta.total_episodes} episodes already)")
    robot.connect()
    try:
        for n in range(rc.num_episodes):
            index = record.next_episode_index
            console.print(f"Recording episode {index} ({n + 1}/{rc.num_episodes}, {rc.episode_time_s:g} s)")
            record.start(max_frames=max(1, round(rc.episode_time_s * rc.fps)))
            _wait_for_capture(record)
            _save(record)
            if record.error is not None:
                _error(f"{record.error}; recording stopped, the frames before it were saved")
                return EXIT_FAILED
            if n + 1 < rc.num_episodes and rc.reset_time_s > 0:
                console.print(f"Reset the scene ({rc.reset_time_s:g} s)")
                time.sleep(rc.reset_time_s)
    except KeyboardInterrupt:
        record.pause()
        if record.episode_frames:
            _save(record)
        console.print("Interrupted; every episode captured so far is saved.")
        return EXIT_INTERRUPTED
    finally:
        record.stop()
        robot.disconnect()
    meta = record.dataset.meta
    console.print(f"Done: {meta.total_episodes} episodes, {meta.total_frames} frames in {meta.root}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `dorobot record` and `python -m operating_platform.core.main`."""
    try:
        cfg = parse_config(argv)
    except ConfigError as exc:
        _error(f"{exc} (see --help)")
        return EXIT_USAGE
    try:
        return record_session(cfg)
    except (DatasetError, ConfigError) as exc:
        _error(str(exc))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
