"""The operator's status line: one line that is always true, redrawn a few times a second.

    REC ep 5  12.3/60 s | 30.0 fps, 0 late, 0 skipped | saves: 1 pending, 0 encoding, 4 saved, 0 failed |
        disk 51.2 GB (~93 min) | Pick the cube      (on one line)

"late" counts capture ticks that started over 5 ms late, "skipped" the ticks the capture clock
had to drop because it fell a whole tick behind (a robot read that blocked, say), in this
episode and, once there are any, in the whole session ("3 skipped, 17 this session"). "saved"
counts episodes that are really in the dataset; failures show in red. An encoder slower than
capture shows how far behind it is ("encoder 12.3 s behind"): the journal holds those frames
until it catches up. With `--record.push_to`, "upload: 3 episodes, 41.0 MB left" says what the
destination still lacks.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.text import Text

from operating_platform.core.async_episode_saver import SaverStatus
from operating_platform.core.record import Record, short_stream_name
from operating_platform.dataset.diskspace import free_bytes

if TYPE_CHECKING:
    from operating_platform.upload.process import UploadProcess, UploadStatus

GB = 2**30
REFRESH_HZ = 4
log = logging.getLogger("operating_platform.status")


class VideoCost:
    """Bytes of video the dataset stores per frame, kept as a running total.

    Each call looks only at the episodes committed since the one before (one `stat` per video
    file, once): a scan of the whole dataset every second would cost the capture process more
    the bigger the dataset grows.
    """

    def __init__(self) -> None:
        self.episodes = 0
        self.frames = 0
        self.bytes = 0

    def update(self, meta: Any) -> None:
        total = meta.total_episodes
        keys = meta.video_keys if total > self.episodes else []
        for index in range(self.episodes, total):
            self.frames += meta.episode_length(index)
            for key in keys:
                # A file gone (the folder moved away) costs nothing more; the others still count.
                with contextlib.suppress(OSError):
                    self.bytes += meta.video_path(index, key).stat().st_size
        self.episodes = total

    def per_frame(self) -> float | None:
        return self.bytes / self.frames if self.frames and self.bytes else None


def minutes_left(record: Record, free: int, cost: VideoCost | None = None) -> float:
    """Minutes of recording the free space holds, at what this dataset has cost so far."""
    cost = cost or VideoCost()
    cost.update(record.dataset.meta)
    # Before the first episode, assume video compresses raw frames about 20 times.
    per_frame = cost.per_frame() or record.raw_bytes_per_frame / 20
    return free / max(per_frame * record.fps * 60, 1.0)


def render(
    record: Record,
    phase: str,
    index: int,
    limit_s: float | None,
    disk: tuple[int, float],
    elapsed_s: float | None = None,
    upload: UploadStatus | None = None,
) -> Text:
    """The status line; `elapsed_s` is the phase's time (default: the episode's recorded time)."""
    stats = record.stats
    elapsed = record.episode_frames / record.fps if elapsed_s is None else elapsed_s
    limit = f"/{limit_s:g}" if limit_s else ""
    fps = stats.achieved_fps()
    line = Text()
    style = {"REC": "bold red", "PAUSED": "bold yellow", "RESET": "bold cyan"}.get(phase, "bold")
    line.append(f"{phase}", style=style)
    line.append(f" ep {index}  {elapsed:5.1f}{limit} s | {fps:4.1f} fps, {stats.late_ticks} late, ")
    session_missed = record.session_missed_ticks
    skipped = f"{stats.missed_ticks} skipped"
    if session_missed > stats.missed_ticks:
        skipped += f", {session_missed} this session"
    line.append(skipped, style="bold yellow" if session_missed else "")
    line.append(" | ")
    if stats.streams:
        line.append("repeated/worst age: ")
        streams = zip(stats.streams, stats.repeated, stats.worst_age_s, strict=True)
        for i, (name, repeated, age) in enumerate(streams):
            line.append(", " if i else "")
            text = f"{short_stream_name(name)} {repeated}/{age * 1e3:.0f} ms"
            line.append(text, style="yellow" if repeated else "")
        line.append(" | ")
    status = record.status()
    if status is not None:
        line.append(f"saves: {status.pending} pending, {status.encoding} encoding, ")
        line.append(f"{status.completed} saved, ")
        line.append(f"{status.failed} failed", style="bold red" if status.failed else "")
        if status.behind_frames >= record.fps:  # within a second: an encoder keeping up
            line.append(", ")
            line.append(f"encoder {status.behind_frames / record.fps:.1f} s behind", style="yellow")
        line.append(" | ")
    if record.halted:
        line.append(f"SAVING STOPPED: {record.halted}", style="bold red")
        line.append(" | ")
    if upload is not None:
        failing = upload.state in ("retrying", "stopped")
        line.append(upload.describe(), style="bold yellow" if failing else "")
        line.append(" | ")
    free, minutes = disk
    line.append(f"disk {free / GB:.1f} GB (~{minutes:.0f} min) | {record.task}")
    return line


class _GatedStdout:
    """`sys.stdout` once a live display has been shown, so messages never land on its line.

    Messages are written by another thread (the log listener) to whatever `sys.stdout` is.
    rich redirects it while a display is on, but gives it back a moment before it erases the
    line when it stops, and lays a message out with the line before waiting for the terminal;
    either way a message could land on the end of the status line, or bring back an erased one.
    Every write goes through `lock`, held while a display starts or stops, so it waits until the
    display is up or gone and then goes where it belongs. It stays installed: a thread that
    looked up `sys.stdout` just before a display starts must find this, not the bare terminal.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lock = threading.RLock()
        self.target = stream
        self._held: list[str] | None = None
        self._holder = 0

    @classmethod
    def installed(cls) -> _GatedStdout:
        if not isinstance(sys.stdout, cls):
            sys.stdout = cls(sys.stdout)
        return sys.stdout

    def write(self, text: str) -> int:
        with self.lock:
            if self._held is not None and threading.get_ident() != self._holder:
                self._held.append(text)
                return len(text)
            # The terminal, or rich's redirect, which prints the text above the display.
            return self.target.write(text)

    def hold(self) -> None:
        """Keep other threads' writes until `release()`; the calling thread's go through."""
        with self.lock:
            self._held, self._holder = [], threading.get_ident()

    def release(self) -> None:
        with self.lock:
            held, self._held = self._held or [], None
            for text in held:
                self.target.write(text)

    def flush(self) -> None:
        with self.lock:
            self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def _on_screen(live: Live) -> Iterator[None]:
    """Show `live` with messages from other threads kept off its line, also as it starts and stops."""
    gate = _GatedStdout.installed()
    console = live.console
    # The gate's lock first (a message being printed holds it while rich takes its own), then
    # rich's in the order its refresh thread takes them: no deadlock with a refresh or a print.
    locks = (gate.lock, live._lock, console._lock)
    saved_file = console._file
    console.file = gate.stream  # the display itself writes to the terminal, never through the gate
    try:
        with contextlib.ExitStack() as held:
            for lock in locks:
                held.enter_context(lock)
            live.start(refresh=False)
            # rich's own redirect is off: writers must find the gate, never the redirect itself,
            # or a message rich had laid out with the status line could be written after the
            # line was erased, bringing it back.
            gate.target = FileProxy(console, gate.stream)
        try:
            yield
        finally:
            with contextlib.ExitStack() as held:
                for lock in locks:
                    held.enter_context(lock)
                gate.target = gate.stream
                live.stop()
    finally:
        console.file = saved_file


