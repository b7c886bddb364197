"""A recording session: episodes and reset phases, ended by timers or by the operator's keys.

Keys (when stdin is a terminal):
- recording: `n`/Right save and reset, `d`/Left discard and reset (the index is recorded
  again), `e`/Esc save and exit, space pause/resume;
- reset: `p`/Right/Enter next episode, `t` change the task, `e`/Esc exit.
Without a terminal the session runs on `episode_time_s`, `reset_time_s` and `num_episodes`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from operating_platform.core.interrupts import Interrupts
from operating_platform.core.keyboard import TerminalKeys
from operating_platform.core.preview import CameraPreview
from operating_platform.core.record import CaptureStats, Record, short_stream_name
from operating_platform.core.record_config import RecordConfig
from operating_platform.core.status import StatusLine
from operating_platform.dataset.diskspace import DiskFullError, is_disk_full

log = logging.getLogger("operating_platform.session")

NEXT, DISCARD, EXIT, FAILED = "next", "discard", "exit", "failed"
KEYS_RECORDING = {"n": NEXT, "right": NEXT, "d": DISCARD, "left": DISCARD, "e": EXIT, "esc": EXIT}
KEYS_RESET = {"p": NEXT, "right": NEXT, "enter": NEXT, "e": EXIT, "esc": EXIT}


def describe_capture_error(error: BaseException, root: Path) -> str:
    if not root.exists():
        return f"the dataset folder {root} disappeared while recording; recording stopped"
    if is_disk_full(error):
        what = str(error) if isinstance(error, DiskFullError) else f"the disk holding {root} is full"
        return (
            f"{what}; recording stopped. Every episode ended is kept; once space is freed, "
            f"`dorobot recover {root}` finishes saving any left in their journals"
        )
    return f"{error}; recording stopped, the frames before it are saved"


def describe_halt(reason: str, root: Path) -> str:
    """The one line for a saver that cannot go on: nothing ended is lost, and what to do."""
    if not root.exists():
        return f"the dataset folder {root} disappeared; recording stopped"
    return (
        f"saving stopped: {reason}; recording stopped. Every episode ended is kept in its journal; "
        f"once the cause is gone, `dorobot recover {root}` finishes saving them"
    )


def describe_capture(index: int, frames: int, stats: CaptureStats) -> str:
    """The episode's line on how well its capture clock kept time."""
    p99_ms, max_ms = stats.lateness_percentile(99) * 1e3, stats.max_lateness_s * 1e3
    line = (
        f"Episode {index} captured: {frames} frames, {stats.late_ticks} late, "
        f"{stats.missed_ticks} skipped ticks (lateness p99 {p99_ms:.1f} ms, max {max_ms:.1f} ms)"
    )
    streams = describe_streams(stats)
    line = f"{line}; {streams}" if streams else line
    return f"{line}; {describe_skipped(stats)}" if stats.missed_ticks else line


def describe_skipped(stats: CaptureStats) -> str:
    """What skipped ticks did to the frames, for an operator who may not know what a tick is."""
    span_s = (stats.ticks + stats.missed_ticks) / stats.fps
    return (
        f"{stats.missed_ticks} ticks skipped: a robot read or the machine was too slow, so these frames, "
        f"stamped 1/{stats.fps} s apart, were captured over {span_s:.1f} s; their true times are in "
        ".dorobot/timing/"
    )


def describe_session_capture(episodes: int, stats: CaptureStats) -> str:
    """The closing line on how well the capture clock kept time over the whole session."""
    p99_ms, max_ms = stats.lateness_percentile(99) * 1e3, stats.max_lateness_s * 1e3
    line = (
        f"Capture over {episodes} episode(s): {stats.ticks} ticks, {stats.late_ticks} late, "
        f"{stats.missed_ticks} skipped (lateness p99 {p99_ms:.1f} ms, max {max_ms:.1f} ms)"
    )
    return f"{line}; {describe_skipped(stats)}" if stats.missed_ticks else line


def describe_streams(stats: CaptureStats) -> str:
    """Per stream: frames that repeated the one before, and the oldest message a frame used."""
    return ", ".join(
        f"{short_stream_name(name)} {repeated} repeated, worst age {age * 1e3:.0f} ms"
        for name, repeated, age in zip(stats.streams, stats.repeated, stats.worst_age_s, strict=True)
    )


