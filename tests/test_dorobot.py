"""DoRobot's dora dataflows: the example dataflow run for real by `dora run` (daemon, Python nodes,
ZeroMQ bridge) and recorded by the real program, its frames checked against what the nodes sent."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from operating_platform.robots.dorobot_bridge import BridgeMessageError, decode_image, decode_joints
from tests.conftest import assert_valid, episode_lengths, error_lines, run_record, wait_for_line

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dorobot_sim"
CAMERAS = {"image_top": "top", "image_wrist": "wrist"}  # event id -> the node's CAMERA setting


def _load_sim_frames():
    spec = importlib.util.spec_from_file_location("sim_frames", EXAMPLE / "sim_frames.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sim_frames = _load_sim_frames()


@dataclass
class Dataflow:
    proc: subprocess.Popen
    flags: list[str]  # the recorder's flags that point at this dataflow's bridge

    def kill(self) -> None:
        """SIGKILL `dora run` and every node it started (they share its session)."""
        for pid in _session_members(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)


def _session_members(sid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the name: state, ppid, pgrp, session
            members.append(int(stat.parent.name))
    return members


@pytest.fixture
def dataflow(tmp_path: Path) -> Iterator[Dataflow]:
    """The example dataflow, copied so that dora's run files stay out of the repository."""
    folder = tmp_path / "dataflow"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("out", "*.dora-session.yaml"))
    # Addresses of this test's own: a DoRobot dataflow running on the machine keeps its sockets.
    base = f"ipc:///tmp/dorobot-test-{os.getpid()}-{tmp_path.name[-20:]}"
    image, joint = f"{base}-image", f"{base}-joint"
    bin_dir = str(Path(sys.executable).parent)  # `dora` and the nodes' python: this environment's
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DOROBOT_IMAGE_ADDRESS": image,
        "DOROBOT_JOINT_ADDRESS": joint,
    }
    log = (tmp_path / "dora.log").open("w")
    proc = subprocess.Popen(
        [str(Path(bin_dir) / "dora"), "run", str(folder / "dataflow.yml"), "--log-level", "error"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    flow = Dataflow(proc, [f"--robot.image_address={image}", f"--robot.joint_address={joint}"])
    try:
        yield flow
    finally:
        flow.kill()
        log.close()


def _record_flags(root: Path, episodes: int, seconds: float) -> list[str]:
    return [
        "--robot.type=dorobot",
        "--record.repo_id=lab/dora",
        "--record.single_task=Pick the cube",
        f"--record.root={root}",
        f"--record.num_episodes={episodes}",
        f"--record.episode_time_s={seconds}",
        "--record.reset_time_s=0",
    ]


def _decoded(root: Path, camera: str, episode: int) -> list[np.ndarray]:
    path = root / f"videos/chunk-000/observation.images.{camera}/episode_{episode:06d}.mp4"
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def _timing(root: Path, episode: int) -> dict[str, np.ndarray]:
    table = pq.read_table(root / f".dorobot/timing/episode_{episode:06d}.parquet")
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _leader_ticks(actions: np.ndarray) -> list[int]:
    """For each recorded action, the leader tick whose joints it is exactly (-1: none).

    The leader's motion repeats every 150 ticks, so a pose matches several ticks: each action
    gets the first one at or after the tick before it (a late start may cross a repeat).
    """
    table = np.stack([sim_frames.leader_joints(k) for k in range(3000)])
    ticks: list[int] = []
    for action in actions:
        match = np.flatnonzero((table == action).all(axis=1))
        later = match[match >= (ticks[-1] if ticks else 0)]
        ticks.append(int(later[0]) if later.size else -1)
    return ticks


def test_dora_dataflow_records_what_its_nodes_sent(tmp_path: Path, dataflow: Dataflow) -> None:
    root = tmp_path / "ds"
    done = run_record(*_record_flags(root, 2, 2), *dataflow.flags, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_valid(root, episodes=2)
    assert episode_lengths(root) == [60, 60]
    info = (root / "meta/info.json").read_text()
    assert '"robot_type": "so101"' in info and "main_leader_joint_shoulder_pan" in info
    for episode in range(2):
        timing = _timing(root, episode)
        for camera, node_name in CAMERAS.items():
            frames = _decoded(root, camera, episode)
            assert len(frames) == 60
            stamps = [sim_frames.read_stamp(frame) for frame in frames]
            assert all(b >= a for a, b in itertools.pairwise(stamps)), stamps
            for frame, stamp in zip(frames, stamps, strict=True):
                # The frame is the image the node rendered for that stamp, in RGB, within codec
                # error, and clearly not its neighbour (the scene moves between frames).
                match = _psnr(frame, sim_frames.render(node_name, stamp, 480, 640))
                neighbour = _psnr(frame, sim_frames.render(node_name, stamp + 1, 480, 640))
                assert match > 24 and match > neighbour + 3, (camera, stamp, match, neighbour)
            # A frame the timing file calls repeated is exactly one whose stamp did not change.
            repeated = np.concatenate([[False], np.diff(stamps) == 0])
            assert np.array_equal(timing[f"observation.images.{camera}.repeated"], repeated), camera
        data = pq.read_table(root / f"data/chunk-000/episode_{episode:06d}.parquet")
        actions = np.array(data.column("action").to_pylist(), np.float32)
        ticks = _leader_ticks(actions)
        assert -1 not in ticks and ticks == sorted(ticks), ticks  # every action is one the leader sent
        assert np.array_equal(timing["action.repeated"], np.concatenate([[False], np.diff(ticks) == 0]))
        state = np.array(data.column("observation.state").to_pylist(), np.float32)
        assert np.abs(state - actions).max() < 30  # the follower follows
        for stream in ("action", "observation.state", *(f"observation.images.{c}" for c in CAMERAS)):
            assert (timing[f"{stream}.age_s"] >= 0).all() and (timing[f"{stream}.age_s"] < 1).all()


def test_a_dataflow_killed_mid_episode_stops_it_naming_the_silent_stream(
    tmp_path: Path, dataflow: Dataflow
) -> None:
    root = tmp_path / "ds"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "operating_platform.core.main", *_record_flags(root, 3, 3), *dataflow.flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen: list[str] = []
    wait_for_line(proc, r"Recording episode 1 ", seen, timeout=120)
    time.sleep(1.0)
    dataflow.kill()
    out, err = proc.communicate(timeout=120)
    output = "".join(seen) + out
    assert proc.returncode == 1, output + err
    (error,) = error_lines(err)
    assert "nothing new from" in error and "--robot.stale_timeout_s=1" in error, error
    assert any(name in error for name in ("image_top", "image_wrist", "action", "observation.state")), error
    assert_valid(root, episodes=2)
    first, cut_short = episode_lengths(root)
    assert first == 90  # intact
    assert 20 <= cut_short < 90  # the frames up to the silence are kept


def test_no_dataflow_running_is_one_line_and_leaves_no_dataset(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    flags = [
        f"--robot.image_address=ipc://{tmp_path}/none-image",
        f"--robot.joint_address=ipc://{tmp_path}/j",
    ]
    done = run_record(*_record_flags(root, 1, 1), *flags, "--robot.connect_timeout_s=0.5")
    assert done.returncode == 1
    (error,) = error_lines(done.stderr)
    assert "cannot connect the robot (--robot.type=dorobot" in error, error
    assert "nothing arrived at all" in error and "dora run" in error, error
    assert not root.exists()


def test_bad_dorobot_flags_are_refused_before_connecting(tmp_path: Path) -> None:
    for flag, words in (
        ("--robot.image_address=/tmp/x", "is not a ZeroMQ address"),
        ("--robot.socket_type=push", "pair or sub"),
        ("--robot.width=641", "even number"),
        ("--robot.camera_names=[image_top, image_top]", "each camera once"),
    ):
        done = run_record(*_record_flags(tmp_path / "ds", 1, 1), flag)
        assert done.returncode == 2, (flag, done.stderr)
        (error,) = error_lines(done.stderr)
        assert words in error, (flag, error)


def test_images_decode_to_rgb_whatever_their_encoding() -> None:
    # Smooth, with each channel its own level, so a swapped red and blue shows even through JPEG.
    rows, cols = np.mgrid[0:6, 0:8]
    rgb = np.stack([200 + cols, 100 + rows, 20 + cols + rows], axis=-1).astype(np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    meta = b'{"encoding": "%s", "width": 8, "height": 6}'
    assert np.array_equal(decode_image("cam", memoryview(bgr.tobytes()), meta % b"bgr8"), rgb)
    assert np.array_equal(decode_image("cam", memoryview(rgb.tobytes()), meta % b"rgb8"), rgb)
    png = cv2.imencode(".png", bgr)[1].tobytes()
    assert np.array_equal(decode_image("cam", memoryview(png), b'{"encoding": "png"}'), rgb)
    jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    assert np.abs(decode_image("cam", memoryview(jpeg), b'{"encoding": "jpeg"}').astype(int) - rgb).max() < 8
    with pytest.raises(BridgeMessageError, match="needs 144 bytes"):
        decode_image("cam", memoryview(rgb.tobytes()[:-1]), meta % b"rgb8")
    with pytest.raises(BridgeMessageError, match="unknown image encoding 'yuv'"):
        decode_image("cam", memoryview(b"x"), b'{"encoding": "yuv"}')
    with pytest.raises(BridgeMessageError, match="does not decode"):
        decode_image("cam", memoryview(b"not a jpeg"), b'{"encoding": "jpeg"}')
    joints = np.arange(6, dtype=np.float32)
    assert np.array_equal(decode_joints("main_leader_joint", memoryview(joints.tobytes())), joints)


def test_ctrl_c_while_waiting_for_the_dataflow_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    flags = [f"--robot.image_address=ipc://{tmp_path}/i", f"--robot.joint_address=ipc://{tmp_path}/j"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "operating_platform.core.main", *_record_flags(root, 1, 1), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    wait_for_line(proc, r"Waiting for the dataflow's bridge", seen)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert error_lines(err) == ["error: interrupted while connecting the robot; nothing was recorded"], err
    assert not root.exists()
