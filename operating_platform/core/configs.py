"""The command line: `ControlPipelineConfig` parsed by draccus, with one-line errors.

Flags are `--robot.*` and `--record.*`, or a YAML file through `--config_path` (flags given
after it override the file). Everything is checked here, before any hardware is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import draccus
from draccus.argparsing import ArgumentParser

from operating_platform.cameras import CameraConfig
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


DESCRIPTION = "Record demonstrations from a robot into a LeRobot v2.1 dataset."
EPILOG = f"""\
A YAML file holds the same settings, in robot: and record: sections; flags given after it
override it:  --config_path=examples/session.yaml --record.num_episodes=5

Your own robot: {PLUGINS_ENV}=my_arm (module names, comma-separated, looked for in the
current folder first) adds the --robot.type names those modules register.

Keys, on a terminal (without one, the session runs on its timers):
  recording   n or →  save, then reset      d or ←  discard, then reset
              e or Esc  save and exit       space  pause / resume
  reset       p, → or Enter  next episode   t  change the task   e or Esc  exit

After a crash, kill or full disk nothing captured is lost:
  dorobot recover ROOT   finishes the saves an interrupted session left
  dorobot verify ROOT    checks a dataset folder against the format
"""
# Help texts for what draccus describes from its own point of view.
HELP = {
    "--config_path": "a YAML file with robot: and record: sections, e.g. examples/session.yaml",
    "--robot.type": "the robot: {choices}; sim is a simulated SO-101 arm, more come from " + PLUGINS_ENV,
}
CAMERAS_EXAMPLE = "'{top: {type: opencv, index_or_path: /dev/video0, width: 640, height: 480}}'"
NO_DEFAULT = {"--config_path", "--record.repo_id", "--record.single_task", "--record.root"}


def _tidy_help(parser: argparse.ArgumentParser) -> None:
    """Make `--help` list each flag once, with its real default and a text for each."""
    choices = RobotConfig.get_known_choices()
    # Actions draccus replaced are gone from `_actions` but still listed by their group.
    actions = {id(a): a for g in parser._action_groups for a in g._group_actions}
    actions.update({id(a): a for a in parser._actions})
    for action in actions.values():
        name = action.option_strings[0] if action.option_strings else ""
        if name in ("--robot", "--record"):
            # "Config file for ..." entries: they still work, but only confuse the listing.
            action.help = argparse.SUPPRESS
        elif name in HELP:
            action.help = HELP[name].format(choices=", ".join(choices))
        if name == "--robot.type":
            action.default = RobotConfig.default_choice_name()
        elif name in NO_DEFAULT or action.default is None:
            action.default = argparse.SUPPRESS
    titles = {f"{cls.__qualname__} ['robot']": f"--robot.type={n}" for n, cls in choices.items()}
    titles.update({"RobotConfig ['robot']": "robot", "RecordConfig ['record']": "record"})
    for group in parser._action_groups:
        group.title = titles.get(group.title or "", group.title)
    _list_shared_robot_flags_once(parser)
    parser.description = DESCRIPTION
    parser.epilog = EPILOG


def _list_shared_robot_flags_once(parser: argparse.ArgumentParser) -> None:
    """Every robot type has the settings of `RobotConfig` (cameras, ...): list them once, under
    "robot", rather than again under each type."""
    shared = {f"--robot.{f.name}" for f in dataclasses.fields(RobotConfig)}
    robot = next((g for g in parser._action_groups if g.title == "robot"), None)
    if robot is None:
        return
    listed = {a.option_strings[0] for a in robot._group_actions}
    for group in parser._action_groups:
        if not (group.title or "").startswith("--robot.type="):
            continue
        for action in [a for a in group._group_actions if a.option_strings[0] in shared]:
            group._group_actions.remove(action)
            if action.option_strings[0] not in listed:
                listed.add(action.option_strings[0])
                robot._group_actions.append(action)


def _raise_config_error(message: str) -> None:
    raise ConfigError(message)


def parse_config(args: Sequence[str] | None = None, prog: str = "dorobot record") -> ControlPipelineConfig:
    """Parse and validate the command line; raise `ConfigError` with a one-line message."""
    import_plugins()
    parser = ArgumentParser(ControlPipelineConfig, prog=prog)
    # argparse prints the whole usage on a bad flag; the operator needs the one line that matters.
    parser.parser.error = _raise_config_error  # type: ignore[method-assign]
    _tidy_help(parser.parser)
    try:
        cfg = parser.parse_args(list(args) if args is not None else None)
    except ConfigError:
        raise
    except draccus.utils.ParsingError as exc:  # DecodingError included
        raise ConfigError(_flagged(_camera_message(" ".join(str(exc).split())))) from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"cannot read the configuration: {exc}") from None
    cfg.record.validate()
    try:
        cfg.robot.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def _camera_message(message: str) -> str:
    """draccus's words for a `--robot.cameras` value it cannot read, in the operator's."""
    if "Expected a dict for a choice class" in message or (
        "Failed when parsing" in message and "CameraConfig" in message
    ):
        return f"--robot.cameras must give each camera a name and its settings, e.g. {CAMERAS_EXAMPLE}"
    unknown = re.match(r"(`[^`]*`: )Couldn't find a choice class for '([^']*)' in .*CameraConfig", message)
    if unknown:
        known = ", ".join(CameraConfig.get_known_choices())
        return f"{unknown.group(1)}no camera type {unknown.group(2)!r} (known: {known})"
    return message


def _flagged(message: str) -> str:
    # draccus says "`record.fps`: Couldn't parse ..."; name the flag as the operator typed it.
    if message.startswith("`"):
        name, _, rest = message[1:].partition("`")
        return f"--{name}{rest}"
    return message
