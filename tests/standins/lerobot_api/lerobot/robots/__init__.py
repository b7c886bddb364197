"""LeRobot's robots: the `Robot` interface, the `RobotConfig` registry and its factory."""

from __future__ import annotations

import abc
import builtins
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import draccus


@dataclass(kw_only=True)
class RobotConfig(draccus.ChoiceRegistry, abc.ABC):
    """A robot's settings; `type` selects the registered subclass, `id` tells two arms apart."""

    id: str | None = None
    calibration_dir: Path | None = None

    def __post_init__(self) -> None:
        for name, camera in getattr(self, "cameras", {}).items():
            for attr in ("width", "height", "fps"):
                if getattr(camera, attr) is None:
                    raise ValueError(f"Specifying '{attr}' is required for camera {name!r}")

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)


class Robot(abc.ABC):
    """A robot LeRobot drives: observations out, actions in, as flat dicts of named values.

    `observation_features` and `action_features` map each key to `float`, or to a shape tuple
    for an image; they are known before `connect()`.
    """

    config_class: builtins.type[RobotConfig]
    name: str

    def __init__(self, config: RobotConfig) -> None:
        self.robot_type = self.name
        self.id = config.id
        self.calibration_dir = config.calibration_dir

    def __str__(self) -> str:
        return f"{self.id} {self.__class__.__name__}"

    @property
    @abc.abstractmethod
    def observation_features(self) -> dict: ...

    @property
    @abc.abstractmethod
    def action_features(self) -> dict: ...

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None: ...

    @property
    @abc.abstractmethod
    def is_calibrated(self) -> bool: ...

    @abc.abstractmethod
    def calibrate(self) -> None: ...

    @abc.abstractmethod
    def configure(self) -> None: ...

    @abc.abstractmethod
    def get_observation(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Send `action`; returns the action really sent (e.g. clipped to safe limits)."""

    @abc.abstractmethod
    def disconnect(self) -> None: ...


def make_robot_from_config(config: RobotConfig) -> Robot:
    """The robot of `config.type`; as LeRobot 0.3, a ValueError for a type it does not build."""
    if config.type == "so101_follower":
        from lerobot.robots.so_follower import SO101Follower

        return SO101Follower(config)
    raise ValueError(config.type)
