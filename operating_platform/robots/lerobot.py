"""Arms and teleoperators driven by LeRobot's own drivers, selected by `--robot.type=lerobot`.

`--robot.robot` and `--robot.teleop` take the settings LeRobot's own configs take (`type` plus
that device's fields, cameras included), and the devices are built by LeRobot's config registry
and factories. LeRobot is imported only when this robot type is chosen; it pulls in torch, so
it is an extra: `pip install 'operating_platform[lerobot]'`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from typing import Any

import numpy as np

from operating_platform.robots.base import Robot, RobotConfig
from operating_platform.robots.lerobot_registry import (
    ROBOT,
    TELEOP,
    DeviceKind,
    LeRobotDeviceError,
    decode_config,
    describe_device,
    import_lerobot,
    make_device,
    one_line,
)
from operating_platform.streams import Arrival, Latest

FIRST_OBSERVATION_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 2.0
# The driver turns once per capture tick, at the pace the recorder captures (this before the
# first capture); a gap longer than LONGEST_PERIOD_S is a pause between episodes, not a tick.
DEFAULT_PERIOD_S = 1 / 30
LONGEST_PERIOD_S = 0.5
# How long before a tick a turn of the driver aims to end, at least.
MARGIN_S = 0.002


@RobotConfig.register_subclass("lerobot")
@dataclasses.dataclass
class LeRobotConfig(RobotConfig):
    """An arm and its leader through LeRobot's drivers (pip install 'operating_platform[lerobot]')."""

    # The follower, as LeRobot's `--robot.*` takes it: `type` and that robot's fields, e.g.
    # {type: so101_follower, port: /dev/ttyACM0, id: my_follower}; LeRobot's own `cameras` too.
    robot: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The leader whose actions go to the follower, as LeRobot's `--teleop.*` takes it, e.g.
    # {type: so101_leader, port: /dev/ttyACM1, id: my_leader}. Without one, nothing is sent to
    # the follower, and `action` records its observed position.
    teleop: dict[str, Any] | None = None

    def validate(self) -> None:
        super().validate()
        # LeRobot's configs are built here, so a missing LeRobot, an unknown device type or a
        # wrong field stops the program before any device is touched.
        lerobot_configs(self)


def lerobot_configs(config: LeRobotConfig) -> tuple[Any, Any | None]:
    """LeRobot's configs of the robot and the teleoperator (or None); `ValueError` names the flag."""
    import_lerobot(ROBOT.package)  # first: without LeRobot, the install line is all there is to say
    robot = decode_config(ROBOT, config.robot)
    teleop = decode_config(TELEOP, config.teleop) if config.teleop is not None else None
    return robot, teleop


