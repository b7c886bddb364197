"""The operator's program: parse the flags, connect the robot, record a session.

    python -m operating_platform.core.main --robot.type=sim --record.repo_id=lab/demo \
        --record.single_task="Pick the cube" --record.num_episodes=3 --record.episode_time_s=5
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import sys
import termios
from collections.abc import Callable, Iterator, Sequence

from operating_platform.core.configs import ControlPipelineConfig, parse_config
from operating_platform.core.interrupts import Interrupts, is_terminal
from operating_platform.core.keyboard import TerminalKeys
from operating_platform.core.logs import attach_log_file, console_logging
from operating_platform.core.preview import CameraPreview
from operating_platform.core.record import Record
from operating_platform.core.record_config import ConfigError, RecordConfig
from operating_platform.core.session import Session
from operating_platform.core.status import SaveProgressBars, SaveProgressLines, StatusLine
from operating_platform.dataset.dorobot_dataset import DatasetError
from operating_platform.robots import Robot, RobotConfig, make_robot

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("operating_platform.main")


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def record_session(cfg: ControlPipelineConfig) -> int:
    """Record a session (by keys on a terminal, else on timers); returns the process exit code."""
    rc = cfg.record
    interactive = TerminalKeys.available()
    if not interactive and not rc.episode_time_s:
        _error("--record.episode_time_s=0 (end episodes by key) needs a terminal; give episodes a length")
        return EXIT_USAGE
    rc.check_root_writable()
    with console_logging():
        robot = make_robot(cfg.robot)
        # Connected before the dataset exists: a robot that cannot be reached must not leave a
        # fresh, empty dataset folder behind, which the retry would refuse to overwrite.
        try:
            robot.connect()
        except Exception as exc:
            _disconnect_quietly(robot)  # whatever it did open before failing
            _error(_connect_failed(cfg.robot, exc))
            return EXIT_FAILED
        try:
            record = Record(fps=rc.fps, robot=robot, record_cfg=rc)
        except BaseException:
            _disconnect_quietly(robot)  # the dataset's error is the one to report
            raise
        attach_log_file(record.dataset.meta.private_dir / "logs")
        log.info(f"Dataset: {record.dataset.root} ({record.dataset.meta.total_episodes} episodes already)")
        if not interactive:
            return _run(record, rc, None)
        with _terminal_keys() as keys:
            return _run(record, rc, keys)


class _Keys(TerminalKeys):
    """Keys from a terminal that may hang up with no SIGHUP reaching the recorder (a shell
    around it that survives the hang-up): a terminal that stops being one has hung up."""

    on_hang_up: Callable[[], None] | None = None

    def read_key(self, timeout: float) -> str | None:
        key = super().read_key(timeout)
        # Only when no key came: a hung-up terminal reads as end of file at once, every time.
        if key is None and self.on_hang_up is not None and not is_terminal(self.fd):
            on_hang_up, self.on_hang_up = self.on_hang_up, None
            on_hang_up()
        return key


@contextlib.contextmanager
def _terminal_keys() -> Iterator[_Keys]:
    """Terminal keys, whose terminal may be gone (hung up) by the time it is restored."""
    keys = _Keys().__enter__()
    try:
        yield keys
    finally:
        _restore_quietly(keys)
        atexit.unregister(keys.restore)  # what leaving the block does, once restored


def _restore_quietly(keys: TerminalKeys) -> None:
    # After a hang-up there is no terminal left to restore (EIO, or ENOTTY on /dev/null).
    with contextlib.suppress(termios.error, OSError):
        keys.restore()


DEVICE_WORDS = ("port", "device", "serial", "host", "ip", "address", "index", "path", "url")


def _connect_failed(config: RobotConfig, exc: BaseException) -> str:
    """One line naming the robot, the device settings it was given, and what to check."""
    fields = [f.name for f in dataclasses.fields(config)]
    devices = [f"--robot.{name}={getattr(config, name)}" for name in fields if _names_a_device(name)]
    where = ", ".join([f"--robot.type={config.type}", *devices])
    return (
        f"cannot connect the robot ({where}): {type(exc).__name__}: {exc}. Check that it is plugged "
        "in and powered on, that the --robot.* settings name its device, and that no other program "
        "is using it; nothing was recorded, so the same command can simply be run again"
    )


def _names_a_device(field: str) -> bool:
    return any(word in DEVICE_WORDS for word in field.lower().split("_"))


def _disconnect_quietly(robot: Robot) -> None:
    with contextlib.suppress(Exception):
        robot.disconnect()


def _run(record: Record, rc: RecordConfig, keys: _Keys | None) -> int:
    root = record.dataset.root
    again = f"exiting now; nothing captured is lost: `dorobot recover {root}` finishes the saves"
    code = EXIT_OK
    preview = CameraPreview(record).start() if rc.display == "opencv" else None
    on_exit_now = (lambda: _restore_quietly(keys)) if keys else None
    with Interrupts(again, on_exit_now=on_exit_now) as interrupts:
        if keys is not None:
            keys.on_hang_up = interrupts.hang_up
        try:
            if keys is None:
                session = Session(record, rc, interrupts, preview=preview)
                session.run()
            else:
                with StatusLine(record) as status:
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
            if keys is None:
                stats = record.stop(on_progress=SaveProgressLines())
            else:
                with SaveProgressBars() as bars:
                    stats = record.stop(on_progress=bars)
            record.robot.disconnect()
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