class Session:
    """Runs episodes until `num_episodes` are saved, the operator exits, or something fails.

    `error` holds the one-line explanation when it ended on a failure.
    """

    def __init__(
        self,
        record: Record,
        cfg: RecordConfig,
        interrupts: Interrupts,
        keys: TerminalKeys | None = None,
        status: StatusLine | None = None,
        preview: CameraPreview | None = None,
    ) -> None:
        self.record = record
        self.cfg = cfg
        self.interrupts = interrupts
        self.keys = keys
        self.status = status
        self.preview = preview
        self.error: str | None = None
        self.saved = 0

    def run(self) -> None:
        try:
            while self.saved < self.cfg.num_episodes:
                outcome = self._record_episode()
                if outcome in (EXIT, FAILED):
                    return
                more = self.saved < self.cfg.num_episodes
                if (more or outcome == DISCARD) and self._reset_phase() == EXIT:
                    return
        finally:
            stats = self.record.session_stats
            if stats.ticks:
                say = log.warning if stats.missed_ticks else log.info
                say(describe_session_capture(self.saved, stats))

    # -- phases -------------------------------------------------------------------------------

    def _wait_key(self, seconds: float) -> str | None:
        key = None
        if self.keys is not None:
            key = self.keys.read_key(seconds)
        else:
            self.interrupts.wait(seconds)
        if key is None and self.preview is not None:
            key = self.preview.poll_key()
        return key

    def _show(self, phase: str, index: int, limit: float | None, elapsed: float | None = None) -> None:
        if self.status is not None:
            self.status.update(phase, index, limit, time.monotonic(), elapsed)

    def _record_episode(self) -> str:
        record, cfg = self.record, self.cfg
        index = record.next_episode_index
        limit = cfg.episode_time_s or None
        max_frames = max(1, round(cfg.episode_time_s * record.fps)) if limit else None
        timer = f"{cfg.episode_time_s:g} s" if limit else "until you end it"
        log.info(f"Recording episode {index} ({self.saved + 1}/{cfg.num_episodes}, {timer})")
        try:
            record.start(max_frames=max_frames)
        except DiskFullError as exc:
            self.error = f"{exc}; recording stopped before episode {index}"
            return FAILED
        except OSError as exc:  # the folder vanished or turned read-only between episodes
            self.error = describe_capture_error(exc, record.dataset.root)
            return FAILED
        outcome, paused = NEXT, False
        while True:
            if self.interrupts.requested.is_set():
                outcome = EXIT
                break
            if record.error is not None or record.halted or record.check_stalled():
                outcome = FAILED
                break
            if not paused and not record.capturing:
                break  # the episode's time is up
            key = self._wait_key(0.05)
            self._show("PAUSED" if paused else "REC", index, limit)
            if key == "space":
                paused = not paused
                record.pause() if paused else record.start(max_frames=max_frames)
                log.info("Paused: space resumes" if paused else "Resumed")
            elif key in KEYS_RECORDING:
                outcome = KEYS_RECORDING[key]
                break
        if outcome == DISCARD:
            dropped = record.discard()
            log.info(f"Discarded episode {index} ({dropped} frames); it will be recorded again")
            return DISCARD
        self._save(index)
        if record.error is not None:
            self.error = describe_capture_error(record.error, record.dataset.root)
            return FAILED
        if record.halted:
            self.error = describe_halt(record.halted, record.dataset.root)
            return FAILED
        return outcome

    def _save(self, index: int) -> None:
        meta = self.record.save()
        if meta.frames and meta.saved is not False:
            self.saved += 1
            stats = self.record.stats
            say = log.warning if stats.missed_ticks else log.info
            say(describe_capture(meta.episode_index, meta.frames, stats))
            if not meta.queued:
                seconds = meta.elapsed_ms / 1e3
                log.info(f"✓ Saved episode {meta.episode_index} ({meta.frames} frames) in {seconds:.2f}s")
        elif self.record.error is None:
            log.info(f"Nothing captured in episode {index}; nothing saved.")

    def _ask(self, prompt: str) -> str:
        assert self.keys is not None
        if self.status is None:
            return self.keys.read_line(prompt)
        with self.status.hidden():
            return self.keys.read_line(prompt)

    def _reset_phase(self) -> str:
        seconds = self.cfg.reset_time_s
        if seconds <= 0 and self.keys is None and self.preview is None:
            return NEXT
        started = time.monotonic()
        deadline = started + seconds if seconds > 0 else None
        hint = " (p: next, t: change task, e: exit)" if self.keys is not None else ""
        log.info(f"Reset the scene ({f'{seconds:g} s' if deadline else 'press p when ready'}){hint}")
        while deadline is None or time.monotonic() < deadline:
            if self.interrupts.requested.is_set():
                return EXIT
            key = self._wait_key(0.05)
            self._show("RESET", self.record.next_episode_index, seconds or None, time.monotonic() - started)
            if key == "t" and self.keys is not None:
                task = self._ask("New task for the next episodes: ")
                if task:
                    self.record.task = task
                    log.info(f"Task: {task}")
            elif key in KEYS_RESET:
                return KEYS_RESET[key]
        return NEXT
