"""A long recording session (soak): do save(), the capture clock, memory, the journals and the
background compression stay flat for hours?

    python bench/bench_soak.py                          # 60 minutes in 10-minute windows
    python bench/bench_soak.py --duration-min 240 --json soak.json    # the 4-hour session
    python bench/bench_soak.py --duration-min 3 --window-min 1 --episode-s 5 --reset-s 2  # a check
    python bench/bench_soak.py --no-compress            # the same session without compression

One session in this process, through the `Record` API: episodes of `--episode-s` seconds
(default 20) with `--reset-s` resets (default 5) for `--duration-min` minutes, on the simulated
robot with 3 cameras at 640x480 and 30 fps (textured frames with per-pixel sensor noise), saved
in the background with the default encoder (libx264 ultrafast), v2.1 layout (`--format v3.0`),
and compressed to AV1 in the background (`--record.compress=av1`; `--no-compress` to compare).
An episode starts only if it ends within the duration; the session ends with the last save().

Per 10-minute window (`--window-min`) of wall-clock time since the session started (an
episode belongs to the window in which it ended, i.e. its save() was called):
- episodes; save(): how long the call blocked, p99 and max;
- tick lateness p50 / p99 / max over the window's ticks (its episodes' histograms merged),
  and ticks skipped;
- RSS of the recorder (this process), its encoder process and the compressor process, at the
  window's end and the peak of the window, sampled every second;
- journal: the bytes under `.dorobot/{journal,staging,retired,failed,partial}`, at the
  window's end and the window's maximum;
- compression backlog (episodes, and camera-minutes: minutes of video summed over the cameras)
  as the compressor last reported it, at the window's end and the window's maximum, and in
  how many of the window's resets it was empty when the reset ended (the episode just saved
  counts once it is committed);
- disk: MB (2^20 bytes) per camera-minute of the committed videos, all files under `videos/`
  over the camera-minutes they hold, at the window's last scan. Video files are scanned only
  while capture is paused (resets, after the session), so the scan never competes with a tick.

After the session: record.stop() (the drain of the encoder), then the wait for the compressor
process to exit, which it does once nothing waits (progress every 10 s): the time from the
session's end until then is the compression's catch-up. MB per camera-minute before and after
compression: before is each video file as the recorder wrote it (libx264), at the last scan
that saw it so (a file compressed before any scan saw it is left out, and counted); after is
every file at the end. A 4-hour session needs about 30 GB free: 720 camera-minutes at about
37 MB each before compression (measured on the simulator's noisy frames).

The flatness summary compares the first and last windows (a last one shorter than half a
window gives way to the one before): peak RSS of each process within 10%,
lateness p99 within 1 ms, and the backlog bounded (empty at the end of every reset, or else
empty a stated time after the session's end). It prints PASS or FAIL with the numbers; it
asserts nothing. `--json PATH` writes every figure. The dataset goes to a fresh folder under
$BENCH_TMP (else /tmp), or `--root DIR` (which must not exist yet), deleted at the end unless
`--keep`. Ctrl-C ends the session early (the episode being recorded is saved) and still reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from procstat import dir_bytes, rss_mb, walk_files

from operating_platform.core.record import CaptureStats, EpisodeMetadata, Record, RecordConfig
from operating_platform.dataset.fsutil import PRIVATE_DIR
from operating_platform.dataset.journal_store import FAILED, JOURNAL, PARTIAL, RETIRED, STAGING
from operating_platform.robots import SimRobotConfig, make_robot

FPS = 30
CAMERAS = 3
MB = 2**20
SAMPLE_S = 1.0
PROGRESS_S = 10.0
PROCESSES = ("recorder", "encoder", "compressor")
JOURNAL_DIRS = (JOURNAL, STAGING, RETIRED, FAILED, PARTIAL)
RSS_TOLERANCE = 0.10
LATENESS_TOLERANCE_MS = 1.0


# -- what the sampler reads ---------------------------------------------------------------------


def alive(pid: int | None) -> bool:
    """The process exists and has not exited (a zombie waiting to be reaped counts as exited)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def process_ids(record: Record) -> dict[str, int | None]:
    """Each process's pid, looked up every time: a restarted encoder gets a new one."""
    saver = record.async_saver
    encoder = getattr(getattr(saver, "_worker", None), "_process", None)
    compress = getattr(record, "compress", None)
    return {
        "recorder": os.getpid(),
        "encoder": getattr(encoder, "pid", None),
        "compressor": getattr(compress, "pid", None),
    }


