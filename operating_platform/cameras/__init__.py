"""Cameras any robot can carry: the `Camera` interface and its `type:` registry."""

from operating_platform.cameras.base import Camera, CameraConfig, make_camera

__all__ = ["Camera", "CameraConfig", "make_camera"]
