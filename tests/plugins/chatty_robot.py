"""A robot plugin for tests: the simulated arm, whose driver library logs as drivers do.

Every capture logs a warning on the root logger (as LeRobot's safety clipping does); the tenth
logs an error on a library logger of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from operating_platform.robots import RobotConfig, SimRobot, SimRobotConfig


@RobotConfig.register_subclass("chatty_sim")
@dataclass
class ChattySimConfig(SimRobotConfig):
    pass


class ChattySim(SimRobot):
    config_class = ChattySimConfig

    def capture(self) -> dict[str, np.ndarray]:
        frame = super().capture()
        logging.warning("relative goal position magnitude had to be clamped")
        if self._tick == 10:
            logging.getLogger("somedriver.bus").error("servo 3 overheating")
        return frame
