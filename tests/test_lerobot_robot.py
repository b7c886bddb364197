"""`--robot.type=lerobot`: recording through LeRobot's own robot and teleoperator drivers.

LeRobot is no dependency of the suite (it pulls in torch): tests/standins/lerobot_api holds its device API
(registries, factories, `Robot` and `Teleoperator`) and, under SO-101's names, the simulated
devices of tests/standins/devices, which log every call so a recording can be compared with what
the devices really did. The last test runs the same devices on the real LeRobot, where it is
installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import PLUGINS_DIR, assert_valid, episode_lengths, error_lines, run_record
from tests.standins.devices.standin_frames import frame_image, frame_number

STANDINS = Path(__file__).resolve().parent / "standins"
FAKE_LEROBOT = STANDINS / "lerobot_api"
DEVICES = STANDINS / "devices"
JOINTS = [
    f"{m}.pos" for m in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
]
CAMERA = "observation.images.front"
CAMERAS = "{front: {type: standin, width: 64, height: 48, fps: 30}}"
SESSION = [
    "--record.single_task=Pick the cube",
    "--record.repo_id=lab/so101",
    "--record.episode_time_s=1",
    "--record.reset_time_s=0",
]
INSTALL = "pip install 'operating_platform[lerobot]'"


def _env(*dirs: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(str(d) for d in [*dirs, PLUGINS_DIR])}


FAKE = _env(FAKE_LEROBOT, DEVICES)


def _flow(**fields: object) -> str:
    """A YAML flow mapping, as a LeRobot config is given on the command line."""
    return "{" + ", ".join(f"{key}: {value}" for key, value in fields.items()) + "}"


def _follower(log: Path, type_: str = "so101_follower", **extra: object) -> str:
    fields = {"port": "/dev/ttyACM0", "id": "my_follower", "max_relative_target": 3.0, "cameras": CAMERAS}
    return _flow(type=type_, log_file=log, **{**fields, **extra})


def _leader(log: Path, type_: str = "so101_leader", **extra: object) -> str:
    return _flow(type=type_, port="/dev/ttyACM1", id="my_leader", log_file=log, **extra)


def _calls(log: Path) -> dict[str, list]:
    """The devices' calls, by name, in order: each one's result."""
    calls: dict[str, list] = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        calls.setdefault(entry["call"], []).append(entry)
    return calls


def _joints(entries: list[dict]) -> np.ndarray:
    return np.array([[entry["value"][key] for key in JOINTS] for entry in entries], np.float32)


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _episode(root: Path, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """An episode's data columns and its timing columns."""
    data = pq.read_table(root / "data" / "chunk-000" / f"episode_{index:06d}.parquet")
    timing = pq.read_table(root / ".dorobot" / "timing" / f"episode_{index:06d}.parquet")
    columns = {
        name: np.array(data.column(name).to_pylist(), np.float32) for name in ("action", "observation.state")
    }
    return columns, {name: timing.column(name).to_numpy() for name in timing.column_names}


def _check_recording(root: Path, log: Path, follower: str, teleop: bool = True) -> None:
    """Every recorded row is what the devices did: the action `send_action` returned (or, without
    a teleoperator, the position observed), the state the follower reported, the camera's frame."""
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["robot_type"] == follower
    assert info["features"]["action"]["names"] == JOINTS
    assert info["features"]["observation.state"]["names"] == JOINTS
    assert info["features"][CAMERA]["shape"] == [48, 64, 3]
    calls = _calls(log)
    observed = _joints(calls["get_observation"])
    sent = _joints(calls["send_action"]) if teleop else observed
    assert teleop or "send_action" not in calls
    for index, length in enumerate(episode_lengths(root)):
        data, timing = _episode(root, index)
        # Each stream's message number says which call's result a row holds: they must be equal.
        np.testing.assert_array_equal(data["action"], sent[timing["action.seq"]])
        np.testing.assert_array_equal(data["observation.state"], observed[timing["observation.state.seq"]])
        if teleop:  # the follower clips the leader's wide moves: what was sent is not what was asked
            asked = _joints(calls["get_action"])[timing["action.seq"]]
            assert np.all(data["action"] == asked, axis=1).mean() < 0.5
        for stream in ("action", "observation.state", CAMERA):
            ages = timing[f"{stream}.age_s"]
            assert len(ages) == length and np.all(np.isfinite(ages)) and np.all(ages >= 0)
        seq = timing[f"{CAMERA}.seq"]
        frames = _decode(root / "videos" / "chunk-000" / CAMERA / f"episode_{index:06d}.mp4")
        assert len(frames) == length
        for frame, n in zip(frames, seq, strict=True):
            assert frame_number(frame) == n % 256
            error = np.abs(frame.astype(int) - frame_image(int(n), 48, 64)).mean()
            assert error < 6, (n, error)
        # The camera has something new at every second read only, and then hands the same array.
        repeated = timing[f"{CAMERA}.repeated"]
        assert np.array_equal(repeated[1:], seq[1:] == seq[:-1]) and repeated.sum() >= length // 4


