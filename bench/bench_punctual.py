"""Capture stays punctual whatever the encoder: tick lateness, skipped ticks, and what the lag costs.

    python bench/bench_punctual.py              # 3 runs of every scenario, medians (about 25 minutes)
    python bench/bench_punctual.py --runs 1     # each scenario once (about 9 minutes)
    python bench/bench_punctual.py --quick      # a smoke run of every scenario (about 3 minutes)
    python bench/bench_punctual.py run --width 1280 --height 720 --vcodec libsvtav1 --preset 10 --prerender 30

A session is `--episodes` episodes (3) of `--episode-s` seconds (10) with 3 cameras of the
simulated robot at 30 fps, with per-pixel sensor noise (`--robot.noise`, what real sensors give
an encoder), 2 s resets, saved in the background. Scenarios: 3 x 640x480 with libx264 ultrafast
(the default), SVT-AV1 preset 12 and preset 6 (crf 30); 3 x 1280x720 with libx264 ultrafast and
SVT-AV1 presets 12 and 10, each twice: with the simulated robot drawing its three scenes on the
capture thread every tick (about 10 ms a tick at this size), and with the scenes drawn ahead
(`--robot.prerender`, "frames ready"), so that a tick costs what a camera driver's ready frame
costs and the figures are the recorder's own. Each run is a fresh process. It reports:
- tick lateness p50 / p99 / max over every capture tick, ticks late by over 5 ms, ticks skipped;
- save(): p99 of how long the call blocked;
- the longest episode's wall time against its nominal length (a skipped tick lengthens it);
- the encoder: its rate while frames waited for it (frames/s, a frame being every camera's
  image of one tick; "kept" when nothing ever waited for it) against the capture rate, how far
  behind it was when the last episode ended, its CPU use while recording (and the recorder's,
  and other processes' on the machine, which compete with capture as equals), and when the
  recorder warned that it cannot keep up;
- the journal's peak size on disk, and the drain: from the last save() to every episode committed;
- peak RSS of the recorder and of its encoder process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from procstat import CLK_TCK, cpu_s, dir_bytes, rss_mb

from operating_platform.core.record import CaptureStats, Record, RecordConfig
from operating_platform.robots import SimRobotConfig, make_robot

FPS = 30
CAMERAS = 3
# A second of scenes drawn ahead for the "frames ready" scenarios.
PRERENDER = FPS
_HD_CODECS = (("libx264", "ultrafast", 23), ("libsvtav1", "12", 30), ("libsvtav1", "10", 30))
# (width, height, vcodec, preset, crf, prerender)
SCENARIOS = [
    (640, 480, "libx264", "ultrafast", 23, 0),
    (640, 480, "libsvtav1", "12", 30, 0),
    (640, 480, "libsvtav1", "6", 30, 0),
    *(
        (1280, 720, vcodec, preset, crf, prerender)
        for prerender in (0, PRERENDER)
        for vcodec, preset, crf in _HD_CODECS
    ),
]


def _busy_s() -> float:
    """CPU time the whole machine has spent busy (every core, every process) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def _encoder_pid(record: Record) -> int | None:
    saver = record.async_saver
    process = saver._worker._process if saver is not None else None
    return process.pid if process is not None else None


class Sampler(threading.Thread):
    """Peak RSS of the recorder and its encoder every 0.1 s; the journal's size every 0.5 s."""

    def __init__(self, record: Record) -> None:
        super().__init__(daemon=True)
        self.record = record
        self.peak = {"recorder_mb": 0.0, "encoder_mb": 0.0, "journal_mb": 0.0}
        self.done = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self.done.wait(0.1):
            self.peak["recorder_mb"] = max(self.peak["recorder_mb"], rss_mb(os.getpid()) or 0.0)
            self.peak["encoder_mb"] = max(self.peak["encoder_mb"], rss_mb(_encoder_pid(self.record)) or 0.0)
            tick += 1
            if tick % 5 == 0:
                journal_mb = dir_bytes(self.record.dataset.journal_dir) / 2**20
                self.peak["journal_mb"] = max(self.peak["journal_mb"], journal_mb)


