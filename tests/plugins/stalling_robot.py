"""A robot plugin for tests: the simulated arm, one of whose reads takes half a second."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from operating_platform.robots import RobotConfig, SimRobot, SimRobotConfig


@RobotConfig.register_subclass("stalling_sim")
@dataclass
class StallingSimConfig(SimRobotConfig):
    # The read, counted from 1, that is slow; the capture clock skips the ticks it missed.
    stall_at: int = 10
    stall_s: float = 0.5


class StallingSim(SimRobot):
    config_class = StallingSimConfig

    def connect(self) -> None:
        super().connect()
        self.captured = 0

    def capture(self) -> dict[str, np.ndarray]:
        self.captured += 1
        if self.captured == self.config.stall_at:
            time.sleep(self.config.stall_s)
        return super().capture()
