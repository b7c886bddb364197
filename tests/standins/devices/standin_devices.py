"""Simulated LeRobot devices, written against whichever `lerobot` is importable.

- `StandinFollower` (`standin_follower`): an SO-101-like arm whose joints close half the gap to
  the last goal at each observation. As LeRobot's followers do, it clips a goal to
  `max_relative_target` from the present position and returns the goal really sent.
- `StandinLeader` (`standin_leader`): a leader arm whose joints follow a fixed script, one step
  per `get_action`.
- the `standin` camera: a new `standin_frames.frame_image` every `new_every` reads, and the very
  same array in between, as a camera with nothing new.

Every call's result goes to `log_file` (JSON lines), so a test can compare a recording with what
the devices did; `fail_connect` and `fail_after` make them fail as real hardware does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from lerobot.cameras import CameraConfig
from lerobot.robots import Robot, RobotConfig
from lerobot.teleoperators import Teleoperator, TeleoperatorConfig
from standin_frames import frame_image

MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
JOINTS = {f"{motor}.pos": float for motor in MOTORS}


def _log(path: str | None, device: str, call: str, value: Any = None) -> None:
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"device": device, "call": call, "value": value}) + "\n")


@CameraConfig.register_subclass("standin")
@dataclass(kw_only=True)
class StandinCameraConfig(CameraConfig):
    """A simulated camera; `width`, `height` and `fps` are required, as for LeRobot's cameras."""

    new_every: int = 2


class StandinCamera:
    """Returns frame `n` for `new_every` reads (the same array object), then frame `n + 1`."""

    def __init__(self, config: StandinCameraConfig) -> None:
        self.config = config
        self.reads = 0
        self.frames = 0
        self.image: np.ndarray | None = None

    def read(self) -> np.ndarray:
        if self.reads % self.config.new_every == 0:
            self.image = frame_image(self.frames, self.config.height, self.config.width)
            self.frames += 1
        self.reads += 1
        return self.image


class _SimulatedBus:
    """What the simulated follower and leader share: a serial bus that connects (or fails to, as
    LeRobot's motor bus says it), needs no calibration, and logs connect and disconnect."""

    config: Any
    name: str
    _connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        return True

    def connect(self, calibrate: bool = True) -> None:
        if self._connected:
            raise RuntimeError(f"{self} is already connected")
        if self.config.fail_connect:
            raise ConnectionError(
                f"Could not connect on port '{self.config.port}'. Make sure you are using the correct "
                "port.\nTry running `lerobot-find-port`\n"
            )
        self._connected = True
        _log(self.config.log_file, self.name, "connect")

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def disconnect(self) -> None:
        if not self._connected:
            raise RuntimeError(f"{self} is not connected")
        self._connected = False
        _log(self.config.log_file, self.name, "disconnect")


@RobotConfig.register_subclass("standin_follower")
@dataclass(kw_only=True)
class StandinFollowerConfig(RobotConfig):
    """The simulated follower's settings: LeRobot's follower fields, and the tests' own."""

    port: str
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    max_relative_target: float | None = None
    log_file: str | None = None
    fail_connect: bool = False
    fail_after: int = 0  # get_observation fails once it has answered this many times; 0: never


class StandinFollower(_SimulatedBus, Robot):
    """A follower arm on a simulated bus; its cameras are `standin` cameras."""

    config_class = StandinFollowerConfig
    name = "standin_follower"

    def __init__(self, config: StandinFollowerConfig) -> None:
        super().__init__(config)
        self.config = config
        self.cameras = {name: StandinCamera(cam) for name, cam in config.cameras.items()}
        self.position = {key: 10.0 * i for i, key in enumerate(JOINTS)}
        self.goal = dict(self.position)
        self.observations = 0

    @property
    def observation_features(self) -> dict:
        cams = {name: (cam.height, cam.width, 3) for name, cam in self.config.cameras.items()}
        return {**JOINTS, **cams}

    @property
    def action_features(self) -> dict:
        return dict(JOINTS)

    def get_observation(self) -> dict[str, Any]:
        if not self._connected:
            raise RuntimeError(f"{self} is not connected")
        if self.config.fail_after and self.observations >= self.config.fail_after:
            raise ConnectionError(
                "Failed to sync read 'Present_Position' on ids=[1, 2, 3, 4, 5, 6] after 1 tries. "
                "[TxRxResult] There is no status packet!"
            )
        self.observations += 1
        for key, goal in self.goal.items():
            self.position[key] += 0.5 * (goal - self.position[key])
        _log(self.config.log_file, self.name, "get_observation", self.position)
        return {**self.position, **{name: cam.read() for name, cam in self.cameras.items()}}

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if not self._connected:
            raise RuntimeError(f"{self} is not connected")
        goal = {key: float(action[key]) for key in JOINTS}
        limit = self.config.max_relative_target
        if limit is not None:
            here = self.position
            goal = {key: min(max(value, here[key] - limit), here[key] + limit) for key, value in goal.items()}
        self.goal = goal
        _log(self.config.log_file, self.name, "send_action", goal)
        return dict(goal)


@TeleoperatorConfig.register_subclass("standin_leader")
@dataclass(kw_only=True)
class StandinLeaderConfig(TeleoperatorConfig):
    """The scripted leader's settings: LeRobot's leader fields, and the tests' own."""

    port: str
    log_file: str | None = None
    fail_connect: bool = False
    fail_after: int = 0  # get_action fails once it has answered this many times; 0: never


class StandinLeader(_SimulatedBus, Teleoperator):
    """A leader arm whose joints sweep wide, faster than a follower limited to small steps follows."""

    config_class = StandinLeaderConfig
    name = "standin_leader"

    def __init__(self, config: StandinLeaderConfig) -> None:
        super().__init__(config)
        self.config = config
        self.actions = 0

    @property
    def action_features(self) -> dict:
        return dict(JOINTS)

    @property
    def feedback_features(self) -> dict:
        return {}

    def get_action(self) -> dict[str, float]:
        if not self._connected:
            raise RuntimeError(f"{self} is not connected")
        if self.config.fail_after and self.actions >= self.config.fail_after:
            raise ConnectionError("Failed to sync read 'Present_Position' on ids=[1, 2, 3, 4, 5, 6]")
        step = self.actions
        self.actions += 1
        action = {key: 40.0 * math.sin(2 * math.pi * step / 40 + i) for i, key in enumerate(JOINTS)}
        _log(self.config.log_file, self.name, "get_action", action)
        return action

    def send_feedback(self, feedback: dict[str, Any]) -> None:
        pass
