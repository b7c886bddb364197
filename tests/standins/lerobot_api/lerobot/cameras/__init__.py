"""LeRobot's camera config registry: `type: NAME` selects a registered `CameraConfig` subclass."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import draccus


@dataclass(kw_only=True)
class CameraConfig(draccus.ChoiceRegistry, abc.ABC):
    """A camera's settings, as LeRobot's: frame rate and size, each None until given."""

    fps: int | None = None
    width: int | None = None
    height: int | None = None

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)