@dataclass
class VideoFile:
    stat_key: tuple[int, int, int]  # inode, size, mtime: another one means a new or changed file
    size: int
    frames: int
    compressed: bool
    original: tuple[int, int] | None  # (bytes, frames) in the recorder's codec, if a scan saw it


class VideoLedger:
    """The committed video files, their frames, and the size each had before compression.

    A file is opened (its header only) when it first appears or changes, never again: the cost
    per scan is one stat per file. Files are keyed by path, so a v3.0 file that grows is seen
    again, and one compressed in place keeps the size it had before.
    """

    def __init__(self, root: Path, target_codec: str | None) -> None:
        self.videos = root / "videos"
        self.target_codec = target_codec
        self.files: dict[str, VideoFile] = {}

    def scan(self) -> None:
        seen: dict[str, VideoFile] = {}
        for path, st in walk_files(self.videos):
            if path.endswith(".mp4"):
                self._look(path, st, seen)
        self.files = seen

    def _look(self, path: str, st: os.stat_result, seen: dict[str, VideoFile]) -> None:
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        old = self.files.get(path)
        if old is not None and old.stat_key == key:
            seen[path] = old
            return
        probe = self._probe(path, key)
        if probe is None:  # being replaced, or not whole yet: the next scan sees it again
            if old is not None:
                seen[path] = old
            return
        codec, frames = probe
        compressed = codec == self.target_codec
        # A compressed file keeps the size its original had when a scan saw it.
        kept = old.original if old is not None else None
        original = kept if compressed else (st.st_size, frames)
        seen[path] = VideoFile(key, st.st_size, frames, compressed, original)

    @staticmethod
    def _probe(path: str, key: tuple[int, int, int]) -> tuple[str, int] | None:
        try:
            with av.open(path) as container:
                stream = container.streams.video[0]
                codec, frames = stream.codec_context.codec.canonical_name, int(stream.frames)
            st = os.stat(path)
        except (OSError, IndexError, av.error.FFmpegError):
            return None
        if (st.st_ino, st.st_size, st.st_mtime_ns) != key or frames <= 0:
            return None
        return codec, frames

    def totals(self) -> dict[str, Any]:
        files = list(self.files.values())
        size = sum(f.size for f in files)
        frames = sum(f.frames for f in files)
        originals = [f.original for f in files if f.original is not None]
        before_bytes = sum(o[0] for o in originals)
        before_frames = sum(o[1] for o in originals)
        return {
            "files": len(files),
            "compressed_files": sum(f.compressed for f in files),
            "bytes": size,
            "camera_min": frames / FPS / 60,
            "mb_per_camera_min": per_camera_min(size, frames),
            "before_files": len(originals),
            "before_mb_per_camera_min": per_camera_min(before_bytes, before_frames),
        }


def per_camera_min(size: int, frames: int) -> float | None:
    return size / MB / (frames / FPS / 60) if frames else None


# -- per-window figures -------------------------------------------------------------------------


@dataclass
class Window:
    """What one window of the session saw; per-tick data only as a fixed-size histogram."""

    index: int
    start_s: float
    end_s: float
    episodes: int = 0
    saves_ms: list[float] = field(default_factory=list)  # one per episode, not per tick
    capture: CaptureStats = field(default_factory=lambda: CaptureStats(FPS))
    samples: int = 0
    rss_now: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(PROCESSES))
    rss_peak: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(PROCESSES))
    journal_now: int = 0
    journal_max: int = 0
    backlog_now: tuple[int, float] | None = None  # episodes, seconds of video
    backlog_max: tuple[int, float] | None = None
    resets: int = 0
    resets_caught_up: int = 0
    videos: dict[str, Any] | None = None

    def summary(self, session_s: float) -> dict[str, Any]:
        saves = np.array(self.saves_ms) if self.saves_ms else np.zeros(1)
        cap = self.capture
        return {
            "window": self.index,
            "from_min": self.start_s / 60,
            "to_min": min(self.end_s, session_s) / 60,
            "episodes": self.episodes,
            "save_ms": {"p99": float(np.percentile(saves, 99)), "max": float(saves.max())},
            "late_ms": {
                "p50": cap.lateness_percentile(50) * 1e3,
                "p99": cap.lateness_percentile(99) * 1e3,
                "max": cap.max_lateness_s * 1e3,
            },
            "ticks": cap.ticks,
            "skipped": cap.missed_ticks,
            "rss_mb": {p: {"now": self.rss_now[p], "peak": self.rss_peak[p]} for p in PROCESSES},
            "journal_mb": {"now": self.journal_now / MB, "max": self.journal_max / MB},
            "backlog": backlog_dict(self.backlog_now, self.backlog_max),
            "resets": self.resets,
            "resets_caught_up": self.resets_caught_up,
            "videos": self.videos,
        }


