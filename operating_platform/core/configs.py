"""The command line: `ControlPipelineConfig` parsed by draccus, with one-line errors.

Flags are `--robot.*` and `--record.*`, or a YAML file through `--config_path` (flags given
after it override the file). Everything is checked here, before any hardware is touched.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import draccus
from draccus.argparsing import ArgumentParser

from operating_platform.core.record_config import ConfigError, RecordConfig
from operating_platform.robots import RobotConfig, SimRobotConfig

PLUGINS_ENV = "DOROBOT_PLUGINS"


@dataclass
class ControlPipelineConfig:
    """A recording session: which robot, and what to record."""

    robot: RobotConfig = field(default_factory=SimRobotConfig)
    record: RecordConfig = field(default_factory=RecordConfig)


def import_plugins() -> None:
    """Import the modules named in $DOROBOT_PLUGINS, so their robot types can be chosen.

    They are looked for in the current folder first, as `python -m` would: the `dorobot`
    console script otherwise only sees installed packages.
    """
    names = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    cwd = os.getcwd()
    if names and not {"", cwd} & set(sys.path):
        sys.path.insert(0, cwd)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"{PLUGINS_ENV}: cannot import {name!r} ({exc})") from None


def _raise_config_error(message: str) -> None:
    raise ConfigError(message)


def parse_config(args: Sequence[str] | None = None, prog: str = "dorobot record") -> ControlPipelineConfig:
    """Parse and validate the command line; raise `ConfigError` with a one-line message."""
    import_plugins()
    parser = ArgumentParser(ControlPipelineConfig, prog=prog)
    # argparse prints the whole usage on a bad flag; the operator needs the one line that matters.
    parser.parser.error = _raise_config_error  # type: ignore[method-assign]
    try:
        cfg = parser.parse_args(list(args) if args is not None else None)
    except ConfigError:
        raise
    except draccus.utils.DecodingError as exc:
        raise ConfigError(_flagged(str(exc))) from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"cannot read the configuration: {exc}") from None
    cfg.record.validate()
    try:
        cfg.robot.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def _flagged(message: str) -> str:
    # draccus says "`record.fps`: Couldn't parse ..."; name the flag as the operator typed it.
    if message.startswith("`"):
        name, _, rest = message[1:].partition("`")
        return f"--{name}{rest}"
    return message
