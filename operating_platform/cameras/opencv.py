"""OpenCV cameras (`type: opencv`): a USB camera, a video file or a network stream.

    --robot.cameras='{top: {index_or_path: /dev/video0, width: 640, height: 480, fps: 30, fourcc: MJPG}}'

A thread of its own reads each camera continuously and keeps only its newest frame, so a capture
tick never waits for a device. A video file plays at its own rate (or `fps`) and starts again at
its end, which makes it a camera tests can drive. OpenCV is imported only once a camera is used.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from operating_platform.cameras.base import Camera, CameraConfig, CameraError
from operating_platform.streams import Arrival, Latest

log = logging.getLogger("operating_platform.cameras")

INSTALL_HINT = "pip install 'operating_platform[opencv]'"
ROTATIONS = (0, 90, 180, 270)
RETRY_S = 0.1  # between reads of a device that stopped delivering: retried, never spun on
REOPEN_AFTER = 10  # failed reads in a row before the device is closed and opened again
JOIN_S = 2.0


def import_cv2() -> Any:
    """OpenCV, imported on first use, its own log silenced; one line saying what to install if absent."""
    # FFmpeg's own log ("[tcp @ 0x...] Failed to resolve hostname") is read once, at its first use.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import cv2
    except ImportError:
        raise ImportError(f"OpenCV cameras need OpenCV: {INSTALL_HINT}") from None
    # Its warnings (a backend that cannot open an index, ...) would bury the one line that says
    # what is wrong; every failure is reported by the caller instead.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return cv2


def is_device(source: int | str) -> bool:
    """A camera device (an index or /dev/videoN), as opposed to a video file or a URL."""
    return isinstance(source, int) or source.startswith("/dev/")


def missing(source: int | str) -> str | None:
    """Why `source` cannot be a camera, before trying to open it ("no such file"); else None."""
    if isinstance(source, int):
        node = Path(f"/dev/video{source}")
        return f"no such device ({node})" if sys.platform.startswith("linux") and not node.exists() else None
    if "://" in source or Path(source).exists():
        return None
    return "no such device" if is_device(source) else "no such file"


def open_capture(cv2: Any, source: int | str) -> Any:
    """A `cv2.VideoCapture` on `source`, through V4L2 for a device on Linux (no other backend tried)."""
    linux_device = sys.platform.startswith("linux") and is_device(source)
    return cv2.VideoCapture(source, cv2.CAP_V4L2 if linux_device else cv2.CAP_ANY)


def fourcc_of(cv2: Any, capture: Any) -> str:
    """The four characters of what `capture` delivers (a pixel format, or a file's codec), or ''."""
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    text = code.to_bytes(4, "little").decode("ascii", "replace").strip("\0 ")
    return text if text.isprintable() else ""


@CameraConfig.register_subclass("opencv")
@dataclasses.dataclass
class OpenCVCameraConfig(CameraConfig):
    """Settings of one OpenCV camera; what is left out is the device's (or file's) own."""

    # A device index (0), a device (/dev/video0), a video file, or a stream URL (rtsp://...).
    index_or_path: int | str = 0
    # Frame size to ask the camera for (before rotation), 0 for its own; a file's size must match.
    width: int = 0
    height: int = 0
    # Frames per second to ask for, 0 for the camera's own. A video file plays at this rate.
    fps: float = 0.0
    # Pixel format to ask a USB camera for: MJPG gives large frames at full rate, YUYV is raw.
    fourcc: str | None = None
    # Turns the frames of a camera mounted sideways or upside down, in degrees clockwise.
    rotation: int = 0
    # Longest wait for the first frame when connecting.
    timeout_s: float = 5.0

    def validate(self, name: str) -> None:
        flag = f"--robot.cameras.{name}"
        source = self.index_or_path
        if isinstance(source, bool) or (isinstance(source, int) and source < 0) or not str(source).strip():
            raise ValueError(
                f"{flag}.index_or_path must be a device index (0, 1, ...), a /dev/video path, a video "
                f"file or a URL (got {source!r})"
            )
        # `null` in YAML means the camera's own, as 0 does.
        for key in ("width", "height"):
            value = getattr(self, key)
            if value and (value < 0 or value % 2):
                raise ValueError(f"{flag}.{key} must be a positive even number (got {value})")
        if self.fps and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(
                f"{flag}.fps must be positive (got {self.fps:g}); leave it out for the camera's own"
            )
        if self.fourcc and not (len(str(self.fourcc)) == 4 and str(self.fourcc).isascii()):
            raise ValueError(
                f"{flag}.fourcc must be four characters, e.g. MJPG or YUYV (got {self.fourcc!r})"
            )
        if self.rotation not in ROTATIONS:
            raise ValueError(f"{flag}.rotation must be 0, 90, 180 or 270 (got {self.rotation})")
        if not self.timeout_s > 0:
            raise ValueError(f"{flag}.timeout_s must be positive (got {self.timeout_s:g})")
        if importlib.util.find_spec("cv2") is None:
            raise ValueError(f"{flag}: OpenCV cameras need OpenCV: {INSTALL_HINT}")


class OpenCVCamera(Camera):
    """An OpenCV camera read continuously by a thread of its own.

    Promises: `connect()` returns once a first frame has arrived, and raises `CameraError` naming
    the camera if the device cannot be opened, gives another size, fps or fourcc than asked, or
    sends nothing within `timeout_s`. Every frame is a new RGB uint8 array of `shape`, never
    written again. `latest()` never waits. `Arrival.seq` counts the frames read since connecting:
    for a video file, which loops, `seq % frame_count` is the file's frame index. A device that
    stops delivering is retried every `RETRY_S` (and reopened now and then), never spun on; the
    recorder's stale-stream check reports it.
    """

    config_class = OpenCVCameraConfig

    def __init__(self, name: str, config: CameraConfig) -> None:
        if not isinstance(config, OpenCVCameraConfig):
            raise TypeError(f"OpenCVCamera needs an OpenCVCameraConfig, got {type(config).__name__}")
        super().__init__(name, config)
        self.config: OpenCVCameraConfig = config
        self.frame_count = 0  # of a video file; 0 for a device or a live stream
        self._period = 0.0  # seconds between frames of a file; devices pace themselves
        self._latest: Latest[np.ndarray] = Latest()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shape: tuple[int, int, int] | None = None
        self._raw_size = (0, 0)  # (height, width) of the first frame, before rotation
        self._misfit_said = False

    @property
    def where(self) -> str:
        return f"--robot.cameras.{self.name}.index_or_path={self.config.index_or_path}"

    @property
    def shape(self) -> tuple[int, int, int]:
        if self._shape is None:
            raise RuntimeError(f"camera {self.name}: its frame size is known once it is connected")
        return self._shape

    def connect(self) -> None:
        self.disconnect()  # connecting again starts afresh
        cv2 = import_cv2()
        capture = self._open(cv2)
        # Read before the reader thread owns the capture: a VideoCapture is not thread-safe. A
        # file's fps is not checked: it plays at the asked rate.
        fps = 0.0 if self.frame_count else capture.get(cv2.CAP_PROP_FPS)
        given = {"fps": fps, "fourcc": fourcc_of(cv2, capture)}
        self._latest, self._stop, self._shape, self._misfit_said = Latest(), threading.Event(), None, False
        # From here on the capture belongs to the reader thread, which releases it.
        self._thread = threading.Thread(
            target=self._read_loop, args=(cv2, capture, self._stop), name=f"camera-{self.name}", daemon=True
        )
        self._thread.start()
        try:
            if not self._latest.wait_first(self.config.timeout_s):
                raise CameraError(
                    f"camera {self.name} ({self.where}) opened but sent no frame within "
                    f"{self.config.timeout_s:g} s: is another program using it? Two cameras on one USB "
                    "hub may lack bandwidth: try fourcc: MJPG or a smaller size"
                )
            height, width = self._raw_size
            self._check({**given, "width": width, "height": height})
        except CameraError:
            self.disconnect()
            raise

    def latest(self) -> tuple[np.ndarray, Arrival]:
        item = self._latest.get()
        if item is None:
            raise RuntimeError(f"camera {self.name} is not connected")
        return item

    def disconnect(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            # A read stuck in the driver is left to its daemon thread, which releases the device.
            thread.join(JOIN_S)

    # -- opening and checking -----------------------------------------------------------------

    def _open(self, cv2: Any) -> Any:
        source = self.config.index_or_path
        why = missing(source)
        if why:
            raise CameraError(f"camera {self.name} ({self.where}): {why}")
        capture = open_capture(cv2, source)
        if not capture.isOpened():
            capture.release()
            what = "device" if is_device(source) else "video or stream"
            raise CameraError(f"camera {self.name} ({self.where}): OpenCV cannot open it as a {what}")
        if not is_device(source):
            self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        if self.frame_count:
            self._period = 1.0 / (self.config.fps or capture.get(cv2.CAP_PROP_FPS) or 30.0)
        else:
            self._apply(cv2, capture)
        return capture

    def _apply(self, cv2: Any, capture: Any) -> None:
        """Ask a device (or stream) for the configured format; the pixel format first, as V4L2 wants."""
        cfg = self.config
        fourcc = cv2.VideoWriter_fourcc(*cfg.fourcc) if cfg.fourcc else 0
        asked = [(cv2.CAP_PROP_FOURCC, fourcc), (cv2.CAP_PROP_FRAME_WIDTH, cfg.width)]
        asked += [(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height), (cv2.CAP_PROP_FPS, cfg.fps)]
        for prop, value in asked:
            if value:
                capture.set(prop, value)

    def _check(self, given: dict[str, Any]) -> None:
        """Raise naming the camera, what was asked and what it gives, if the two differ."""
        cfg = self.config
        wrong = []
        if (cfg.width and cfg.width != given["width"]) or (cfg.height and cfg.height != given["height"]):
            wrong.append(
                ("size", f"{cfg.width or '*'}x{cfg.height or '*'}", f"{given['width']}x{given['height']}")
            )
        # Devices round their rates (30 may read back as 30.0003); 0 means the driver does not say.
        if cfg.fps and given["fps"] and abs(cfg.fps - given["fps"]) > 0.5:
            wrong.append(("fps", f"{cfg.fps:g}", f"{given['fps']:g}"))
        if cfg.fourcc and cfg.fourcc.upper() != given["fourcc"].upper():
            wrong.append(("fourcc", cfg.fourcc, given["fourcc"] or "(it does not say)"))
        if wrong:
            asked = ", ".join(f"{what} {want}" for what, want, _ in wrong)
            gives = ", ".join(f"{what} {got}" for what, _, got in wrong)
            raise CameraError(
                f"camera {self.name} ({self.where}): asked for {asked}, it gives {gives}; "
                "`dorobot find-cameras` shows what it gives"
            )
        if given["width"] % 2 or given["height"] % 2:
            raise CameraError(
                f"camera {self.name} ({self.where}) gives {given['width']}x{given['height']} frames: "
                "the videos need an even width and height; set width and height"
            )

    # -- the reader thread --------------------------------------------------------------------

    def _read_loop(self, cv2: Any, capture: Any, stop: threading.Event) -> None:
        failures = 0
        due = time.monotonic()
        try:
            while not stop.is_set():
                if self._period:
                    delay = due - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        break
                    # The next frame is due a period later, unless reading fell behind: then at
                    # once, never in a burst.
                    due = max(due + self._period, time.monotonic())
                ok, image = _read(capture)
                if not ok and self.frame_count:
                    capture.release()  # a file at its end: open it again from its first frame
                    capture = open_capture(cv2, self.config.index_or_path)
                    ok, image = _read(capture)
                if ok:
                    failures = 0
                    self._deliver(cv2, image)
                    continue
                failures += 1
                if failures == 1:
                    log.warning(f"camera {self.name} ({self.where}) stopped delivering frames; retrying")
                if stop.wait(RETRY_S):
                    break
                if failures % REOPEN_AFTER == 0:  # e.g. unplugged and plugged in again
                    capture.release()
                    capture = open_capture(cv2, self.config.index_or_path)
                    if not self.frame_count and capture.isOpened():
                        self._apply(cv2, capture)
        finally:
            capture.release()

    def _deliver(self, cv2: Any, image: np.ndarray) -> None:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
        if self.config.rotation:
            codes = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
            rgb = cv2.rotate(rgb, codes[self.config.rotation])
        if self._shape is None:
            self._shape, self._raw_size = rgb.shape, image.shape[:2]
        elif rgb.shape != self._shape:
            # A device reopened in another format: its frames would not fit the episode's video.
            if not self._misfit_said:
                self._misfit_said = True
                log.warning(f"camera {self.name} now gives {rgb.shape} frames, not {self._shape}: dropped")
            return
        self._latest.put(rgb)


def _read(capture: Any) -> tuple[bool, np.ndarray | None]:
    try:
        return capture.read()
    except Exception:  # a stream's decoding error: a frame that did not come, tried again
        return False, None
