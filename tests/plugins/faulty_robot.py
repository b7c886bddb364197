"""A robot plugin for tests: the simulated arm, delivering one bad frame at a chosen tick.

Loaded by the recorder through DOROBOT_PLUGINS=faulty_robot, the way a user adds a robot type.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from operating_platform.robots import RobotConfig, SimRobot, SimRobotConfig


@RobotConfig.register_subclass("faulty_sim")
@dataclass
class FaultySimConfig(SimRobotConfig):
    fail_at: int = 20
    fault: str = "nan"  # nan | shape | dtype | hang | raise | disconnect | unplugged | connect
    port: str = "/dev/ttyACM0"  # named in connect errors, as a real arm's serial port would be


class FaultySim(SimRobot):
    config_class = FaultySimConfig

    def connect(self) -> None:
        if self.config.fault == "connect":  # an arm unplugged, or a port that does not exist
            raise ConnectionError(f"no device answers on {self.config.port}")
        super().connect()
        self.captured = 0

    def disconnect(self) -> None:
        super().disconnect()
        if self.config.fault == "disconnect":  # a plugin bug surfacing while the terminal is raw
            raise RuntimeError("faulty_sim: disconnect failed")
        if self.config.fault == "unplugged":  # the port gone by the time the arm is let go of
            raise OSError(5, f"faulty_sim: {self.config.port} is gone")

    def capture(self) -> dict[str, np.ndarray]:
        frame = super().capture()
        self.captured += 1
        if self.captured > self.config.fail_at and self.config.fault not in ("disconnect", "unplugged"):
            if self.config.fault == "nan":
                frame["observation.state"][2] = np.nan
            elif self.config.fault == "shape":
                frame["action"] = frame["action"][:5]
            elif self.config.fault == "hang":  # a camera that stops delivering frames
                time.sleep(3600)
            elif self.config.fault == "raise":
                raise OSError(5, "camera read failed")
            elif self.config.fault == "dtype":
                frame["observation.images.image_top"] = frame["observation.images.image_top"].astype(
                    np.float32
                )
        return frame
