"""LeRobot's device registries and factories, reached lazily: LeRobot pulls in torch.

LeRobot keeps robots in `lerobot.robots` (`RobotConfig`, `make_robot_from_config`), teleoperators
in `lerobot.teleoperators` (`TeleoperatorConfig`, `make_teleoperator_from_config`) and cameras in
`lerobot.cameras` (`CameraConfig`), with the same names in 0.3 and 0.4. A device type registers
itself in its config registry when its module is imported.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import pkgutil
from typing import Any

import draccus

from operating_platform.robots.base import DEVICE_WORDS

INSTALL = "pip install 'operating_platform[lerobot]'"


@dataclasses.dataclass(frozen=True)
class DeviceKind:
    """Where LeRobot keeps one kind of device: its package, config registry and factory."""

    flag: str
    word: str
    example: str  # settings, as given on the command line
    package: str
    config: str
    factory: str
    base: str


ROBOT = DeviceKind(
    "--robot.robot",
    "robot",
    "{type: so101_follower, port: /dev/ttyACM0, id: my_follower}",
    "lerobot.robots",
    "RobotConfig",
    "make_robot_from_config",
    "Robot",
)
TELEOP = DeviceKind(
    "--robot.teleop",
    "teleoperator",
    "{type: so101_leader, port: /dev/ttyACM1, id: my_leader}",
    "lerobot.teleoperators",
    "TeleoperatorConfig",
    "make_teleoperator_from_config",
    "Teleoperator",
)
# Cameras are configured inside a robot's settings, so errors name that robot's flag.
CAMERA = DeviceKind(
    "--robot.robot",
    "camera",
    "{type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}",
    "lerobot.cameras",
    "CameraConfig",
    "",
    "",
)


class LeRobotDeviceError(RuntimeError):
    """A LeRobot device could not be built, connected or read; the message names the device."""


def import_lerobot(name: str) -> Any:
    """The LeRobot module `name`; without LeRobot, a `ValueError` saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(f"--robot.type=lerobot needs LeRobot ({exc}): {INSTALL}") from None


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line: LeRobot's messages often span several, ours never do."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _ensure_type(kind: DeviceKind, name: Any) -> type:
    """LeRobot's config registry of `kind`, once it knows the type `name`.

    A device type registers itself when its module is imported, and LeRobot's package does not
    import them all: the module named like the type is tried, then the package's other modules,
    then the third-party plugins LeRobot discovers (0.4 and later).
    """
    registry = getattr(import_lerobot(kind.package), kind.config)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{kind.flag}: a {kind.word} `type` is needed, e.g. '{kind.example}' (got {name!r})")
    failures: list[str] = []
    candidates = [f"{kind.package}.{name}"]
    candidates += [
        f"{kind.package}.{m.name}" for m in pkgutil.iter_modules(import_lerobot(kind.package).__path__)
    ]
    for module in candidates:
        if name in registry.get_known_choices():
            return registry
        try:
            importlib.import_module(module)
        except Exception as exc:  # a driver whose own dependencies are missing
            if module != candidates[0]:
                failures.append(f"{module}: {one_line(exc)}")
    if name not in registry.get_known_choices():
        _register_plugins()
    if name not in registry.get_known_choices():
        known = ", ".join(sorted(registry.get_known_choices()))
        why = f"; not importable: {'; '.join(failures)}" if failures else ""
        raise ValueError(f"{kind.flag}: LeRobot has no {kind.word} type {name!r} (known: {known}){why}")
    return registry


def _register_plugins() -> None:
    """Import the third-party device packages LeRobot discovers (0.4 renamed the function)."""
    try:
        utils = importlib.import_module("lerobot.utils.import_utils")
    except ImportError:
        return
    for hook in ("register_third_party_plugins", "register_third_party_devices"):
        if hasattr(utils, hook):
            getattr(utils, hook)()
            return


def decode_config(kind: DeviceKind, raw: Any) -> Any:
    """LeRobot's config of a `kind` device from its settings; a `ValueError` names the flag."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{kind.flag} must give LeRobot's {kind.word} settings, e.g. '{kind.example}'")
    registry = _ensure_type(kind, raw.get("type"))
    for camera in _camera_types(raw):
        _ensure_type(dataclasses.replace(CAMERA, flag=kind.flag), camera)
    try:
        return draccus.decode(registry, copy.deepcopy(raw))
    except Exception as exc:
        # draccus wraps a config's own __post_init__ check in "Couldn't instantiate"; show the cause.
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        raise ValueError(f"{kind.flag}: {' '.join(str(cause).split())}") from None


def _camera_types(raw: dict[str, Any]) -> list[Any]:
    """The `type` of every LeRobot camera in a device's settings, also those of nested arms."""
    types: list[Any] = []
    for key, value in raw.items():
        if key == "cameras" and isinstance(value, dict):
            types += [cam.get("type") for cam in value.values() if isinstance(cam, dict)]
        elif isinstance(value, dict):
            types += _camera_types(value)
    return types


def make_device(kind: DeviceKind, config: Any) -> Any:
    """The device LeRobot's factory builds for `config`.

    LeRobot 0.3's factories know only LeRobot's own types: a third-party one is then found by
    its `config_class`, the way 0.4's factories find it.
    """
    package = importlib.import_module(kind.package)
    try:
        return getattr(package, kind.factory)(config)
    except ValueError:
        found = _device_class(getattr(package, kind.base), type(config))
        if found is None:
            raise
        return found(config)


def _device_class(base: type, config_class: type) -> type | None:
    pending = list(base.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__dict__.get("config_class") is config_class:
            return cls
        pending += cls.__subclasses__()
    return None


def describe_device(kind: DeviceKind, config: Any, type_name: str) -> str:
    """E.g. `teleoperator so101_leader (id my_leader, port /dev/ttyACM1)`.

    `type_name` is the type as given: LeRobot registers some configs under several names (0.4's
    so100_follower and so101_follower), and the config's own `type` is then only the first.
    """
    details = [f"id {config.id}"] if getattr(config, "id", None) else []
    for field in dataclasses.fields(config):
        words = field.name.lower().split("_")
        value = getattr(config, field.name, None)
        if value is not None and not isinstance(value, dict) and any(w in DEVICE_WORDS for w in words):
            details.append(f"{field.name} {value}")
    return f"{kind.word} {type_name}" + (f" ({', '.join(details)})" if details else "")
