"""A robot plugin for tests: the simulated arm, whose top camera delivers on its own clock.

The camera stream's message number is `tick // repeat_every` (so it repeats frames exactly
where the test expects) until `silent_after` ticks, when it stops sending altogether.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from operating_platform.robots import RobotConfig, SimRobot, SimRobotConfig
from operating_platform.streams import Arrival

CAMERA = "observation.images.image_top"


@RobotConfig.register_subclass("streaming_sim")
@dataclass
class StreamingSimConfig(SimRobotConfig):
    repeat_every: int = 2
    silent_after: int = 0  # 0: never


class StreamingSim(SimRobot):
    config_class = StreamingSimConfig

    def connect(self) -> None:
        super().connect()
        self.ticks = 0
        self.arrival = Arrival(-1, 0.0)
        self.image: np.ndarray | None = None

    @property
    def stream_names(self) -> list[str]:
        return ["observation.state", CAMERA]

    def capture(self) -> dict[str, np.ndarray]:
        frame = super().capture()
        now = time.monotonic()
        self.state_arrival = Arrival(self.ticks, now)
        silent = self.config.silent_after and self.ticks >= self.config.silent_after
        seq = self.ticks // self.config.repeat_every
        if not silent and seq != self.arrival.seq:
            self.arrival, self.image = Arrival(seq, now), frame[CAMERA]
        frame[CAMERA] = self.image
        self.ticks += 1
        return frame

    def arrivals(self) -> dict[str, Arrival]:
        return {"observation.state": self.state_arrival, CAMERA: self.arrival}