def backlog_dict(now: tuple[int, float] | None, peak: tuple[int, float] | None) -> dict[str, Any] | None:
    if now is None or peak is None:
        return None
    return {
        "episodes": now[0],
        "camera_min": now[1] / 60,
        "max_episodes": peak[0],
        "max_camera_min": peak[1] / 60,
    }


class Sampler(threading.Thread):
    """Every second: RSS of each process, journal bytes, the compression backlog; the video
    files too while capture is paused. Samples go to the window of their time, or, after the
    session's end, to `tail`."""

    def __init__(self, record: Record, root: Path, ledger: VideoLedger, window_s: float) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.record, self.ledger, self.window_s = record, ledger, window_s
        self.private = root / PRIVATE_DIR
        self.started = time.perf_counter()
        self.session_end: float | None = None  # perf_counter time of the last save()
        self.lock = threading.Lock()  # the windows
        # Held while video files are scanned; the session takes it to start an episode, so a
        # scan never overlaps a capture tick.
        self.scan_lock = threading.Lock()
        self.windows: dict[int, Window] = {}
        self.tail = Window(-1, 0.0, float("inf"))
        self.done = threading.Event()

    def window_at(self, t: float) -> Window:
        """The window of perf_counter time `t` (the caller holds `lock`)."""
        if self.session_end is not None and t > self.session_end:
            return self.tail
        index = int((t - self.started) // self.window_s)
        if index not in self.windows:
            self.windows[index] = Window(index, index * self.window_s, (index + 1) * self.window_s)
        return self.windows[index]

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            self.sample()

    def sample(self, at: float | None = None) -> None:
        """One sample, for the window of `at` (default: now)."""
        rss = {name: rss_mb(pid) for name, pid in process_ids(self.record).items()}
        journal = sum(dir_bytes(self.private / kind) for kind in JOURNAL_DIRS)
        compress = getattr(self.record, "compress", None)
        status = compress.status() if compress is not None else None
        with self.scan_lock:
            scanned = not self.record.capturing
            if scanned:
                self.ledger.scan()
        videos = self.ledger.totals() if scanned else None
        with self.lock:
            w = self.window_at(time.perf_counter() if at is None else at)
            w.samples += 1
            for name, value in rss.items():
                w.rss_now[name] = value
                if value is not None:
                    w.rss_peak[name] = max(w.rss_peak[name] or 0.0, value)
            w.journal_now = journal
            w.journal_max = max(w.journal_max, journal)
            if status is not None:
                w.backlog_now = (status.waiting_episodes, status.waiting_s)
                peak = w.backlog_max or (0, 0.0)
                w.backlog_max = (max(peak[0], status.waiting_episodes), max(peak[1], status.waiting_s))
            if videos is not None:
                w.videos = videos


# -- the session ----------------------------------------------------------------------------------


def robot_config() -> SimRobotConfig:
    """3 cameras at 640x480, with sensor noise where this version of the simulator has it."""
    names = {f.name for f in dataclasses.fields(SimRobotConfig)}
    extra = {"noise": True} if "noise" in names else {}
    return SimRobotConfig(num_cameras=CAMERAS, camera_width=640, camera_height=480, **extra)


class WindowLog:
    """Each window's figures, printed once the clock has left it (by more than a sample)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.results: list[dict[str, Any]] = []

    def close_due(self, now: float, session_s: float, final: bool = False) -> None:
        sampler = self.sampler
        with sampler.lock:
            current = int((now - SAMPLE_S * 1.5 - sampler.started) // sampler.window_s)
            closed = {r["window"] for r in self.results}
            due = sorted(i for i in sampler.windows if i not in closed and (final or i < current))
            for i in due:
                window = sampler.windows[i]
                self.results.append(window.summary(session_s))
                window.capture = CaptureStats(FPS)  # closed: its histogram is no longer needed
        for r in self.results[len(self.results) - len(due) :]:
            print(row(r), flush=True)


def record_episode(record: Record, sampler: Sampler, frames: int | None) -> EpisodeMetadata:
    """Capture one episode (`frames` long; None: one already under way), save it, count it."""
    if frames is not None:
        with sampler.scan_lock:  # never while a scan of the video files runs
            record.start(max_frames=frames)
        while record.capturing:
            time.sleep(0.05)
    t = time.perf_counter()
    meta = record.save()
    saved_at = time.perf_counter()
    with sampler.lock:
        window = sampler.window_at(t)  # the episode ended as save() was called
        window.episodes += 1
        window.saves_ms.append((saved_at - t) * 1e3)
        window.capture.merge(record.stats)
    return meta


def run_session(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    episode_s, duration_s = args.episode_s, args.duration_min * 60
    cfg = RecordConfig(
        repo_id="bench/soak",
        single_task="bench",
        root=str(root),
        format=args.format,
        compress=None if args.no_compress else "av1",
    )
    settings = cfg.compress_settings
    robot = make_robot(robot_config())
    robot.open()
    record = Record(fps=FPS, robot=robot, record_cfg=cfg)
    compress = getattr(record, "compress", None)
    if settings is not None and compress is None:
        print("note: compression was asked for, but this Record started no compressor", flush=True)
    ledger = VideoLedger(root, settings.codec if settings is not None else None)
    sampler = Sampler(record, root, ledger, args.window_min * 60)
    log = WindowLog(sampler)
    sampler.start()
    try:
        print(header(), flush=True)
        episodes, stopped_early = 0, ""

        def fits(after_s: float) -> bool:
            """Whether an episode starting `after_s` from now still ends within the duration."""
            return time.perf_counter() - sampler.started + after_s + episode_s <= duration_s

        try:
            while fits(0.0):
                meta = record_episode(record, sampler, round(episode_s * FPS))
                episodes += 1
                if record.error is not None or record.halted or not meta.queued:
                    why = record.error or record.halted or "episode not queued"
                    stopped_early = f"recording stopped: {why}"
                    break
                if not fits(args.reset_s):
                    break  # no episode fits any more: the last save() ends the session
                time.sleep(args.reset_s)
                reset_end = time.perf_counter()
                status = compress.status() if compress is not None else None
                with sampler.lock:
                    window = sampler.window_at(reset_end)
                    window.resets += 1
                    window.resets_caught_up += status is not None and status.waiting_episodes == 0
                log.close_due(reset_end, duration_s)
        except KeyboardInterrupt:
            stopped_early = "interrupted"
            if record.capturing or record.episode_frames:
                record_episode(record, sampler, None)
                episodes += 1
        session_end = time.perf_counter()
        with sampler.lock:
            sampler.session_end = session_end
        session_s = session_end - sampler.started
        sampler.sample(at=session_end)  # the last window's end, as the session ends
        log.close_due(session_end, session_s, final=True)
        if stopped_early:
            print(f"session ended early after {session_s / 60:.1f} min: {stopped_early}", flush=True)

        t = time.perf_counter()
        record.stop()
        drain_s = time.perf_counter() - t
        print(
            f"\nsession: {episodes} episodes in {session_s / 60:.1f} min; "
            f"record.stop() drained in {drain_s:.1f} s"
        )
        compressor = wait_for_compressor(record, session_end, args.compress_wait_min)
        sampler.done.set()
        sampler.join()
        with sampler.scan_lock:
            ledger.scan()
        videos = ledger.totals()
        tail = sampler.tail.summary(float("inf"))
        private = root / PRIVATE_DIR
        return {
            "config": {
                "duration_min": args.duration_min,
                "window_min": args.window_min,
                "episode_s": episode_s,
                "reset_s": args.reset_s,
                "format": record.dataset.meta.info.get("codebase_version", args.format),
                "compress": cfg.compress,
                "cameras": CAMERAS,
                "fps": FPS,
                "noise": "noise" in {f.name for f in dataclasses.fields(SimRobotConfig)},
            },
            "episodes": episodes,
            "committed": record.dataset.meta.total_episodes,
            "session_min": session_s / 60,
            "stopped_early": stopped_early or None,
            "drain_s": drain_s,
            "windows": log.results,
            "after_session": {
                "rss_peak_mb": tail["rss_mb"],
                "journal_mb_max": tail["journal_mb"]["max"],
                "backlog": tail["backlog"],
            },
            "compression": compressor,
            "videos": videos,
            "journal_mb_end": sum(dir_bytes(private / k) for k in JOURNAL_DIRS) / MB,
            "set_aside": sum(
                len(os.listdir(private / k)) for k in (FAILED, PARTIAL) if (private / k).is_dir()
            ),
            "private_mb_end": dir_bytes(root / PRIVATE_DIR) / MB,
            "dataset_gb": dir_bytes(root) / 2**30,
        }
    finally:
        sampler.done.set()
        if compress is not None and alive(compress.pid) and not args.keep:
            compress.stop()  # the dataset is deleted next: end it first (its files stay whole)
        robot.close()


def wait_for_compressor(record: Record, session_end: float, limit_min: float | None) -> dict[str, Any] | None:
    """Wait until the compressor process exits (it does once nothing waits); progress every 10 s."""
    compress = getattr(record, "compress", None)
    if compress is None:
        return None
    pid = compress.pid
    next_progress = time.perf_counter() + PROGRESS_S
    deadline = None if limit_min is None else time.perf_counter() + limit_min * 60
    try:
        while alive(pid):
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                print(f"compressor still running after {limit_min:g} min: not waited for", flush=True)
                break
            if now >= next_progress:
                next_progress += PROGRESS_S
                status = compress.status()
                print(
                    f"  {(now - session_end) / 60:5.1f} min after the session: {status.describe()}"
                    f" [{status.state}], RSS {rss_mb(pid) or 0:.0f} MB",
                    flush=True,
                )
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("compressor not waited for (interrupted)", flush=True)
    exited = not alive(pid)
    catch_up_s = time.perf_counter() - session_end if exited else None
    status = compress.status()
    # The process has exited; its status line is read by a thread that may not have seen the
    # last message yet.
    for _ in range(20):
        if status.state in ("done", "stopped") or not exited:
            break
        time.sleep(0.05)
        status = compress.status()
    return {
        "exited": exited,
        "catch_up_min": catch_up_s / 60 if catch_up_s is not None else None,
        "state": status.state,
        "error": status.error,
        "waiting_episodes": status.waiting_episodes,
        "waiting_camera_min": status.waiting_s / 60,
    }


# -- the report -----------------------------------------------------------------------------------


def _mb(value: float | None, width: int = 4) -> str:
    return f"{value:{width}.0f}" if value is not None else " " * (width - 1) + "-"


# Column widths, shared by the header and the rows.
COLUMNS = (
    ("window min", 11), ("ep", 3), ("|", 1), ("save p99", 8), ("max", 6), ("|", 1),
    ("late p50", 8), ("p99", 6), ("max", 7), ("skip", 4), ("|", 1),
    ("RSS rec", 9), ("enc", 9), ("cmp", 9), ("|", 1), ("journal", 9), ("|", 1),
    ("backlog end", 11), ("max", 11), ("|", 1), ("caught", 6), ("|", 1), ("MB/cam-min", 10),
)  # fmt: skip
LEGEND = (
    "save, lateness: ms; RSS (recorder, encoder, compressor) now/peak and journal now/max: MB;\n"
    "backlog: episodes (camera-minutes) at the window's end and the window's max; caught: resets\n"
    "that ended with nothing waiting; MB/cam-min: committed videos at the window's last scan"
)


def _line(cells: list[str]) -> str:
    return " ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True))


def header() -> str:
    return LEGEND + "\n" + _line([name for name, _ in COLUMNS])


def _pair(a: float | None, b: float | None) -> str:
    return f"{_mb(a)}/{_mb(b)}"


def row(r: dict[str, Any]) -> str:
    s, late, rss, b, v = r["save_ms"], r["late_ms"], r["rss_mb"], r["backlog"], r["videos"]
    video = v["mb_per_camera_min"] if v else None
    cells = [
        f"{r['from_min']:.1f}-{r['to_min']:.1f}",
        f"{r['episodes']}",
        "|",
        f"{s['p99']:.2f}",
        f"{s['max']:.2f}",
        "|",
        f"{late['p50']:.2f}",
        f"{late['p99']:.2f}",
        f"{late['max']:.2f}",
        f"{r['skipped']}",
        "|",
        *(_pair(rss[p]["now"], rss[p]["peak"]) for p in PROCESSES),
        "|",
        _pair(r["journal_mb"]["now"], r["journal_mb"]["max"]),
        "|",
        f"{b['episodes']} ({b['camera_min']:.1f})" if b else "-",
        f"{b['max_episodes']} ({b['max_camera_min']:.1f})" if b else "-",
        "|",
        f"{r['resets_caught_up']}/{r['resets']}" if b else "-",
        "|",
        f"{video:.1f}" if video is not None else "-",
    ]
    return _line(cells)


def minutes(value: float) -> str:
    return f"{value:.1f} min" if value >= 1 else f"{value * 60:.0f} s"


def flatness(result: dict[str, Any], window_min: float) -> list[tuple[str, str | None, str]]:
    """(criterion, PASS / FAIL / None for information, the numbers)."""
    windows = [w for w in result["windows"] if w["episodes"]]
    if len(windows) < 2:
        return [("flatness", None, "fewer than two windows with episodes: nothing to compare")]
    first, last = windows[0], windows[-1]
    if last["to_min"] - last["from_min"] < window_min / 2 and len(windows) > 2:
        last = windows[-2]  # a stub of a window at the end says little; the full one before it
    span = "{from_min:.1f}-{to_min:.1f} min".format
    which = f"window {span(**first)} vs {span(**last)}"
    lines: list[tuple[str, str | None, str]] = [("compared", None, which)]
    for p in PROCESSES:
        a, b = first["rss_mb"][p]["peak"], last["rss_mb"][p]["peak"]
        if a is None or b is None:
            lines.append((f"RSS {p}", None, "no such process"))
            continue
        change = (b - a) / a
        verdict = "PASS" if abs(change) <= RSS_TOLERANCE else "FAIL"
        lines.append((f"RSS {p} (peak)", verdict, f"{a:.0f} -> {b:.0f} MB ({change * 100:+.1f}%, limit 10%)"))
    a, b = first["late_ms"]["p99"], last["late_ms"]["p99"]
    verdict = "PASS" if abs(b - a) <= LATENESS_TOLERANCE_MS else "FAIL"
    lines.append(("lateness p99", verdict, f"{a:.2f} -> {b:.2f} ms ({b - a:+.2f} ms, limit 1 ms)"))
    skipped = sum(w["skipped"] for w in result["windows"])
    lines.append(("skipped ticks", None, f"{skipped} in the session"))
    a, b = first["journal_mb"]["max"], last["journal_mb"]["max"]
    lines.append(
        ("journal (max)", None, f"{a:.1f} -> {b:.1f} MB; {result['journal_mb_end']:.1f} MB left at the end")
    )
    compression = result["compression"]
    if compression is None:
        lines.append(("backlog", None, "no compression in this run"))
        return lines
    resets = sum(w["resets"] for w in result["windows"])
    caught = sum(w["resets_caught_up"] for w in result["windows"])
    peak = max(
        (w["backlog"] for w in result["windows"] if w["backlog"]),
        key=lambda x: x["max_episodes"],
        default=None,
    )
    ends = [(w["to_min"], w["backlog"]["episodes"]) for w in windows if w["backlog"]]
    growth = ""
    if len(ends) >= 2 and ends[-1][0] > ends[0][0]:
        rate = (ends[-1][1] - ends[0][1]) / (ends[-1][0] - ends[0][0]) * 60
        growth = f"; window-end backlog {ends[0][1]} -> {ends[-1][1]} episodes ({rate:+.0f} per hour)"
    top = (
        f"max {peak['max_episodes']} episodes ({peak['max_camera_min']:.1f} camera-min)"
        if peak
        else "never reported"
    )
    lines.append(("backlog", None, f"{top}; empty at the end of {caught} of {resets} resets{growth}"))
    if resets and caught == resets:
        verdict, text = "PASS", "caught up within every reset"
    elif compression["exited"] and compression["state"] == "done":
        verdict = "PASS"
        text = (
            f"caught up {minutes(compression['catch_up_min'])} after the session's end "
            f"(drain {result['drain_s']:.1f} s)"
        )
    else:
        verdict = "FAIL"
        text = (
            f"not caught up: compressor {compression['state']}"
            + (f" ({compression['error']})" if compression["error"] else "")
            + f", {compression['waiting_episodes']} episodes "
            + f"({compression['waiting_camera_min']:.1f} camera-min) waiting"
        )
    lines.append(("backlog bounded", verdict, text))
    return lines


def report(result: dict[str, Any], window_min: float) -> None:
    tail = result["after_session"]
    if any(tail["rss_peak_mb"][p]["peak"] for p in PROCESSES):  # sampled while the compressor ran
        rss = ", ".join(f"{p} {_mb(tail['rss_peak_mb'][p]['peak'], 0)}" for p in PROCESSES)
        print(f"after the session (peak RSS MB): {rss}; journal up to {tail['journal_mb_max']:.1f} MB")
    c = result["compression"]
    if c is not None:
        when = f"{minutes(c['catch_up_min'])} after the session's end" if c["exited"] else "not yet"
        print(f"compressor: exited {when}, state {c['state']}" + (f" ({c['error']})" if c["error"] else ""))
    v = result["videos"]
    before, after = v["before_mb_per_camera_min"], v["mb_per_camera_min"]
    print(
        f"videos: {v['files']} files, {v['compressed_files']} compressed, {v['camera_min']:.1f} camera-min, "
        f"{v['bytes'] / 2**30:.2f} GB; dataset {result['dataset_gb']:.2f} GB"
    )
    if before is not None and after is not None:
        missed = v["files"] - v["before_files"]
        print(
            f"MB per camera-minute: before compression {before:.1f} (libx264 as written, "
            f"{v['before_files']} files"
            f"{f'; {missed} compressed before a scan saw them, left out' if missed else ''}), "
            f"after {after:.1f} ({before / after:.1f}x smaller)"
        )
    if result["set_aside"]:
        print(f"set aside: {result['set_aside']} journals in .dorobot/failed or partial")
    print(f"\nflatness ({'' if c is None else 'compression on, '}{result['config']['format']}):")
    for name, verdict, text in flatness(result, window_min):
        print(f"  {verdict or '    '}  {name:22s} {text}")


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="A long recording session, reported per window.")
    parser.add_argument("--duration-min", type=float, default=60.0, help="session length (240: 4 hours)")
    parser.add_argument("--window-min", type=float, default=10.0, help="report window")
    parser.add_argument("--episode-s", type=float, default=20.0)
    parser.add_argument("--reset-s", type=float, default=5.0)
    parser.add_argument("--format", default="v2.1", choices=["v2.1", "v3.0"])
    parser.add_argument("--no-compress", action="store_true", help="no background compression")
    parser.add_argument(
        "--compress-wait-min", type=float, help="longest wait for the compressor (default: no limit)"
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--root", type=Path, help="dataset folder (must not exist yet)")
    parser.add_argument("--keep", action="store_true", help="keep the dataset")
    args = parser.parse_args()
    if args.root is not None:
        if args.root.exists():
            parser.error(f"--root {args.root} exists; give a folder that does not exist yet")
        root, owner = args.root, args.root
    else:
        owner = Path(tempfile.mkdtemp(prefix="soak-", dir=os.environ.get("BENCH_TMP")))
        root = owner / "ds"
    free = shutil.disk_usage(owner if owner.exists() else owner.parent).free / 2**30
    print(
        f"soak: {args.duration_min:g} min of {args.episode_s:g} s episodes, {args.reset_s:g} s resets, "
        f"{CAMERAS} cameras 640x480 at {FPS} fps, {args.format}, "
        f"{'no compression' if args.no_compress else 'compress av1'}; dataset {root} ({free:.0f} GB free)",
        flush=True,
    )
    try:
        result = run_session(args, root)
        report(result, args.window_min)
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
            print(f"figures written to {args.json}")
    finally:
        if args.keep:
            print(f"dataset kept in {root}")
        else:
            shutil.rmtree(owner, ignore_errors=True)


if __name__ == "__main__":
    main()
