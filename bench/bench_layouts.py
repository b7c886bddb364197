"""Recording in each dataset layout, with and without the background upload.

    python bench/bench_layouts.py                 # 3 runs of each scenario (about 35 minutes)
    python bench/bench_layouts.py --runs 1 --episode-s 3      # a quick look
    python bench/bench_layouts.py run --layout v3.0 --upload  # one run, as JSON

A session is 10 episodes of `--episode-s` seconds (default 15) with 3 cameras at 640x480 and
30 fps on the simulated robot (textured frames with per-pixel sensor noise), 2 s resets, saved
in the background with the default encoder (libx264 ultrafast). Scenarios: v2.1 and v3.0 (LeRobot's
default file caps, and 40 MB video files so that episodes are packed during the session), each
also with `--record.push_to` an S3 bucket served on localhost (moto's S3 server, started here).
Each run is a fresh process. It reports:
- save(): how long the call blocked (p50 / p99 / max over the episodes);
- tick lateness p50 / p99 / max over every capture tick, and ticks skipped;
- drain: from the last save() to every episode committed (and, v3.0, the files packed);
- peak RSS of the recorder, its encoder process and the upload process;
- v3.0: the largest video file, and what the videos cost to write: packing (each episode once,
  each packed file once) against appending each episode to its file by rewriting the file;
- with upload: the bytes sent, how long the upload ran after the drain, and its throughput
  (bytes over the time from the first commit to the remote copy being complete).
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

import av
import numpy as np
from procstat import rss_mb

from operating_platform.core.record import CaptureStats, Record, RecordConfig
from operating_platform.robots import SimRobotConfig, make_robot

SCENARIOS = [
    ("v2.1", None, False),
    ("v3.0", None, False),
    ("v3.0", 40.0, False),
    ("v2.1", None, True),
    ("v3.0", None, True),
]


class Peaks(threading.Thread):
    """Peak RSS of the recorder, its encoder process and its upload process, every 0.1 s."""

    def __init__(self, record: Record, upload: object | None) -> None:
        super().__init__(daemon=True)
        self.record, self.upload = record, upload
        self.peak = {"recorder": 0.0, "encoder": 0.0, "upload": 0.0}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            saver = self.record.async_saver
            process = saver._worker._process if saver is not None else None
            pids = {
                "recorder": os.getpid(),
                "encoder": process.pid if process is not None else None,
                "upload": getattr(self.upload, "pid", None),
            }
            for name, pid in pids.items():
                self.peak[name] = max(self.peak[name], rss_mb(pid) or 0.0)


def _dataset_bytes(root: Path) -> int:
    return sum(
        p.stat().st_size for top in ("data", "videos", "meta") for p in (root / top).rglob("*") if p.is_file()
    )


def _write_volumes(root: Path) -> dict[str, float] | None:
    """v3.0: MB the videos cost to write by packing (each episode once, then each packed file
    once) against appending every episode to its file by rewriting the file (LeRobot's way for
    videos): per camera file, the file's size after each of its episodes, summed."""
    from operating_platform.dataset.reader import DatasetReader

    reader = DatasetReader.open(root)
    if reader.codebase_version != "v3.0":
        return None
    packed = rewritten = 0
    for key in reader.video_keys:
        by_file: dict[Path, list[float]] = {}
        for index in range(reader.total_episodes):
            segment = reader.video_segment(index, key)
            by_file.setdefault(segment.path, []).append(segment.to_timestamp)
        for path, ends in by_file.items():
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                sizes = [0] * len(ends)
                for packet in container.demux(stream):
                    if packet.pts is None:
                        continue
                    at = float(packet.pts * stream.time_base)
                    sizes[min(sum(at >= end for end in ends), len(ends) - 1)] += packet.size
            packed += sum(sizes) * (2 if len(sizes) > 1 else 1)
            rewritten += sum(sum(sizes[: k + 1]) for k in range(len(sizes)))
    return {"packing_mb": packed / 2**20, "rewriting_mb": rewritten / 2**20}


