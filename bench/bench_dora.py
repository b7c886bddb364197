"""Recording from a dora dataflow: the example SO-101 dataflow at 30 fps with 2 cameras.

    python bench/bench_dora.py                       # 3 runs of 5 x 20 s episodes (about 6 minutes)
    python bench/bench_dora.py --runs 1 --episodes 2 --episode-s 5     # a quick look
    python bench/bench_dora.py run --episodes 5 --episode-s 20          # one run, as JSON

Each run starts `dora run examples/dorobot_sim/dataflow.yml` (camera nodes rendering 640x480
textured frames with per-pixel sensor noise, one sending bgr8 and one JPEG, two arm nodes and
the ZeroMQ bridge, all on 33 ms dora timers) and records it with `--robot.type=dorobot` in a
fresh process, saving in the background with the default encoder. It reports:
- tick lateness p50 / p99 / max over every capture tick, and ticks skipped;
- save() p99;
- per stream: the age of the message each frame used (tick time minus its arrival at the
  recorder), p50 / p99, and how many frames repeated the message before;
- CPU (percent of one core, over the session) of the recorder (its process and the encoder
  process) against the simulated robot (dora and every node), and the peak RSS of each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from operating_platform.core.record import CaptureStats, Record, RecordConfig, short_stream_name
from operating_platform.robots import make_robot
from operating_platform.robots.dorobot import DoRobotConfig

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dorobot_sim"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(session id, resident MB, CPU seconds used) of a process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields after the name: state ppid pgrp session ... utime(12) stime(13) ... rss(22).
    cpu = (int(fields[11]) + int(fields[12])) / TICKS_PER_S
    return int(fields[3]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20, cpu


class Processes(threading.Thread):
    """Samples, every 0.2 s, the CPU time and RSS of two groups of processes: the recorder (this
    process and its encoder) and the dataflow (every process in `dora run`'s session)."""

    def __init__(self, dora_sid: int, record: Record) -> None:
        super().__init__(daemon=True)
        self.dora_sid, self.record = dora_sid, record
        self.cpu: dict[str, dict[int, float]] = {"recorder": {}, "encoder": {}, "dataflow": {}}
        self.peak_mb = {"recorder": 0.0, "encoder": 0.0, "dataflow": 0.0}
        self.done = threading.Event()

    def _groups(self) -> dict[str, list[int]]:
        saver = self.record.async_saver
        process = saver._worker._process if saver is not None else None
        dataflow = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] == self.dora_sid:
                dataflow.append(int(entry.name))
        encoder = [process.pid] if process is not None and process.pid else []
        return {"recorder": [os.getpid()], "encoder": encoder, "dataflow": dataflow}

    def sample(self) -> None:
        for group, pids in self._groups().items():
            total_mb = 0.0
            for pid in pids:
                stat = _stat(pid)
                if stat is not None:
                    self.cpu[group][pid] = stat[2]
                    total_mb += stat[1]
            self.peak_mb[group] = max(self.peak_mb[group], total_mb)

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.sample()

    def cpu_seconds(self) -> dict[str, float]:
        return {group: sum(per_pid.values()) for group, per_pid in self.cpu.items()}


