"""The asynchronous saver against its targets: save() latency, capture lateness, drain, memory.

    python bench/bench_async.py            # the full set (about 40 minutes)
    python bench/bench_async.py --quick    # a smoke run of every scenario (about 2 minutes)
    python bench/bench_async.py --scenarios async:3:600:1 sync:3:60:2   # MODE:CAMERAS:SECONDS:EPISODES
    python bench/bench_async.py run --mode async --cameras 3 --episode-s 30 --episodes 4

Each scenario runs in a fresh process on the simulated robot at 640x480 and 30 fps, with no
reset time, so the saver works while the next episode is captured. It reports:
- save(): how long the call blocked the operator (p50 / p99 / max over every episode);
- tick lateness: how late each capture tick started (p50 / p99 / max over every tick), and the
  ticks skipped because capture fell a whole tick behind;
- drain: from the last save() to every episode committed;
- peak RSS of the recorder and of its encoder process (sampled every 0.1 s), and the peak
  size of the episode journals on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from procstat import dir_bytes, rss_mb

from operating_platform.core.record import CaptureStats, Record, RecordConfig
from operating_platform.robots import SimRobotConfig, make_robot


class Sampler(threading.Thread):
    """Peak RSS of this process and the encoder, and peak journal size, sampled in the background."""

    def __init__(self, record: Record) -> None:
        super().__init__(daemon=True)
        self.record = record
        self.peak = {"recorder_rss_mb": 0.0, "encoder_rss_mb": 0.0, "journal_mb": 0.0}
        self.stop_event = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self.stop_event.wait(0.1):
            self.peak["recorder_rss_mb"] = max(self.peak["recorder_rss_mb"], rss_mb(os.getpid()) or 0.0)
            saver = self.record.async_saver
            process = saver._worker._process if saver is not None else None
            if process is not None and process.pid:
                self.peak["encoder_rss_mb"] = max(self.peak["encoder_rss_mb"], rss_mb(process.pid) or 0.0)
            tick += 1
            if tick % 10 == 0:
                journal = self.record.dataset.journal_dir
                self.peak["journal_mb"] = max(self.peak["journal_mb"], dir_bytes(journal) / 2**20)


def run_scenario(mode: str, cameras: int, episode_s: float, episodes: int, **video: str) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        robot = make_robot(SimRobotConfig(num_cameras=cameras))
        cfg = RecordConfig(
            repo_id="bench/async",
            single_task="bench",
            root=str(Path(tmp) / "ds"),
            use_async_save=mode == "async",
        )
        record = Record(fps=30, robot=robot, record_cfg=cfg)
        robot.connect()
        sampler = Sampler(record)
        sampler.start()
        saves, capture = [], CaptureStats(30)
        for _ in range(episodes):
            record.start(max_frames=round(episode_s * 30))
            while record.capturing:
                time.sleep(0.05)
            capture.merge(record.stats)
            started = time.perf_counter()
            record.save()
            saves.append(time.perf_counter() - started)
        drain_started = time.perf_counter()
        record.stop()
        drain = time.perf_counter() - drain_started
        sampler.stop_event.set()
        sampler.join()
        robot.disconnect()
        committed = record.dataset.meta.total_episodes
    saves_ms = np.array(saves) * 1e3
    late_ms = [capture.lateness_percentile(q) * 1e3 for q in (50, 99)] + [capture.max_lateness_s * 1e3]
    return {
        "mode": mode,
        "cameras": cameras,
        "episode_s": episode_s,
        "episodes": episodes,
        "committed": committed,
        "save_ms": [float(np.percentile(saves_ms, q)) for q in (50, 99)] + [float(saves_ms.max())],
        "late_ms": late_ms,
        "ticks": capture.ticks,
        "skipped_ticks": capture.missed_ticks,
        "drain_s": drain,
        **sampler.peak,
    }


FULL = [
    ("async", 1, 30, 4),
    ("async", 3, 30, 4),
    ("async", 1, 300, 1),
    ("async", 3, 300, 1),
    ("async", 3, 60, 2),
    ("async", 3, 60, 10),
    ("sync", 3, 30, 4),
    ("sync", 3, 60, 2),
    ("sync", 3, 60, 10),
]
QUICK = [(mode, cams, 5, 2) for mode, cams in (("async", 1), ("async", 3), ("sync", 3))]


def _fmt(r: dict) -> str:
    s, late = r["save_ms"], r["late_ms"]
    return (
        f"{r['mode']:5s} {r['cameras']} cam {r['episode_s']:4g} s x{r['episodes']:<2d} | "
        f"save {s[0]:8.1f} {s[1]:8.1f} {s[2]:8.1f} ms | late {late[0]:5.2f} {late[1]:6.2f} {late[2]:7.2f} ms "
        f"({r['ticks']} ticks, {r['skipped_ticks']} skipped) | drain {r['drain_s']:6.2f} s | "
        f"RSS {r['recorder_rss_mb']:5.0f} + "
        f"{r['encoder_rss_mb']:4.0f} MB | journal {r['journal_mb']:6.0f} MB | {r['committed']} saved"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the asynchronous saver.")
    parser.add_argument("command", nargs="?", default="all", choices=["all", "run"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--scenarios", nargs="*", help="MODE:CAMERAS:SECONDS:EPISODES, instead of the full set"
    )
    parser.add_argument("--mode", default="async", choices=["async", "sync"])
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--episode-s", type=float, default=30)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--vcodec", default="libx264")
    parser.add_argument("--preset", default="ultrafast")
    parser.add_argument("--crf", type=int, default=23)
    args = parser.parse_args()
    if args.command == "run":
        video = {"vcodec": args.vcodec, "preset": args.preset, "crf": args.crf}
        print(json.dumps(run_scenario(args.mode, args.cameras, args.episode_s, args.episodes, **video)))
        return
    print("mode  setup              | save() p50 p99 max       | tick lateness p50 p99 max (skipped) | ...")
    chosen = QUICK if args.quick else FULL
    if args.scenarios:
        chosen = [(m, int(c), float(s), int(e)) for m, c, s, e in (x.split(":") for x in args.scenarios)]
    for mode, cams, seconds, episodes in chosen:
        cmd = [sys.executable, __file__, "run", f"--mode={mode}", f"--cameras={cams}"]
        cmd += [f"--episode-s={seconds}", f"--episodes={episodes}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        print(_fmt(json.loads(out.strip().splitlines()[-1])), flush=True)


if __name__ == "__main__":
    main()
