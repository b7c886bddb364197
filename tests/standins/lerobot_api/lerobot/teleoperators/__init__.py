"""LeRobot's teleoperators: the `Teleoperator` interface, its config registry and its factory."""

from __future__ import annotations

import abc
import builtins
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import draccus


@dataclass(kw_only=True)
class TeleoperatorConfig(draccus.ChoiceRegistry, abc.ABC):
    """A teleoperator's settings; `type` selects the registered subclass."""

    id: str | None = None
    calibration_dir: Path | None = None

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)


class Teleoperator(abc.ABC):
    """A device an operator moves (a leader arm, a gamepad) whose `get_action` drives a robot."""

    config_class: builtins.type[TeleoperatorConfig]
    name: str

    def __init__(self, config: TeleoperatorConfig) -> None:
        self.id = config.id
        self.calibration_dir = config.calibration_dir

    def __str__(self) -> str:
        return f"{self.id} {self.__class__.__name__}"

    @property
    @abc.abstractmethod
    def action_features(self) -> dict: ...

    @property
    @abc.abstractmethod
    def feedback_features(self) -> dict: ...

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
    def get_action(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def send_feedback(self, feedback: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...


def make_teleoperator_from_config(config: TeleoperatorConfig) -> Teleoperator:
    """The teleoperator of `config.type`; a ValueError for a type it does not build."""
    if config.type == "so101_leader":
        from lerobot.teleoperators.so_leader import SO101Leader

        return SO101Leader(config)
    raise ValueError(config.type)
