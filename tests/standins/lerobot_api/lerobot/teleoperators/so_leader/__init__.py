"""`so101_leader`, here the scripted leader of tests/standins/devices/standin_devices.py."""

from __future__ import annotations

from dataclasses import dataclass

from standin_devices import StandinLeader, StandinLeaderConfig

from lerobot.teleoperators import TeleoperatorConfig


@TeleoperatorConfig.register_subclass("so101_leader")
@dataclass(kw_only=True)
class SO101LeaderConfig(StandinLeaderConfig):
    """The scripted leader's settings, under SO-101's name."""


class SO101Leader(StandinLeader):
    config_class = SO101LeaderConfig
    name = "so101_leader"