def _start_dataflow(folder: Path, image: str, joint: str) -> subprocess.Popen:
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("out", "*.dora-session.yaml"))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.update(DOROBOT_IMAGE_ADDRESS=image, DOROBOT_JOINT_ADDRESS=joint)
    return subprocess.Popen(
        [str(Path(bin_dir) / "dora"), "run", str(folder / "dataflow.yml"), "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def _stop_dataflow(proc: subprocess.Popen) -> None:
    proc.terminate()  # dora stops its nodes on SIGTERM
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def _record(root: Path, image: str, joint: str, episodes: int, episode_s: float, dora_sid: int) -> dict:
    robot = make_robot(DoRobotConfig(image_address=image, joint_address=joint))
    robot.open()
    cfg = RecordConfig(repo_id="bench/dora", single_task="bench", root=str(root))
    record = Record(fps=30, robot=robot, record_cfg=cfg)
    processes = Processes(dora_sid, record)
    processes.sample()
    before, started = processes.cpu_seconds(), time.monotonic()
    processes.start()
    saves, capture = [], CaptureStats(30, robot.all_streams)
    try:
        for _ in range(episodes):
            record.start(max_frames=round(episode_s * 30))
            while record.capturing:
                time.sleep(0.05)
            capture.merge(record.stats)
            began = time.perf_counter()
            record.save()
            saves.append((time.perf_counter() - began) * 1e3)
        processes.sample()
        after, elapsed = processes.cpu_seconds(), time.monotonic() - started
        record.stop()
    finally:
        processes.done.set()
        robot.close()
    if record.error is not None:
        raise SystemExit(f"recording failed: {record.error}")
    cpu = {group: 100 * (after[group] - before[group]) / elapsed for group in after}
    return {
        "episodes": record.dataset.meta.total_episodes,
        "ticks": capture.ticks,
        "skipped_ticks": capture.missed_ticks,
        "late_ms": [capture.lateness_percentile(q) * 1e3 for q in (50, 99)] + [capture.max_lateness_s * 1e3],
        "save_p99_ms": float(np.percentile(saves, 99)),
        "cpu_percent": cpu,
        "peak_rss_mb": processes.peak_mb,
        "streams": _stream_figures(root, robot.all_streams),
    }


def _stream_figures(root: Path, streams: list[str]) -> dict[str, dict]:
    tables = [pq.read_table(p) for p in sorted((root / ".dorobot" / "timing").glob("*.parquet"))]
    figures = {}
    for stream in streams:
        ages = np.concatenate([t.column(f"{stream}.age_s").to_numpy() for t in tables]) * 1e3
        repeated = sum(int(t.column(f"{stream}.repeated").to_numpy().sum()) for t in tables)
        figures[short_stream_name(stream)] = {
            "age_ms": [float(np.percentile(ages, 50)), float(np.percentile(ages, 99))],
            "repeated": repeated,
            "frames": int(ages.size),
        }
    return figures


def run(episodes: int, episode_s: float) -> dict:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        base = f"ipc:///tmp/dorobot-bench-{os.getpid()}"
        image, joint = f"{base}-image", f"{base}-joint"
        dataflow = _start_dataflow(Path(tmp) / "dataflow", image, joint)
        try:
            return _record(Path(tmp) / "ds", image, joint, episodes, episode_s, dataflow.pid)
        finally:
            _stop_dataflow(dataflow)


def _fmt(r: dict) -> str:
    late, cpu, rss = r["late_ms"], r["cpu_percent"], r["peak_rss_mb"]
    streams = ", ".join(
        f"{name} {s['age_ms'][0]:.0f}/{s['age_ms'][1]:.0f} ms {s['repeated']} rep"
        for name, s in r["streams"].items()
    )
    return (
        f"{r['episodes']} ep, {r['ticks']} ticks | late {late[0]:.2f} {late[1]:.2f} {late[2]:.2f} ms, "
        f"{r['skipped_ticks']} skipped | save p99 {r['save_p99_ms']:.1f} ms | age p50/p99: {streams} | "
        f"CPU recorder {cpu['recorder']:.0f}% + encoder {cpu['encoder']:.0f}% vs dataflow "
        f"{cpu['dataflow']:.0f}% | RSS {rss['recorder']:.0f} + {rss['encoder']:.0f} "
        f"vs {rss['dataflow']:.0f} MB"
    )


def _median_summary(results: list[dict]) -> str:
    def med(values: list[float]) -> float:
        return float(np.median(values))

    p99 = med([r["late_ms"][1] for r in results])
    worst = max(r["late_ms"][2] for r in results)
    cpu = {g: med([r["cpu_percent"][g] for r in results]) for g in results[0]["cpu_percent"]}
    ages = {name: med([r["streams"][name]["age_ms"][1] for r in results]) for name in results[0]["streams"]}
    return (
        f"median of {len(results)} runs: lateness p99 {p99:.2f} ms (worst max {worst:.2f} ms), skipped "
        f"{sum(r['skipped_ticks'] for r in results)}, age p99 "
        + ", ".join(f"{n} {a:.0f} ms" for n, a in ages.items())
        + f", CPU recorder {cpu['recorder']:.0f}% + encoder {cpu['encoder']:.0f}% "
        f"vs dataflow {cpu['dataflow']:.0f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark recording from a dora dataflow.")
    parser.add_argument("command", nargs="?", default="all", choices=["all", "run"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--episode-s", type=float, default=20)
    args = parser.parse_args()
    if args.command == "run":
        print(json.dumps(run(args.episodes, args.episode_s)))
        return
    results = []
    for _ in range(args.runs):
        cmd = [
            sys.executable,
            __file__,
            "run",
            f"--episodes={args.episodes}",
            f"--episode-s={args.episode_s}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(_fmt(results[-1]), flush=True)
    print(_median_summary(results))


if __name__ == "__main__":
    main()
