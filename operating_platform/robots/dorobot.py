"""DoRobot's dora dataflows as a robot: `--robot.type=dorobot`.

The recorder connects to a running DoRobot dataflow's bridge node exactly as DoRobot's own
recorder does (two ZeroMQ PAIR sockets it binds; see `dorobot_bridge`), so a dataflow written
for DoRobot is recorded unchanged. The defaults are DoRobot's so101 values: with the dataflow
running, `--robot.type=dorobot` is the only robot flag needed.

What is recorded, as DoRobot records it: every camera event id (`image_top`) becomes
`observation.images.image_top`; the leader arm's joints (an event id containing `main_leader`)
are `action`, the follower's (`main_follower`) `observation.state`, with DoRobot's names
(`main_leader_joint_shoulder_pan`, ...). Every image is recorded as RGB, whatever the encoding.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from operating_platform.robots.base import Robot, RobotConfig
from operating_platform.robots.dorobot_bridge import (
    BridgeMessageError,
    BridgeReceiver,
    decode_image,
    decode_joints,
    import_zmq,
)
from operating_platform.streams import Arrival, Latest

log = logging.getLogger("operating_platform.dorobot")

SO101_JOINTS = [
    "joint_shoulder_pan",
    "joint_shoulder_lift",
    "joint_elbow_flex",
    "joint_wrist_flex",
    "joint_wrist_roll",
    "joint_gripper",
]
ADDRESS_SCHEMES = ("ipc://", "tcp://", "inproc://")


@RobotConfig.register_subclass("dorobot")
@dataclasses.dataclass
class DoRobotConfig(RobotConfig):
    """Where DoRobot's bridge node is and what its events are called; the defaults are so101's."""

    # The bridge's image socket (it binds, the recorder connects).
    image_address: str = "ipc:///tmp/dora-zeromq-so101-image"
    # The bridge's joint socket.
    joint_address: str = "ipc:///tmp/dora-zeromq-so101-joint"
    # pair (DoRobot's so101 bridge), or sub for a bridge that publishes.
    socket_type: str = "pair"
    # Image event ids to record, each as observation.images.<id>.
    camera_names: list[str] = dataclasses.field(default_factory=lambda: ["image_top", "image_wrist"])
    # Part of the leader arm's event id; its joints are recorded as action.
    leader_id: str = "main_leader"
    # Part of the follower arm's event id; its joints are recorded as observation.state.
    follower_id: str = "main_follower"
    # The arms' joints in the order the bridge sends them; recorded as <leader_id>_<joint>, ...
    joint_names: list[str] = dataclasses.field(default_factory=lambda: list(SO101_JOINTS))
    # Expected image width in pixels; 0 takes whatever each camera sends.
    width: int = 640
    # Expected image height in pixels; 0 takes whatever each camera sends.
    height: int = 480
    # How long to wait at start for every camera and both arms to send once.
    connect_timeout_s: float = 30.0
    # Written to info.json's robot_type (DoRobot's so101 datasets say so101).
    robot_type: str = "so101"

    def validate(self) -> None:
        super().validate()
        for flag, address in (("image_address", self.image_address), ("joint_address", self.joint_address)):
            if not address.startswith(ADDRESS_SCHEMES):
                raise ValueError(
                    f"--robot.{flag}={address} is not a ZeroMQ address ({', '.join(ADDRESS_SCHEMES)}...)"
                )
        if self.socket_type not in ("pair", "sub"):
            raise ValueError(f"--robot.socket_type must be pair or sub (got {self.socket_type!r})")
        names = [*self.camera_names, *self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"--robot.camera_names: each camera once (got {', '.join(names)})")
        if not self.joint_names:
            raise ValueError("--robot.joint_names must name the arms' joints")
        if not self.leader_id or not self.follower_id or self.leader_id == self.follower_id:
            raise ValueError("--robot.leader_id and --robot.follower_id must be two different event names")
        for flag, value in (("width", self.width), ("height", self.height)):
            if value < 0 or value % 2:
                raise ValueError(f"--robot.{flag} must be an even number of pixels, or 0 (got {value})")
        if not self.connect_timeout_s > 0:
            raise ValueError(f"--robot.connect_timeout_s must be positive (got {self.connect_timeout_s})")


class DoRobot(Robot):
    """A DoRobot dataflow, sampled: each capture takes the newest message of every stream.

    Promises: `capture()` never waits on a socket; `arrivals()` gives, per stream, which message
    it took and when that message arrived, so repeated frames and late streams are visible in
    the timing file; a stream whose messages stop decoding makes `capture()` raise, naming it.
    """

    config_class = DoRobotConfig

    def __init__(self, config: RobotConfig) -> None:
        if not isinstance(config, DoRobotConfig):
            raise TypeError(f"DoRobot needs a DoRobotConfig, got {type(config).__name__}")
        super().__init__(config)
        self.config: DoRobotConfig = config
        self._context: Any = None
        self._receivers: list[BridgeReceiver] = []
        self._sources: dict[str, tuple[BridgeReceiver, str]] = {}  # stream -> (socket, event id)
        self._shapes: dict[str, tuple[int, int, int]] = {}
        self._arrivals: dict[str, Arrival] = {}

    @property
    def robot_type(self) -> str:
        return self.config.robot_type

    @property
    def joint_names(self) -> list[str]:
        return list(self.config.joint_names)

    @property
    def action_names(self) -> list[str]:
        return [f"{self.config.leader_id}_{joint}" for joint in self.config.joint_names]

    @property
    def state_names(self) -> list[str]:
        return [f"{self.config.follower_id}_{joint}" for joint in self.config.joint_names]

    @property
    def camera_shapes(self) -> dict[str, tuple[int, int, int]]:
        return {name: self._shapes[name] for name in self.config.camera_names}

    @property
    def stream_names(self) -> list[str]:
        return ["action", "observation.state", *(f"observation.images.{c}" for c in self.config.camera_names)]

    def connect(self) -> None:
        cfg = self.config
        zmq = import_zmq()
        self._context = zmq.Context()
        self._shapes = {}
        self._images = BridgeReceiver(self._context, cfg.image_address, cfg.socket_type, self._decode_image)
        self._joints = BridgeReceiver(self._context, cfg.joint_address, cfg.socket_type, self._decode_joints)
        self._receivers = [self._images, self._joints]
        log.info(
            f"[DoRobot] Waiting for the dataflow's bridge on {cfg.image_address} and {cfg.joint_address} "
            f"(up to {cfg.connect_timeout_s:g} s)"
        )
        self._wait_for_every_stream()
        for camera in cfg.camera_names:
            image, _ = self._newest(f"observation.images.{camera}")
            self._shapes[camera] = image.shape
        log.info(f"[DoRobot] Connected: {', '.join(self._describe_streams())}")

    def _wait_for_every_stream(self) -> None:
        cfg = self.config
        deadline = time.monotonic() + cfg.connect_timeout_s
        while True:
            self._bind_streams()
            missing = [s for s in self.stream_names if s not in self._sources]
            self._raise_if_failing()
            if not missing:
                return
            if time.monotonic() > deadline:
                raise ConnectionError(self._describe_missing(missing))
            time.sleep(0.01)

    def _bind_streams(self) -> None:
        """Find each stream's event id among those that have sent a message."""
        cfg = self.config
        for camera in cfg.camera_names:
            if self._images.get(camera) is not None:
                self._sources[f"observation.images.{camera}"] = (self._images, camera)
        for stream, part in (("action", cfg.leader_id), ("observation.state", cfg.follower_id)):
            for event_id in sorted(self._joints.seen):
                if part in event_id and self._joints.get(event_id) is not None:
                    self._sources.setdefault(stream, (self._joints, event_id))

    def _describe_missing(self, missing: list[str]) -> str:
        cfg = self.config
        names = {
            "action": f"the leader arm ({cfg.leader_id})",
            "observation.state": f"the follower arm ({cfg.follower_id})",
        }
        what = ", ".join(names.get(s, s.removeprefix("observation.images.")) for s in missing)
        seen = sorted(self._images.seen | self._joints.seen)
        sent = f"it sent only {', '.join(seen)}" if seen else "nothing arrived at all"
        return (
            f"no message from {what} within {cfg.connect_timeout_s:g} s ({sent}). Is the dataflow "
            "running (dora run ...), and do --robot.camera_names, --robot.leader_id and "
            "--robot.follower_id name its event ids?"
        )

    def _describe_streams(self) -> list[str]:
        sizes = {camera: f" {w}x{h}" for camera, (h, w, _) in self._shapes.items()}
        return [
            f"{event_id}{sizes.get(event_id, '')} as {stream}"
            for stream, (_, event_id) in self._sources.items()
        ]

    def _decode_image(self, event_id: str, parts: list[memoryview]) -> np.ndarray | None:
        if event_id not in self.config.camera_names:
            return None
        image = decode_image(event_id, parts[0], parts[1] if len(parts) > 1 else b"")
        expected = self._shapes.get(event_id) or self._configured_shape()
        if expected is not None and image.shape != expected:
            flags = "the camera's first frame" if event_id in self._shapes else "--robot.width/--robot.height"
            raise BridgeMessageError(
                f"{event_id} sends {image.shape[1]}x{image.shape[0]} images, {flags} said "
                f"{expected[1]}x{expected[0]} (--robot.width=0 --robot.height=0 takes any size)"
            )
        return image

    def _configured_shape(self) -> tuple[int, int, int] | None:
        cfg = self.config
        return (cfg.height, cfg.width, 3) if cfg.width and cfg.height else None

    def _decode_joints(self, event_id: str, parts: list[memoryview]) -> np.ndarray | None:
        cfg = self.config
        if cfg.leader_id not in event_id and cfg.follower_id not in event_id:
            return None
        joints = decode_joints(event_id, parts[0])
        if joints.size != len(cfg.joint_names):
            raise BridgeMessageError(
                f"{event_id} sends {joints.size} joint values, --robot.joint_names names "
                f"{len(cfg.joint_names)}"
            )
        return joints

    def _raise_if_failing(self) -> None:
        for receiver in self._receivers:
            for error in receiver.failing():
                raise error

    def capture(self) -> dict[str, np.ndarray]:
        if not self._sources:
            raise RuntimeError("DoRobot.capture() called before connect() (or after disconnect())")
        self._raise_if_failing()
        frame: dict[str, np.ndarray] = {}
        for stream in self._sources:
            frame[stream], self._arrivals[stream] = self._newest(stream)
        return frame

    def _newest(self, stream: str) -> tuple[np.ndarray, Arrival]:
        receiver, event_id = self._sources[stream]
        latest: Latest = receiver.get(event_id)  # type: ignore[assignment]  # bound once it has sent
        return latest.get()  # type: ignore[return-value]

    def arrivals(self) -> dict[str, Arrival]:
        return dict(self._arrivals)

    def disconnect(self) -> None:
        for receiver in self._receivers:
            receiver.close()
        self._receivers = []
        self._sources = {}
        if self._context is not None:
            self._context.destroy(linger=0)
            self._context = None
