"""Measure what one `SimRobot.capture()` costs at 640x480 with 1, 2 and 3 cameras.

Run from the repository root: `python bench/bench_sim_render.py`. Single-threaded, like the capture
thread; the budget at 30 fps is 33 ms per capture for everything, so rendering should be a small
fraction of it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from operating_platform.robots import SimRobotConfig, make_robot


def bench(num_cameras: int, width: int, height: int, captures: int, warmup: int) -> np.ndarray:
    """Seconds taken by each of `captures` timed captures, after `warmup` untimed ones."""
    robot = make_robot(SimRobotConfig(num_cameras=num_cameras, camera_width=width, camera_height=height))
    robot.connect()
    try:
        for _ in range(warmup):
            robot.capture()
        times = np.empty(captures)
        for i in range(captures):
            start = time.perf_counter()
            robot.capture()
            times[i] = time.perf_counter() - start
    finally:
        robot.disconnect()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--captures", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=60)
    args = parser.parse_args()

    size = f"{args.width}x{args.height}"
    print(f"SimRobot.capture() at {size}, {args.captures} captures after {args.warmup} warm-up")
    print(
        f"{'cameras':>7} {'median/capture':>15} {'p99/capture':>12} {'median/camera':>14} {'p99/camera':>11}"
    )
    for n in (1, 2, 3):
        ms = bench(n, args.width, args.height, args.captures, args.warmup) * 1e3
        med, p99 = float(np.median(ms)), float(np.percentile(ms, 99))
        print(f"{n:>7} {med:>12.3f} ms {p99:>9.3f} ms {med / n:>11.3f} ms {p99 / n:>8.3f} ms")


if __name__ == "__main__":
    main()
