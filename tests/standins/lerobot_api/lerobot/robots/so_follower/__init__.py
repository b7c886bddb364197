"""`so101_follower`, here the simulated follower of tests/standins/devices/standin_devices.py."""

from __future__ import annotations

from dataclasses import dataclass

from standin_devices import StandinFollower, StandinFollowerConfig

from lerobot.robots import RobotConfig


@RobotConfig.register_subclass("so101_follower")
@dataclass(kw_only=True)
class SO101FollowerConfig(StandinFollowerConfig):
    """The simulated follower's settings, under SO-101's name."""


class SO101Follower(StandinFollower):
    config_class = SO101FollowerConfig
    name = "so101_follower"
