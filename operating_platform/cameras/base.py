"""The camera interface: a source of RGB frames that any robot can carry.

A camera is configured under a robot's `cameras` setting, e.g.
`--robot.cameras='{top: {type: opencv, index_or_path: /dev/video0, width: 640, height: 480}}'`,
and recorded as `observation.images.<name>`. Each camera runs its own reader and keeps only its
newest frame, so a capture tick takes that frame without waiting for the device.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import draccus
import numpy as np

from operating_platform.streams import Arrival


class CameraError(RuntimeError):
    """A camera that cannot be opened, or does not give what it was asked for; the message names it."""


@dataclasses.dataclass
class CameraConfig(draccus.ChoiceRegistry, abc.ABC):
    """Base of every camera's settings; `type: NAME` selects the registered subclass."""

    @classmethod
    def default_choice_name(cls) -> str | None:
        return "opencv"

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    def validate(self, name: str) -> None:
        """Raise `ValueError` naming `--robot.cameras.<name>.<setting>`; called before connecting."""


class Camera(abc.ABC):
    """One camera: `connect()`, then `latest()` as often as the capture clock ticks.

    Subclasses set `config_class` to their registered `CameraConfig` subclass.
    """

    config_class: ClassVar[type[CameraConfig]]
    _by_config: ClassVar[dict[type[CameraConfig], type[Camera]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config_class = cls.__dict__.get("config_class")
        if config_class is not None:
            Camera._by_config[config_class] = cls

    def __init__(self, name: str, config: CameraConfig) -> None:
        self.name = name
        self.config = config

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int, int]:
        """(height, width, 3) of the frames `latest()` returns; known once connected."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device and wait for its first frame; raise naming the camera if it cannot."""

    @abc.abstractmethod
    def latest(self) -> tuple[np.ndarray, Arrival]:
        """The newest RGB frame and its arrival, without waiting; the array is never written again."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Stop the reader and release the device. Safe to call more than once."""


def make_camera(name: str, config: CameraConfig) -> Camera:
    """Build the camera registered for `config`'s class."""
    try:
        camera_cls = Camera._by_config[type(config)]
    except KeyError:
        raise ValueError(f"no Camera subclass declares config_class={type(config).__name__}") from None
    return camera_cls(name, config)