def test_records_an_so101_through_lerobot_drivers(tmp_path: Path) -> None:
    root, log = tmp_path / "ds", tmp_path / "devices.jsonl"
    flags = [f"--robot.robot={_follower(log)}", f"--robot.teleop={_leader(log)}", f"--record.root={root}"]
    done = run_record("--robot.type=lerobot", *SESSION, *flags, "--record.num_episodes=2", env=FAKE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_valid(root, episodes=2)
    assert episode_lengths(root) == [30, 30]
    _check_recording(root, log, "so101_follower")
    said = re.search(r"Episode 0 captured: .*front (\d+) repeated", done.stdout + done.stderr)
    assert said and int(said.group(1)) == _episode(root, 0)[1][f"{CAMERA}.repeated"].sum()
    calls = [(e["device"], e["call"]) for e in map(json.loads, log.read_text().splitlines())]
    assert calls[0] == ("so101_follower", "connect") and calls[1] == ("so101_leader", "connect")
    assert ("so101_follower", "disconnect") in calls[-2:] and ("so101_leader", "disconnect") in calls[-2:]


def test_a_config_file_records_without_a_teleoperator(tmp_path: Path) -> None:
    root, log = tmp_path / "ds", tmp_path / "devices.jsonl"
    config = tmp_path / "session.yaml"
    config.write_text(
        f"robot:\n  type: lerobot\n  robot: {_follower(tmp_path / 'elsewhere.jsonl')}\n"
        f"record:\n  root: {root}\n  num_episodes: 1\n  episode_time_s: 1\n"
    )
    # A flag after the file updates the keys it names and keeps the file's others.
    override = f"--robot.robot={_flow(log_file=log)}"
    done = run_record(f"--config_path={config}", override, *SESSION, env=FAKE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_valid(root, episodes=1)
    assert not (tmp_path / "elsewhere.jsonl").exists()
    _check_recording(root, log, "so101_follower", teleop=False)


@pytest.mark.parametrize(
    ("device", "failing", "named"),
    [("robot", "so101_follower", "/dev/ttyACM0"), ("teleop", "so101_leader", "/dev/ttyACM1")],
)
def test_a_device_that_cannot_connect_stops_before_any_dataset(
    tmp_path: Path, device: str, failing: str, named: str
) -> None:
    root, log = tmp_path / "ds", tmp_path / "devices.jsonl"
    robot = _follower(log, fail_connect=device == "robot")
    teleop = _leader(log, fail_connect=device == "teleop")
    flags = [f"--robot.robot={robot}", f"--robot.teleop={teleop}", f"--record.root={root}"]
    done = run_record("--robot.type=lerobot", *SESSION, *flags, env=FAKE)
    assert done.returncode == 1, done.stdout + done.stderr
    (error,) = error_lines(done.stderr)
    assert error.startswith("error: ") and failing in error and named in error, error
    assert "Could not connect on port" in error and "lerobot-find-port" in error
    assert not root.exists()
    if device == "teleop":  # the follower had connected: it is released
        assert [e["call"] for e in map(json.loads, log.read_text().splitlines())] == ["connect", "disconnect"]


@pytest.mark.parametrize(("device", "failing"), [("robot", "so101_follower"), ("teleop", "so101_leader")])
def test_a_driver_failing_mid_episode_stops_it_and_keeps_the_frames(
    tmp_path: Path, device: str, failing: str
) -> None:
    root, log = tmp_path / "ds", tmp_path / "devices.jsonl"
    # The driver turns once per tick from connecting on: it fails about 4 s into the 8 s episode.
    robot = _follower(log, fail_after=120 if device == "robot" else 0)
    teleop = _leader(log, fail_after=120 if device == "teleop" else 0)
    flags = [f"--robot.robot={robot}", f"--robot.teleop={teleop}", f"--record.root={root}"]
    done = run_record("--robot.type=lerobot", *SESSION, *flags, "--record.episode_time_s=8", env=FAKE)
    assert done.returncode == 1, done.stdout + done.stderr
    (error,) = error_lines(done.stderr)
    assert failing in error and "Failed to sync read" in error, error
    assert "frames before it are saved" in error
    assert_valid(root, episodes=1)
    (length,) = episode_lengths(root)
    assert 0 < length < 240
    _check_recording(root, log, "so101_follower")


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        (
            f"--robot.robot={_flow(type='so101_follower', prot='/dev/ttyACM0')}",
            "--robot.robot: The fields `prot`",
        ),
        (f"--robot.robot={_flow(type='so102_follower', port='x')}", "no robot type 'so102_follower'"),
        (f"--robot.teleop={_flow(type='so101_leader')}", "--robot.teleop: Missing required field(s) `port`"),
        (
            "--robot.robot={type: so101_follower, port: x, cameras: {f: {type: standin, width: 8}}}",
            "'height'",
        ),
    ],
)
def test_a_wrong_device_setting_stops_the_program_at_once(tmp_path: Path, flag: str, says: str) -> None:
    follower = f"--robot.robot={_flow(type='so101_follower', port='/dev/ttyACM0')}"
    done = run_record(
        "--robot.type=lerobot", follower, flag, *SESSION, f"--record.root={tmp_path / 'ds'}", env=FAKE
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (error,) = error_lines(done.stderr)
    assert error.startswith("error: ") and says in error, error
    assert not (tmp_path / "ds").exists()


def test_without_lerobot_the_program_says_how_to_install_it(tmp_path: Path) -> None:
    env = None
    if importlib.util.find_spec("lerobot") is not None:  # installed here: hide it from the program
        blocker = tmp_path / "blocker" / "lerobot"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'lerobot'\")\n")
        env = _env(blocker.parent)
    done = run_record("--robot.type=lerobot", *SESSION, f"--record.root={tmp_path / 'ds'}", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    (error,) = error_lines(done.stderr)
    assert error.startswith("error: ") and INSTALL in error, error
    assert not (tmp_path / "ds").exists()


@pytest.mark.skipif(importlib.util.find_spec("lerobot") is None, reason="LeRobot is not installed")
def test_real_lerobot_drives_devices_registered_in_its_own_registry(tmp_path: Path) -> None:
    root, log = tmp_path / "ds", tmp_path / "devices.jsonl"
    # The same simulated devices, subclassing LeRobot's real Robot and Teleoperator and found
    # through its own registries and factories; DOROBOT_PLUGINS imports them.
    calibration = tmp_path / "calibration"
    robot = _follower(log, type_="standin_follower", calibration_dir=calibration)
    teleop = _leader(log, type_="standin_leader", calibration_dir=calibration)
    env = _env(DEVICES, *[Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["DOROBOT_PLUGINS"] = "standin_devices"
    flags = [f"--robot.robot={robot}", f"--robot.teleop={teleop}", f"--record.root={root}"]
    done = run_record("--robot.type=lerobot", *SESSION, *flags, "--record.num_episodes=1", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_valid(root, episodes=1)
    _check_recording(root, log, "standin_follower")
