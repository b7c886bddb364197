"""Which video encoder default keeps up with capture on this machine, with room to spare.

    python bench/bench_codecs.py

For each candidate: the encoder alone (one 640x480 stream of the simulated robot, 300 frames,
as the encoder process runs it: default threads) gives frames per second and megabytes per
minute of video; then a recording session with 3 cameras at 30 fps (2 episodes of 30 s)
gives the capture tick lateness and the drain time while that encoder works in the
background. 3 cameras need 90 encoded frames per second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from operating_platform.dataset.video import VideoEncoder, VideoSettings
from operating_platform.robots import SimRobotConfig, make_robot

CANDIDATES = [
    ("libx264", "ultrafast", 23),
    ("libx264", "superfast", 23),
    ("libx264", "veryfast", 23),
    ("libsvtav1", "12", 30),
    ("libsvtav1", "8", 30),
]


def encoder_alone(vcodec: str, preset: str, crf: int, frames: list) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        encoder = VideoEncoder(path, 640, 480, 30, VideoSettings(vcodec=vcodec, crf=crf, g=2, preset=preset))
        started = time.perf_counter()
        for frame in frames:
            encoder.encode(frame)
        encoder.close()
        seconds = time.perf_counter() - started
        mb_per_min = path.stat().st_size / 2**20 / (len(frames) / 30) * 60
    return len(frames) / seconds, mb_per_min


def main() -> None:
    robot = make_robot(SimRobotConfig(num_cameras=1))
    robot.connect()
    frames = [robot.capture()["observation.images.image_top"] for _ in range(300)]
    print("codec      preset     crf | encode fps  MB/min | 3 cams: lateness p50 p99 max ms  drain s")
    for vcodec, preset, crf in CANDIDATES:
        fps, size = encoder_alone(vcodec, preset, crf, frames)
        cmd = [sys.executable, str(Path(__file__).with_name("bench_async.py")), "run", "--mode=async"]
        cmd += ["--cameras=3", "--episode-s=30", "--episodes=2", f"--vcodec={vcodec}", f"--preset={preset}"]
        cmd += [f"--crf={crf}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        late = r["late_ms"]
        print(
            f"{vcodec:10s} {preset:10s} {crf:3d} | {fps:10.0f} {size:7.1f} | "
            f"{late[0]:6.2f} {late[1]:6.2f} {late[2]:7.2f}  {r['drain_s']:7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