class Warnings(logging.Handler):
    """The recorder's warnings, with when each came (seconds after the first episode started)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.started = time.monotonic()
        self.seen: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((time.monotonic() - self.started, record.getMessage()))


def run_once(
    width: int,
    height: int,
    vcodec: str,
    preset: str,
    crf: int,
    prerender: int,
    episodes: int,
    episode_s: float,
    reset_s: float,
) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        robot = make_robot(
            SimRobotConfig(
                num_cameras=CAMERAS, camera_width=width, camera_height=height, noise=True, prerender=prerender
            )
        )
        cfg = RecordConfig(
            repo_id="bench/punctual",
            single_task="bench",
            root=str(Path(tmp) / "ds"),
            vcodec=vcodec,
            preset=preset,
            crf=crf,
        )
        record = Record(fps=FPS, robot=robot, record_cfg=cfg)
        robot.connect()
        warnings = Warnings()
        logging.getLogger("operating_platform").addHandler(warnings)
        sampler = Sampler(record)
        sampler.start()
        saves, walls, capture = [], [], CaptureStats(FPS)
        encoder_cpu, recorder_cpu, others_cpu, recording_s, behind = 0.0, 0.0, 0.0, 0.0, 0
        frames = round(episode_s * FPS)
        warnings.started = time.monotonic()
        for number in range(episodes):
            cpu, own, busy = cpu_s(_encoder_pid(record)), cpu_s(os.getpid()), _busy_s()
            started = time.perf_counter()
            record.start(max_frames=frames)
            while record.capturing:
                time.sleep(0.02)
            walls.append(time.perf_counter() - started)
            encoder, recorder = cpu_s(_encoder_pid(record)) - cpu, cpu_s(os.getpid()) - own
            encoder_cpu += encoder
            recorder_cpu += recorder
            others_cpu += _busy_s() - busy - encoder - recorder
            recording_s += walls[-1]
            capture.merge(record.stats)
            t = time.perf_counter()
            record.save()
            saves.append(time.perf_counter() - t)
            if number == episodes - 1:
                behind = record.status().behind_frames
            else:
                time.sleep(reset_s)
        t = time.perf_counter()
        record.stop()
        drain = time.perf_counter() - t
        sampler.done.set()
        sampler.join()
        robot.disconnect()
        logging.getLogger("operating_platform").removeHandler(warnings)
        status = record.status()
        committed = record.dataset.meta.total_episodes
    saves_ms = np.array(saves) * 1e3
    slow = [(at, line) for at, line in warnings.seen if "cannot keep up" in line]
    return {
        "scenario": f"{CAMERAS} x {width}x{height} {vcodec} {preset} crf {crf}"
        + (", frames ready" if prerender else ""),
        "episodes": episodes,
        "committed": committed,
        "late_ms": [capture.lateness_percentile(q) * 1e3 for q in (50, 99)] + [capture.max_lateness_s * 1e3],
        "ticks": capture.ticks,
        "late": capture.late_ticks,
        "skipped": capture.missed_ticks,
        "save_p99_ms": float(np.percentile(saves_ms, 99)),
        "episode_wall_ratio": max(walls) / episode_s,
        "encode_fps": status.encode_fps,
        "capture_fps": FPS,
        "behind_s": behind / FPS,
        "encoder_cores": encoder_cpu / recording_s,
        "recorder_cores": recorder_cpu / recording_s,
        # Other processes on the machine while recording: they compete with capture as equals.
        "others_cores": max(0.0, others_cpu / recording_s),
        "warned_at_s": slow[0][0] if slow else None,
        "warning": slow[0][1] if slow else None,
        "other_warnings": [line for _, line in warnings.seen if "cannot keep up" not in line],
        "drain_s": drain,
        **sampler.peak,
    }


def _fmt(r: dict) -> str:
    late = r["late_ms"]
    rate = f"{r['encode_fps']:5.1f}" if r["encode_fps"] is not None else " kept"
    warned = f"at {r['warned_at_s']:4.1f} s" if r["warned_at_s"] is not None else "no"
    return (
        f"{r['scenario']:48s} | late p50 {late[0]:5.2f} p99 {late[1]:5.2f} max {late[2]:6.2f} ms, "
        f"{r['late']} late, {r['skipped']} skipped of {r['ticks']} | save p99 {r['save_p99_ms']:4.2f} ms | "
        f"episode x{r['episode_wall_ratio']:.2f} | encode {rate}/{r['capture_fps']} fps, "
        f"{r['encoder_cores']:.2f} cores, {r['behind_s']:5.1f} s behind, warned {warned} | "
        f"recorder {r['recorder_cores']:.2f}, others {r['others_cores']:.2f} cores | "
        f"journal {r['journal_mb']:5.0f} MB | drain {r['drain_s']:6.1f} s | RSS rec {r['recorder_mb']:4.0f} "
        f"enc {r['encoder_mb']:4.0f} MB | {r['committed']}/{r['episodes']} saved"
    )


def _median(results: list[dict], pick) -> float | None:
    values = [pick(r) for r in results]
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _fmt_median(results: list[dict]) -> str:
    def m(pick, spec: str) -> str:
        value = _median(results, pick)
        return "-" if value is None else format(value, spec)

    return (
        f"  median of {len(results)}: late p99 {m(lambda r: r['late_ms'][1], '.2f')} max "
        f"{m(lambda r: r['late_ms'][2], '.2f')} ms, {m(lambda r: r['late'], 'g')} late, skipped "
        f"{m(lambda r: r['skipped'], 'g')} (runs: {', '.join(str(r['skipped']) for r in results)}), save p99 "
        f"{m(lambda r: r['save_p99_ms'], '.2f')} ms, encode {m(lambda r: r['encode_fps'], '.1f')}/"
        f"{FPS} fps, encoder {m(lambda r: r['encoder_cores'], '.2f')} cores, others "
        f"{m(lambda r: r['others_cores'], '.2f')}, behind {m(lambda r: r['behind_s'], '.1f')} s, warned at "
        f"{m(lambda r: r['warned_at_s'], '.1f')} s, journal {m(lambda r: r['journal_mb'], '.0f')} MB, "
        f"drain {m(lambda r: r['drain_s'], '.1f')} s, RSS rec {m(lambda r: r['recorder_mb'], '.0f')} enc "
        f"{m(lambda r: r['encoder_mb'], '.0f')} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark capture punctuality against slow encoders.")
    parser.add_argument("command", nargs="?", default="all", choices=["all", "run"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run of 2 episodes of 4 s per scenario")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--episode-s", type=float, default=10)
    parser.add_argument("--reset-s", type=float, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--vcodec", default="libx264")
    parser.add_argument("--preset", default="ultrafast")
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--prerender", type=int, default=0, help="ticks of scenes drawn ahead")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.episodes, args.episode_s = 1, 2, 4
    if args.command == "run":
        session = (args.episodes, args.episode_s, args.reset_s)
        video = (args.width, args.height, args.vcodec, args.preset, args.crf, args.prerender)
        print(json.dumps(run_once(*video, *session)))
        return
    print(
        f"{args.runs} run(s) per scenario; each {args.episodes} episodes of {args.episode_s:g} s, "
        f"{args.reset_s:g} s resets, {CAMERAS} noisy cameras at {FPS} fps",
        flush=True,
    )
    for width, height, vcodec, preset, crf, prerender in SCENARIOS:
        results = []
        for _ in range(args.runs):
            cmd = [sys.executable, __file__, "run", f"--width={width}", f"--height={height}"]
            cmd += [f"--vcodec={vcodec}", f"--preset={preset}", f"--crf={crf}", f"--prerender={prerender}"]
            cmd += [f"--episodes={args.episodes}"]
            cmd += [f"--episode-s={args.episode_s}", f"--reset-s={args.reset_s}"]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(out.returncode)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(_fmt(results[-1]), flush=True)
            for line in results[-1]["other_warnings"]:
                print(f"    warning: {line}", flush=True)
        if results[0]["warning"]:
            print(f"    {results[0]['warning']}", flush=True)
        if args.runs > 1:
            print(_fmt_median(results), flush=True)


if __name__ == "__main__":
    main()
