"""The operator's program: parse the flags, connect the robot, record episodes on their timers.

    python -m operating_platform.core.main --robot.type=sim --record.repo_id=demo \
        --record.single_task="Pick the cube" --record.num_episodes=3 --record.episode_time_s=5
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from operating_platform.core.async_episode_saver import SaverStatus
from operating_platform.core.configs import ControlPipelineConfig, parse_config
from operating_platform.core.interrupts import Interrupts
from operating_platform.core.logs import attach_log_file, console_logging
from operating_platform.core.record import Record
from operating_platform.core.record_config import ConfigError
from operating_platform.dataset.diskspace import DiskFullError, is_disk_full
from operating_platform.dataset.dorobot_dataset import DatasetError
from operating_platform.robots import make_robot

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("operating_platform.main")


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _wait_for_capture(record: Record, interrupts: Interrupts) -> None:
    """Wait until the episode is complete, capture stopped on an error, or a stop is requested."""
    while record.capturing and not interrupts.wait(0.02) and not record.check_stalled():
        pass


def _save(record: Record) -> None:
    meta = record.save()
    if not meta.frames:
        if record.error is None:
            log.info("Nothing captured in this episode; nothing saved.")
    elif not meta.queued:
        log.info(
            f"✓ Saved episode {meta.episode_index} ({meta.frames} frames) in {meta.elapsed_ms / 1e3:.2f}s"
        )


class _SaveProgress:
    """Reports the saves still pending at exit, every couple of seconds."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, status: SaverStatus) -> None:
        if time.monotonic() - self._last < 2.0:
            return
        self._last = time.monotonic()
        busy = [p for p in status.episodes if p.state.value in ("pending", "encoding")]
        parts = [f"episode {p.expected_index} {p.encoded_frames}/{p.frames} frames encoded" for p in busy]
        log.info(f"[Record] Saving: {'; '.join(parts)}")


def record_session(cfg: ControlPipelineConfig) -> int:
    """Record `num_episodes` episodes unattended; returns the process exit code."""
    rc = cfg.record
    with console_logging():
        robot = make_robot(cfg.robot)
        record = Record(fps=rc.fps, robot=robot, record_cfg=rc)
        attach_log_file(record.dataset.meta.private_dir / "logs")
        log.info(f"Dataset: {record.dataset.root} ({record.dataset.meta.total_episodes} episodes already)")
        return _record_episodes(record, rc.num_episodes, rc.episode_time_s, rc.reset_time_s)


def _record_episodes(record: Record, episodes: int, episode_time_s: float, reset_time_s: float) -> int:
    root = record.dataset.root
    again = f"exiting now; nothing captured is lost: `dorobot recover {root}` finishes the saves"
    code = EXIT_OK
    record.robot.connect()
    with Interrupts(again) as interrupts:
        try:
            for n in range(episodes):
                index = record.next_episode_index
                log.info(f"Recording episode {index} ({n + 1}/{episodes}, {episode_time_s:g} s)")
                try:
                    record.start(max_frames=max(1, round(episode_time_s * record.fps)))
                except DiskFullError as exc:
                    _error(f"{exc}; recording stopped before episode {index}")
                    code = EXIT_FAILED
                    break
                _wait_for_capture(record, interrupts)
                _save(record)
                if record.error is not None:
                    _error(_describe_capture_error(record.error, root))
                    code = EXIT_FAILED
                    break
                if interrupts.requested.is_set():
                    break
                if n + 1 < episodes and reset_time_s > 0:
                    log.info(f"Reset the scene ({reset_time_s:g} s)")
                    if interrupts.wait(reset_time_s):
                        break
            if interrupts.requested.is_set():
                log.info(
                    "Stopping: waiting for the saves of every episode captured (interrupt again to exit now)"
                )
                code = interrupts.exit_code
        finally:
            stats = record.stop(on_progress=_SaveProgress())
            record.robot.disconnect()
    meta = record.dataset.meta
    log.info(f"Done: {meta.total_episodes} episodes, {meta.total_frames} frames in {meta.root}")
    if stats is not None and stats.kept and record.async_saver is not None and record.async_saver.disk_full:
        _error(
            f"the disk holding {root} is full: {stats.kept} episode(s) are kept in their journals; "
            f"free space, then run `dorobot recover {root}`"
        )
    if stats is not None and (stats.failed or stats.kept) and code == EXIT_OK:
        code = EXIT_FAILED
    return code


def _describe_capture_error(error: BaseException, root: Path) -> str:
    if not root.exists():
        return f"the dataset folder {root} disappeared while recording; recording stopped"
    if is_disk_full(error):
        what = str(error) if isinstance(error, DiskFullError) else f"the disk holding {root} is full"
        return (
            f"{what}; recording stopped. Every episode ended is kept; once space is freed, "
            f"`dorobot recover {root}` finishes saving any left in their journals"
        )
    return f"{error}; recording stopped, the frames before it are saved"


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
    except OSError as exc:  # a folder that cannot be written, a device that vanished, ...
        where = f" ({exc.filename})" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
