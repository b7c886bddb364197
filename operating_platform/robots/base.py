"""The robot interface every source of demonstrations implements.

A robot is whatever produces, once per capture tick, the operator's command (`action`), the
follower's measured state (`observation.state`) and one RGB image per camera. The recorder
knows nothing else about it, so the simulated arm, a LeRobot robot or a DoRobot bridge all plug
in the same way: a `RobotConfig` subclass registered under a `--robot.type` name, and a `Robot`
subclass that names that config class.

Any robot can also carry cameras of its own (`--robot.cameras`, see `cameras/`), and report
when each of its streams last delivered (`arrivals`), so that every recorded frame's true age
is kept and a stream that falls silent stops the episode instead of being recorded frozen.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import draccus
import numpy as np

from operating_platform.cameras import Camera, CameraConfig, CameraError, make_camera
from operating_platform.streams import Arrival

VIDEO_NAMES = ["height", "width", "channels"]


class FeatureClash(ValueError):
    """Two sources of one feature: a carried camera named like one of the robot's own."""


@dataclasses.dataclass
class RobotConfig(draccus.ChoiceRegistry, abc.ABC):
    """Base of every robot's settings; `--robot.type=NAME` selects the registered subclass."""

    # Cameras this robot carries besides its own, by name, e.g.
    # {top: {type: opencv, index_or_path: /dev/video0, width: 640, height: 480, fps: 30}}.
    cameras: dict[str, CameraConfig] = dataclasses.field(default_factory=dict)
    # A stream (camera, arm) that sends nothing new for this long stops the episode; its frames so
    # far are saved.
    stale_timeout_s: float = 1.0

    @classmethod
    def default_choice_name(cls) -> str | None:
        return "sim"

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    def validate(self) -> None:
        """Raise `ValueError` naming the offending `--robot.*` flag; called before connecting.

        Subclasses that override it call `super().validate()`.
        """
        if not self.stale_timeout_s > 0:
            raise ValueError(f"--robot.stale_timeout_s must be positive (got {self.stale_timeout_s})")
        for name, camera in self.cameras.items():
            if not name or not name.replace("_", "").isalnum():
                raise ValueError(f"--robot.cameras: {name!r} is not a camera name (letters, digits, _)")
            camera.validate(name)


class Robot(abc.ABC):
    """A source of synchronized joint readings and camera frames.

    Subclasses set `config_class` to their registered `RobotConfig` subclass; that is all it takes
    for `make_robot` to build them from the command line.
    """

    config_class: ClassVar[type[RobotConfig]]
    _by_config: ClassVar[dict[type[RobotConfig], type[Robot]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config_class = cls.__dict__.get("config_class")
        if config_class is not None:
            Robot._by_config[config_class] = cls

    def __init__(self, config: RobotConfig) -> None:
        self.config = config
        self.cameras: dict[str, Camera] = {name: make_camera(name, c) for name, c in config.cameras.items()}

    @property
    def robot_type(self) -> str:
        """The name written to info.json's `robot_type`."""
        return self.config.type

    @property
    @abc.abstractmethod
    def joint_names(self) -> list[str]:
        """Names of the action / state vector elements, e.g. `shoulder_pan.pos`."""

    @property
    @abc.abstractmethod
    def camera_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Camera name -> (height, width, 3) of the RGB frames it delivers."""

    @property
    def action_names(self) -> list[str]:
        """Names of the `action` elements; the joint names unless the leader names them otherwise."""
        return list(self.joint_names)

    @property
    def state_names(self) -> list[str]:
        """Names of the `observation.state` elements; the joint names unless the follower's differ."""
        return list(self.joint_names)

    @property
    def stream_names(self) -> list[str]:
        """The feature keys whose arrivals `arrivals()` reports; none unless a subclass says so."""
        return []

    def arrivals(self) -> dict[str, Arrival]:
        """For the frame `capture()` last returned: each stream's message and when it arrived."""
        return {}

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        """The user features this robot records, in info.json notation and order.

        The carried cameras come after the robot's own; their shapes are known once connected.
        """
        action, state = self.action_names, self.state_names
        feats: dict[str, dict[str, Any]] = {
            "action": {"dtype": "float32", "shape": [len(action)], "names": action},
            "observation.state": {"dtype": "float32", "shape": [len(state)], "names": state},
        }
        shapes = dict(self.camera_shapes)
        for name, camera in self.cameras.items():
            if name in shapes:
                raise FeatureClash(f"--robot.cameras: {name!r} is already a camera of {self.config.type}")
            shapes[name] = camera.shape
        for cam, shape in shapes.items():
            feats[f"observation.images.{cam}"] = {
                "dtype": "video",
                "shape": list(shape),
                "names": list(VIDEO_NAMES),
            }
        return feats

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the hardware (or the simulation). Called once before the first capture."""

    @abc.abstractmethod
    def capture(self) -> dict[str, np.ndarray]:
        """Read one synchronized frame: `action`, `observation.state` and `observation.images.<cam>`.

        Called once per tick on the capture thread, so it must not block longer than a tick.
        """

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the hardware. Safe to call more than once."""

    # -- what the recorder calls: the robot and the cameras it carries, together ---------------

    @property
    def all_streams(self) -> list[str]:
        """Every stream `read()` reports an arrival for, in a fixed order."""
        return [*self.stream_names, *(f"observation.images.{name}" for name in self.cameras)]

    def open(self) -> None:
        """Connect the robot, then its cameras; on failure, close what was opened and raise."""
        try:
            self.connect()
            for camera in self.cameras.values():
                camera.connect()
        except BaseException:
            self.close()
            raise

    def read(self) -> tuple[dict[str, np.ndarray], dict[str, Arrival]]:
        """One frame of the robot and its cameras, and the arrival of every stream in it."""
        frame = self.capture()
        arrivals = self.arrivals()
        for name, camera in self.cameras.items():
            key = f"observation.images.{name}"
            frame[key], arrivals[key] = camera.latest()
        return frame, arrivals

    def close(self) -> None:
        """Disconnect the cameras and the robot; every one is tried, the first error raised."""
        errors: list[BaseException] = []
        for device in [*self.cameras.values(), self]:
            try:
                device.disconnect()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def make_robot(config: RobotConfig) -> Robot:
    """Build the robot registered for `config`'s class."""
    try:
        robot_cls = Robot._by_config[type(config)]
    except KeyError:
        raise ValueError(f"no Robot subclass declares config_class={type(config).__name__}") from None
    return robot_cls(config)


DEVICE_WORDS = ("port", "device", "serial", "host", "ip", "address", "index", "path", "url")


def describe_connect_failure(config: RobotConfig, exc: BaseException) -> str:
    """One line naming the robot (or camera), the device settings it was given, and what to check."""
    again = "nothing was recorded, so the same command can simply be run again"
    if isinstance(exc, CameraError):  # it names the camera and what to check itself
        return f"{exc}; {again}"
    fields = [f.name for f in dataclasses.fields(config)]
    devices = [f"--robot.{name}={getattr(config, name)}" for name in fields if _names_a_device(name)]
    where = ", ".join([f"--robot.type={config.type}", *devices])
    return (
        f"cannot connect the robot ({where}): {type(exc).__name__}: {exc}. Check that it is plugged "
        "in and powered on, that the --robot.* settings name its device, and that no other program "
        f"is using it; {again}"
    )


def _names_a_device(field: str) -> bool:
    return any(word in DEVICE_WORDS for word in field.lower().split("_"))
