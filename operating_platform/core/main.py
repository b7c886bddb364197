"""The operator's program: parse the flags, connect the robot, record a session.

    python -m operating_platform.core.main --robot.type=sim --record.repo_id=lab/demo \
        --record.single_task="Pick the cube" --record.num_episodes=3 --record.episode_time_s=5
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence

from operating_platform.core.configs import ControlPipelineConfig, parse_config
from operating_platform.core.interrupts import Interrupts
from operating_platform.core.keyboard import TerminalKeys
from operating_platform.core.logs import attach_log_file, console_logging, error_to_log_file
from operating_platform.core.preview import CameraPreview
from operating_platform.core.record import Record
from operating_platform.core.record_config import ConfigError, RecordConfig
from operating_platform.core.rerun_view import RerunView
from operating_platform.core.session import Session
from operating_platform.core.status import SaveProgressBars, SaveProgressLines, StatusLine
from operating_platform.dataset.dorobot_dataset import DatasetError
from operating_platform.robots import Robot, make_robot
from operating_platform.robots.base import FeatureClash, describe_connect_failure
from operating_platform.upload.process import UploadProcess

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("operating_platform.main")


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    error_to_log_file(f"error: {message}")


def record_session(cfg: ControlPipelineConfig) -> int:
    """Record a session (by keys on a terminal, else on timers); returns the process exit code.

    Runs inside `console_logging()`, which `main` opens.
    """
    rc = cfg.record
    interactive = TerminalKeys.available()
    if not interactive and not rc.episode_time_s:
        _error("--record.episode_time_s=0 (end episodes by key) needs a terminal; give episodes a length")
        return EXIT_USAGE
    rc.check_root_writable()
    robot = make_robot(cfg.robot)
    # Connected before the dataset exists: a robot that cannot be reached must not leave a
    # fresh, empty dataset folder behind, which the retry would refuse to overwrite.
    try:
        robot.open()  # closes whatever it did open before failing
    except KeyboardInterrupt:  # e.g. while waiting for a dataflow, or at a calibration prompt
        _error("interrupted while connecting the robot; nothing was recorded")
        return EXIT_INTERRUPTED
    except Exception as exc:
        _error(describe_connect_failure(cfg.robot, exc))
        return EXIT_FAILED
    try:
        record = Record(fps=rc.fps, robot=robot, record_cfg=rc)
    except FeatureClash as exc:  # a camera named twice shows once the cameras are known
        _close_quietly(robot)
        _error(str(exc))
        return EXIT_USAGE
    except BaseException:
        _close_quietly(robot)  # the dataset's error is the one to report
        raise
    attach_log_file(record.dataset.meta.private_dir / "logs")
    log.info(f"Dataset: {record.dataset.root} ({record.dataset.meta.total_episodes} episodes already)")
    if not interactive:
        return _run(record, rc, None)
    with TerminalKeys() as keys:
        return _run(record, rc, keys)


def _close_quietly(robot: Robot) -> None:
    with contextlib.suppress(Exception):
        robot.close()


def _run(record: Record, rc: RecordConfig, keys: TerminalKeys | None) -> int:
    root = record.dataset.root
    again = f"exiting now; nothing captured is lost: `dorobot recover {root}` finishes the saves"
    code = EXIT_OK
    preview = CameraPreview(record).start() if rc.display == "opencv" else None
    live_view = RerunView(record, rc.rerun_addr or "").start() if rc.display == "rerun" else None
    upload = UploadProcess.for_session(root, rc.push_to) if rc.push_to else None
    with Interrupts(again, restore_terminal=keys.restore if keys else None) as interrupts:
        if keys is not None:
            keys.on_hang_up = interrupts.hang_up
        try:
            if keys is None:
                session = Session(record, rc, interrupts, preview=preview)
                session.run()
            else:
                with StatusLine(record, upload=upload) as status:
                    session = Session(record, rc, interrupts, keys, status, preview)
                    session.run()
            if session.error is not None:
                _error(session.error)
                code = EXIT_FAILED
            elif interrupts.requested.is_set():
                log.info("Stopping: waiting for the saves of every episode captured (again to exit now)")
                code = interrupts.exit_code
        finally:
            if preview is not None:
                preview.stop()
            if live_view is not None:
                live_view.stop()
            if keys is None:
                stats = record.stop(on_progress=SaveProgressLines())
            else:
                with SaveProgressBars() as bars:
                    stats = record.stop(on_progress=bars)
            record.robot.close()
            if upload is not None:  # every episode is committed now: the upload can finish
                upload.finish_session(rc.push_timeout_s, interrupted=interrupts.requested.is_set)
    meta = record.dataset.meta
    if meta.root.exists():
        log.info(f"Done: {meta.total_episodes} episodes, {meta.total_frames} frames in {meta.root}")
    else:
        log.info(f"Done: {meta.root} no longer exists; it held {meta.total_episodes} episodes when it went")
    disk_full = record.async_saver is not None and record.async_saver.disk_full
    if stats is not None and stats.kept and disk_full and code == EXIT_OK:  # else already said
        _error(
            f"the disk holding {root} is full: {stats.kept} episode(s) are kept in their journals; "
            f"free space, then run `dorobot recover {root}`"
        )
    if stats is not None and (stats.failed or stats.kept) and code == EXIT_OK:
        code = EXIT_FAILED
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `dorobot record` and `python -m operating_platform.core.main`."""
    try:
        cfg = parse_config(argv)
    except ConfigError as exc:
        _error(f"{exc} (see --help)")
        return EXIT_USAGE
    # Errors are told inside the console logging: the session's log file is open until it ends,
    # and only an exception that gets past these is an unexpected one, logged with its traceback.
    with console_logging():
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