class LeRobotRobot(Robot):
    """A LeRobot robot, and the teleoperator driving it, recorded through LeRobot's own drivers.

    Promises:
    - `connect()` builds both devices with LeRobot's factories, connects the robot then the
      teleoperator (LeRobot may ask for a calibration on the terminal there), and returns once a
      first complete observation has arrived; any failure is raised naming the device.
    - LeRobot's loop (teleop.get_action -> robot.send_action -> robot.get_observation) runs on a
      driver thread of its own, once per capture tick, timed to end just before it (and at the
      same pace between episodes), so `capture()` never waits on a serial read or a camera.
    - `action` is what `send_action` returned, i.e. what was really sent (without a teleoperator,
      nothing is sent and `action` is the follower's observed position); `observation.state`
      holds the float observation features in LeRobot's order, and each tuple-shaped one is a
      camera, `observation.images.<name>`.
    - `arrivals()` says, per stream, which message a frame used and when it arrived; a camera
      frame that is the same object as the one before is a repeat.
    - An exception in the driver thread is raised by the next `capture()`, naming the device.
    """

    config_class = LeRobotConfig

    def __init__(self, config: LeRobotConfig) -> None:
        super().__init__(config)
        self.config: LeRobotConfig = config
        self._robot: Any = None
        self._teleop: Any = None
        self._names: dict[str, str] = {}
        self._state_names: list[str] = []
        self._action_names: list[str] = []
        self._camera_shapes: dict[str, tuple[int, int, int]] = {}
        self._latest: dict[str, Latest[np.ndarray]] = {}
        self._arrivals: dict[str, Arrival] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._busy = ""  # the device the driver thread is calling, named in its failure
        self._turn_s = 0.0
        self._failure: LeRobotDeviceError | None = None
        self._period = DEFAULT_PERIOD_S
        self._last_capture: float | None = None

    @property
    def robot_type(self) -> str:
        # The LeRobot type as given (so101_follower), known once connected.
        return self._names.get("type", self.config.type)

    @property
    def joint_names(self) -> list[str]:
        return list(self._state_names)

    @property
    def camera_shapes(self) -> dict[str, tuple[int, int, int]]:
        return dict(self._camera_shapes)

    @property
    def action_names(self) -> list[str]:
        return list(self._action_names)

    @property
    def stream_names(self) -> list[str]:
        return list(self._latest)

    def arrivals(self) -> dict[str, Arrival]:
        return dict(self._arrivals)

    def connect(self) -> None:
        robot_cfg, teleop_cfg = lerobot_configs(self.config)
        kind = self.config.robot["type"]
        self._names = {"type": kind, ROBOT.word: describe_device(ROBOT, robot_cfg, kind)}
        self._robot = self._connect_device(ROBOT, robot_cfg)
        if teleop_cfg is not None:
            self._names[TELEOP.word] = describe_device(TELEOP, teleop_cfg, self.config.teleop["type"])
            self._teleop = self._connect_device(TELEOP, teleop_cfg)
        self._read_features()
        self._failure, self._stop, self._arrivals = None, threading.Event(), {}
        self._thread = threading.Thread(target=self._drive, name="lerobot-driver", daemon=True)
        self._thread.start()
        self._wait_first_observation()

    def _connect_device(self, kind: DeviceKind, config: Any) -> Any:
        name = self._names[kind.word]
        try:
            device = make_device(kind, config)
        except ModuleNotFoundError as exc:
            hint = "LeRobot's extras install its drivers' modules, e.g. pip install 'lerobot[feetech]'"
            raise LeRobotDeviceError(f"{name} cannot be built: {one_line(exc)} ({hint})") from exc
        except Exception as exc:
            raise LeRobotDeviceError(f"{name} cannot be built: {one_line(exc)}") from exc
        setattr(self, "_robot" if kind is ROBOT else "_teleop", device)  # so a failure disconnects it
        try:
            device.connect()
        except Exception as exc:
            raise LeRobotDeviceError(f"{name} did not connect: {one_line(exc)}") from exc
        return device

    def _read_features(self) -> None:
        observed = self._robot.observation_features
        self._state_names = [key for key, kind in observed.items() if kind is float]
        self._action_names = [key for key, kind in self._robot.action_features.items() if kind is float]
        self._camera_shapes = {}
        for key, shape in observed.items():
            if isinstance(shape, tuple):
                if len(shape) != 3 or shape[2] != 3:
                    raise LeRobotDeviceError(
                        f"{self._names['robot']}: {key} has shape {shape}, not an RGB image"
                    )
                self._camera_shapes[key] = (int(shape[0]), int(shape[1]), 3)
        missing = [key for key in self._action_names if key not in self._state_names]
        if self._teleop is None and missing:
            raise LeRobotDeviceError(
                f"{self._names['robot']} observes no {', '.join(missing)}: without --robot.teleop the "
                "action recorded is the observed position, so give a teleoperator"
            )
        if not self._state_names or not self._action_names:
            raise LeRobotDeviceError(f"{self._names['robot']} has no float observation or action features")
        streams = ["action", "observation.state", *(f"observation.images.{c}" for c in self._camera_shapes)]
        self._latest = {stream: Latest() for stream in streams}

    def _wait_first_observation(self) -> None:
        deadline = time.monotonic() + FIRST_OBSERVATION_TIMEOUT_S
        while any(latest.get() is None for latest in self._latest.values()):
            if self._failure is not None:
                raise self._failure
            if time.monotonic() > deadline:
                missing = [s for s, latest in self._latest.items() if latest.get() is None]
                raise LeRobotDeviceError(
                    f"{self._names['robot']} sent no {', '.join(missing)} within "
                    f"{FIRST_OBSERVATION_TIMEOUT_S:g} s of connecting"
                )
            time.sleep(0.01)

    # -- the driver thread ------------------------------------------------------------------------

    def _drive(self) -> None:
        self._busy = self._names["robot"]
        seen: dict[str, Any] = {}  # each camera's last image, to tell a repeated one
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self._step(seen)
                self._pause(started)
        except BaseException as exc:
            self._failure = LeRobotDeviceError(f"{self._busy} failed: {one_line(exc)}")

    def _step(self, seen: dict[str, Any]) -> None:
        """One turn of LeRobot's loop: the leader's action to the follower, then its observation."""
        sent = None
        if self._teleop is not None:
            self._busy = self._names["teleoperator"]
            goal = self._teleop.get_action()
            self._busy = self._names["robot"]
            sent = self._robot.send_action(goal)
            self._latest["action"].put(_vector(sent, self._action_names, "send_action"))
        self._busy = self._names["robot"]
        obs = self._robot.get_observation()
        now = time.monotonic()
        self._latest["observation.state"].put(_vector(obs, self._state_names, "get_observation"), now)
        if sent is None:
            self._latest["action"].put(_vector(obs, self._action_names, "get_observation"), now)
        for camera in self._camera_shapes:
            image = obs.get(camera)
            if image is None:
                raise RuntimeError(f"get_observation() returned no {camera!r}")
            if image is not seen.get(camera):
                seen[camera] = image
                self._latest[f"observation.images.{camera}"].put(np.asarray(image), now)

    def _pause(self, started: float) -> None:
        """Wait so that the next turn ends just before the next capture tick: the freshest data.

        A turn's length is tracked rising at once and falling slowly, so one quick turn does not
        make the next one start too late for its tick.
        """
        now = time.monotonic()
        self._turn_s = max(now - started, 0.9 * self._turn_s + 0.1 * (now - started))
        period, last = self._period, self._last_capture
        lead = self._turn_s + max(MARGIN_S, 0.1 * period)
        if last is None or now - last > LONGEST_PERIOD_S:
            start = started + period  # not recording: keep the last pace seen
        elif lead >= period:
            return  # the devices take longer than a tick: turn after turn
        else:
            start = last + period * (math.floor((now - last) / period) + 1) - lead
            if start < now:
                start += period
        self._stop.wait(max(0.0, start - now))

    def capture(self) -> dict[str, np.ndarray]:
        if self._failure is not None:
            raise self._failure
        now = time.monotonic()
        last = self._last_capture
        if last is not None and now - last < LONGEST_PERIOD_S:
            self._period += 0.2 * (now - last - self._period)
        self._last_capture = now
        frame: dict[str, np.ndarray] = {}
        arrivals: dict[str, Arrival] = {}
        for stream, latest in self._latest.items():
            frame[stream], arrivals[stream] = latest.get()  # type: ignore[misc]  # set since connect()
        self._arrivals = arrivals
        return frame

    def disconnect(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_TIMEOUT_S)
        errors: list[LeRobotDeviceError] = []
        for kind, device in ((ROBOT, self._robot), (TELEOP, self._teleop)):
            try:
                if device is not None and device.is_connected:
                    device.disconnect()
            except Exception as exc:
                errors.append(
                    LeRobotDeviceError(f"{self._names[kind.word]} did not disconnect: {one_line(exc)}")
                )
        self._robot = self._teleop = None
        if errors:
            raise errors[0]


def _vector(values: dict[str, Any], names: list[str], call: str) -> np.ndarray:
    """The float32 vector of `names` in `values`, a new array the robot never writes again."""
    try:
        return np.array([float(values[name]) for name in names], np.float32)
    except KeyError as exc:
        raise RuntimeError(f"{call}() returned no {exc.args[0]!r}") from None
