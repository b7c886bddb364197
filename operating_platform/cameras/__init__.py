"""Cameras any robot can carry: the `Camera` interface and its `type:` registry."""

from operating_platform.cameras.base import Camera, CameraConfig, CameraError, make_camera

# Registers `type: opencv` (the default); OpenCV itself is imported only once a camera is used.
from operating_platform.cameras.opencv import OpenCVCamera, OpenCVCameraConfig

__all__ = ["Camera", "CameraConfig", "CameraError", "OpenCVCamera", "OpenCVCameraConfig", "make_camera"]
