"""How long saving an episode takes with the synchronous writer, and where the time goes.

    python bench/bench_save.py [--episode-s 30] [--cameras 2] [--runs 3]

Frames come from the simulated robot at 640x480 and are journaled as fast as they render
(the capture clock is not the subject here); then `save_episode()` is timed: encoding every
camera from the journal, the parquet, the statistics and the metadata commit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from operating_platform.dataset.dorobot_dataset import DoRobotDataset
from operating_platform.dataset.encode import encode_episode
from operating_platform.dataset.journal_store import staging_dir
from operating_platform.dataset.publish import commit_episode
from operating_platform.robots import SimRobotConfig, make_robot


def one_run(root: Path, frames: int, cameras: int) -> dict[str, float]:
    robot = make_robot(SimRobotConfig(num_cameras=cameras))
    robot.connect()
    ds = DoRobotDataset.create("bench/save", root, 30, robot.robot_type, robot.features)
    journal_s = 0.0
    for _ in range(frames):
        frame = robot.capture()
        t = time.perf_counter()
        ds.add_frame(frame, "bench")
        journal_s += time.perf_counter() - t
    started = time.perf_counter()
    journal = ds.close_episode(0)
    encoded_episode = encode_episode(journal, staging_dir(journal), ds.video)
    encoded = time.perf_counter()
    commit_episode(journal, encoded_episode, ds.meta)
    done = time.perf_counter()
    return {
        "add_frame_ms": journal_s / frames * 1e3,
        "encode_and_stats_s": encoded - started,
        "commit_s": done - encoded,
        "save_s": done - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episode-s", type=float, default=30.0)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    frames = int(args.episode_s * 30)
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(one_run(Path(tmp) / "ds", frames, args.cameras))
    setup = f"{args.cameras} camera(s) at 640x480, {args.runs} runs"
    print(f"{args.episode_s:g} s episode, {frames} frames, {setup}")
    for key in results[0]:
        values = np.array([r[key] for r in results])
        print(
            f"  {key:20s} median {np.median(values):8.3f}   min {values.min():8.3f}   max {values.max():8.3f}"
        )
    per_camera_fps = frames * args.cameras / np.median([r["encode_and_stats_s"] for r in results])
    print(f"  encode throughput    {per_camera_fps:.0f} frames/s over all cameras")


if __name__ == "__main__":
    main()
