"""What background compression saves, and what each setting costs.

    python bench/bench_compress.py              # sim robot and camera-test frames, every setting
    python bench/bench_compress.py --seconds 5  # a quick look

Two sources, each first encoded as the recorder writes it (libx264 ultrafast, crf 23, a
keyframe every 2 frames):
- the simulated robot's camera, 640x480, textured, with per-pixel sensor noise;
- the frames of the video files the camera tests record (160x120, textured, noisy).
Each is then re-encoded as the compressor does (`compress/transcode.py`, one process, the
encoder's own threads) with SVT-AV1 at crf 30 for several presets and keyframe intervals.
Reported per setting: megabytes per camera-minute, the ratio to the recorded file, encode
speed in frames per second, PSNR of the worst and the mean frame against the recorded file,
and the mean time to fetch a random frame (seek to the keyframe before it and decode up to it,
as a training loader does).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from operating_platform.compress.settings import DEFAULT_CRF, DEFAULT_G, DEFAULT_PRESET
from operating_platform.compress.transcode import check_copy, transcode
from operating_platform.dataset.video import VideoEncoder, VideoSettings
from operating_platform.robots import SimRobotConfig, make_robot

PRESETS = ["12", "10", "8", "6"]
KEYFRAME_INTERVALS = [2, 15, 30]
FPS = 30


def sim_frames(count: int) -> list[np.ndarray]:
    robot = make_robot(SimRobotConfig(num_cameras=1))
    robot.connect()
    try:
        return [robot.capture()["observation.images.image_top"] for _ in range(count)]
    finally:
        robot.disconnect()


def camera_test_frames(count: int) -> list[np.ndarray]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.test_opencv_camera import FILES, source_frame

    frames_in_file, seed = FILES["top"]
    return [source_frame(i % frames_in_file, seed) for i in range(count)]


def record_as_the_recorder_does(frames: list[np.ndarray], path: Path) -> None:
    height, width = frames[0].shape[:2]
    encoder = VideoEncoder(path, width, height, FPS, VideoSettings())
    for frame in frames:
        encoder.encode(frame)
    encoder.close()


def random_fetch_ms(path: Path, frames: int, samples: int = 30) -> float:
    rng = random.Random(0)
    started = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for index in rng.sample(range(frames), min(samples, frames)):
            at = index / FPS
            container.seek(int(at / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time >= at - 1e-3:
                    break
    return (time.perf_counter() - started) / min(samples, frames) * 1e3


def mb_per_minute(path: Path, frames: int) -> float:
    return path.stat().st_size / 1e6 / (frames / FPS / 60)


def measure(name: str, frames: list[np.ndarray], tmp: Path) -> None:
    recorded = tmp / f"{name}.mp4"
    record_as_the_recorder_does(frames, recorded)
    before = mb_per_minute(recorded, len(frames))
    height, width = frames[0].shape[:2]
    print(f"\n{name} ({width}x{height}, {len(frames)} frames)")
    print(
        f"  recorded: libx264 ultrafast crf 23 g 2: {before:6.1f} MB/camera-min, "
        f"random frame {random_fetch_ms(recorded, len(frames)):5.1f} ms"
    )
    print("  libsvtav1 crf 30  preset  g |  MB/min  ratio | encode fps | PSNR min  mean | random frame")
    for preset in PRESETS:
        for g in KEYFRAME_INTERVALS:
            copy = tmp / f"{name}_{preset}_{g}.mp4"
            settings = VideoSettings(vcodec="libsvtav1", crf=DEFAULT_CRF["libsvtav1"], g=g, preset=preset)
            started = time.perf_counter()
            transcode(recorded, copy, settings)
            speed = len(frames) / (time.perf_counter() - started)
            check = check_copy(recorded, copy, 0.0)
            after = mb_per_minute(copy, len(frames))
            chosen = " <- default" if (preset, g) == (DEFAULT_PRESET["libsvtav1"], DEFAULT_G) else ""
            print(
                f"  {'':17s} {preset:>6s} {g:2d} | {after:7.2f} {before / after:6.1f} | {speed:10.0f} | "
                f"{check.min_psnr:8.1f} {check.mean_psnr:5.1f} | {random_fetch_ms(copy, len(frames)):7.1f} ms"
                f"{chosen}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each source video")
    args = parser.parse_args()
    count = round(args.seconds * FPS)
    with tempfile.TemporaryDirectory() as tmp:
        measure("sim robot", sim_frames(count), Path(tmp))
        measure("camera-test files", camera_test_frames(count), Path(tmp))


if __name__ == "__main__":
    main()
