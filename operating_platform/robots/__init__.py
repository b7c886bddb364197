"""Robots: the `Robot` interface, its `--robot.type` registry and the built-in simulated arm."""

from operating_platform.robots import dorobot, lerobot, sim
from operating_platform.robots.base import Robot, RobotConfig, make_robot
from operating_platform.robots.sim import SimRobot, SimRobotConfig

__all__ = ["Robot", "RobotConfig", "SimRobot", "SimRobotConfig", "dorobot", "lerobot", "make_robot", "sim"]