class StatusLine:
    """Keeps the status line at the bottom of the terminal while messages scroll above it."""

    def __init__(
        self, record: Record, console: Console | None = None, upload: UploadProcess | None = None
    ) -> None:
        self.record = record
        self.upload = upload
        self.console = console or Console(highlight=False)
        self._live = Live(
            console=self.console,
            refresh_per_second=REFRESH_HZ,
            transient=True,
            redirect_stdout=False,  # done by `_on_screen`, without rich's gaps
            redirect_stderr=False,
        )
        self._disk = (0, 0.0)
        self._cost = VideoCost()
        self._disk_checked = -1.0
        self._rendered = -1.0

    def __enter__(self) -> StatusLine:
        self._shown = _on_screen(self._live)
        self._shown.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._shown.__exit__(None, None, None)

    @contextlib.contextmanager
    def hidden(self) -> Iterator[None]:
        """Take the line off screen while the operator types, holding other threads' messages.

        The live display would redraw over the text being typed, and a message printed then
        would split it; held messages are printed once the line is entered.
        """
        gate = _GatedStdout.installed()
        self.__exit__(None, None, None)
        gate.hold()
        try:
            yield
        finally:
            gate.release()
            self.__enter__()
            self._rendered = -1.0  # redraw at the next update, not a quarter second later

    def update(
        self, phase: str, index: int, limit_s: float | None, now: float, elapsed_s: float | None = None
    ) -> None:
        # The session polls far more often than the screen is redrawn; building the line more
        # often than that would only take the GIL from the capture thread.
        if now - self._rendered < 1 / REFRESH_HZ:
            return
        self._rendered = now
        if now - self._disk_checked >= 1.0:  # statvfs: once a second is plenty
            free = free_bytes(self.record.dataset.root)
            self._disk = (free, minutes_left(self.record, free, self._cost))
            self._disk_checked = now
        upload = self.upload.status() if self.upload is not None else None
        self._live.update(render(self.record, phase, index, limit_s, self._disk, elapsed_s, upload))


class SaveProgressBars:
    """One progress bar per episode still being saved, while the session waits for them at exit."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("saving episode {task.fields[episode]}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} frames encoded"),
            console=console or Console(highlight=False),
            transient=True,
            redirect_stdout=False,  # done by `_on_screen`, without rich's gaps
            redirect_stderr=False,
        )
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> SaveProgressBars:
        self._shown = _on_screen(self.progress.live)
        self._shown.__enter__()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._shown.__exit__(None, None, None)

    def __call__(self, status: SaverStatus) -> None:
        for episode in status.episodes:
            if episode.state.value not in ("pending", "encoding"):
                if episode.expected_index in self._tasks:
                    self.progress.remove_task(self._tasks.pop(episode.expected_index))
                continue
            task = self._tasks.get(episode.expected_index)
            if task is None:
                task = self.progress.add_task("", total=episode.frames, episode=episode.expected_index)
                self._tasks[episode.expected_index] = task
            self.progress.update(task, completed=episode.encoded_frames)


class SaveProgressLines:
    """Without a terminal: a line every couple of seconds on the saves still pending at exit."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def __call__(self, status: SaverStatus) -> None:
        if time.monotonic() - self._last < 2.0:
            return
        self._last = time.monotonic()
        busy = [p for p in status.episodes if p.state.value in ("pending", "encoding")]
        parts = [f"episode {p.expected_index} {p.encoded_frames}/{p.frames} frames encoded" for p in busy]
        log.info(f"[Record] Saving: {'; '.join(parts)}")