def run_once(layout: str, video_mb: float | None, upload_url: str, episodes: int, episode_s: float) -> dict:
    from operating_platform.upload.process import UploadProcess

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp) / "ds"
        robot = make_robot(SimRobotConfig(num_cameras=3))
        cfg = RecordConfig(
            repo_id="bench/layouts",
            single_task="bench",
            root=str(root),
            format=layout,
            video_files_size_in_mb=video_mb,
        )
        record = Record(fps=30, robot=robot, record_cfg=cfg)
        robot.connect()
        upload = UploadProcess.for_session(root, upload_url) if upload_url else None
        peaks = Peaks(record, upload)
        peaks.start()
        started = time.perf_counter()
        saves, capture = [], CaptureStats(30)
        for _ in range(episodes):
            record.start(max_frames=round(episode_s * 30))
            while record.capturing:
                time.sleep(0.05)
            capture.merge(record.stats)
            t = time.perf_counter()
            record.save()
            saves.append(time.perf_counter() - t)
            time.sleep(2.0)  # the reset
        t = time.perf_counter()
        record.stop()
        drain = time.perf_counter() - t
        upload_tail = 0.0
        if upload is not None:
            t = time.perf_counter()
            finished = upload.finish_session(3600, interrupted=lambda: False)
            upload_tail = time.perf_counter() - t
            assert finished, "the upload did not finish"
        total_s = time.perf_counter() - started
        peaks.done.set()
        peaks.join()
        robot.disconnect()
        size = _dataset_bytes(root)
        volumes = _write_volumes(root)
        videos = [p.stat().st_size / 2**20 for p in (root / "videos").rglob("*.mp4")]
        committed = record.dataset.meta.total_episodes
        files = sum(1 for top in ("data", "videos") for p in (root / top).rglob("*") if p.is_file())
    saves_ms = np.array(saves) * 1e3
    result = {
        "layout": layout,
        "video_mb": video_mb,
        "upload": bool(upload_url),
        "committed": committed,
        "files": files,
        "dataset_mb": size / 2**20,
        "save_ms": [float(np.percentile(saves_ms, q)) for q in (50, 99)] + [float(saves_ms.max())],
        "late_ms": [capture.lateness_percentile(q) * 1e3 for q in (50, 99)] + [capture.max_lateness_s * 1e3],
        "ticks": capture.ticks,
        "skipped": capture.missed_ticks,
        "drain_s": drain,
        "rss_mb": peaks.peak,
        "largest_video_mb": max(videos, default=0.0),
        "write_mb": volumes,
    }
    if upload_url:
        result["upload_tail_s"] = upload_tail
        result["upload_mb_s"] = size / 2**20 / total_s
    return result


def _fmt(r: dict) -> str:
    s, late, rss = r["save_ms"], r["late_ms"], r["rss_mb"]
    caps = f"{r['video_mb']:g} MB" if r["video_mb"] else "default"
    upload = "upload" if r["upload"] else "      "
    line = (
        f"{r['layout']} {caps:7s} {upload} | save p50 {s[0]:5.2f} p99 {s[1]:5.2f} max {s[2]:5.2f} ms | "
        f"late p50 {late[0]:5.2f} p99 {late[1]:5.2f} max {late[2]:6.2f} ms, {r['skipped']} skipped of "
        f"{r['ticks']} | drain {r['drain_s']:5.2f} s | RSS rec {rss['recorder']:4.0f} enc "
        f"{rss['encoder']:4.0f} up {rss['upload']:4.0f} MB | {r['committed']} ep, {r['files']} files, "
        f"{r['dataset_mb']:.0f} MB"
    )
    if r["write_mb"]:
        w = r["write_mb"]
        line += (
            f" | videos up to {r['largest_video_mb']:.0f} MB; written {w['packing_mb']:.0f} MB by packing, "
            f"{w['rewriting_mb']:.0f} MB by rewriting"
        )
    if r["upload"]:
        line += f" | upload {r['upload_mb_s']:.1f} MB/s, done {r['upload_tail_s']:.1f} s after the drain"
    return line


def _s3_server() -> tuple[object, str, dict[str, str]]:
    """moto's S3 server on a free local port, with a bucket; the environment that reaches it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    os.environ.update(env)
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="bench")
    return server, "s3://bench", env


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark recording in each layout, with upload.")
    parser.add_argument("command", nargs="?", default="all", choices=["all", "run"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--episode-s", type=float, default=15)
    parser.add_argument("--layout", default="v3.0", choices=["v2.1", "v3.0"])
    parser.add_argument("--video-mb", type=float)
    parser.add_argument("--upload", default="", help="an upload URL (run: as given)")
    args = parser.parse_args()
    if args.command == "run":
        print(json.dumps(run_once(args.layout, args.video_mb, args.upload, args.episodes, args.episode_s)))
        return
    server, bucket, env = _s3_server()
    try:
        for number, (layout, video_mb, upload) in enumerate(SCENARIOS):
            results = []
            for run in range(args.runs):
                cmd = [sys.executable, __file__, "run", f"--layout={layout}", f"--episodes={args.episodes}"]
                cmd += [f"--episode-s={args.episode_s}"]
                cmd += [f"--video-mb={video_mb}"] if video_mb else []
                cmd += [f"--upload={bucket}/s{number}r{run}"] if upload else []
                out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
                if out.returncode:
                    print(out.stderr[-2000:], file=sys.stderr)
                    raise SystemExit(out.returncode)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(_fmt(results[-1]), flush=True)
            p99 = [r["late_ms"][1] for r in results]
            save99 = [r["save_ms"][1] for r in results]
            drain = [r["drain_s"] for r in results]
            print(
                f"  median of {len(results)}: lateness p99 {np.median(p99):.2f} ms, save p99 "
                f"{np.median(save99):.2f} ms, drain {np.median(drain):.2f} s",
                flush=True,
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
