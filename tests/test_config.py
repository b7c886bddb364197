"""Bad flags are refused with one line naming the flag, before any hardware or folder is touched."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from operating_platform.core.configs import parse_config
from operating_platform.core.record_config import ConfigError, RecordConfig
from tests.conftest import assert_valid, error_lines, run_record

GOOD = ["--record.repo_id=lab/demo", "--record.single_task=Pick the cube"]
# A session that ends quickly even if the check under test lets it start.
SHORT = ["--record.num_episodes=1", "--record.episode_time_s=0.3", "--record.reset_time_s=0"]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--record.fpz=3"], "--record.fpz"),
        (["--record.fps=-30"], "--record.fps"),
        (["--record.fps=0"], "--record.fps"),
        (["--record.fps=abc"], "--record.fps"),
        (["--record.repo_id="], "--record.repo_id"),
        (["--record.repo_id=../escape"], "--record.repo_id"),
        (["--record.repo_id=lab/../../etc"], "--record.repo_id"),
        (["--record.root=/tmp/x/../../etc"], "--record.root"),
        (["--record.single_task="], "--record.single_task"),
        (["--record.num_episodes=0"], "--record.num_episodes"),
        (["--record.episode_time_s=-1"], "--record.episode_time_s"),
        (["--record.reset_time_s=-1"], "--record.reset_time_s"),
        (["--record.video=maybe"], "--record.video"),
        (["--record.async_save_queue_size=0"], "--record.async_save_queue_size"),
        (["--record.async_save_timeout_s=0"], "--record.async_save_timeout_s"),
        (["--record.async_save_max_retries=-1"], "--record.async_save_max_retries"),
        (["--record.crf=99"], "--record.crf"),
        (["--record.g=0"], "--record.g"),
        (["--record.vcodec=nosuchcodec"], "--record.vcodec"),
        (["--robot.type=nosuchrobot"], "--robot.type"),
        (["--robot.num_cameras=7"], "--robot.num_cameras"),
        (["--robot.camera_width=641"], "--robot.camera_width"),
        (["--record.display=rerun"], "--record.display"),
    ],
)
def test_bad_flag_is_refused_naming_it(flags: list[str], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config([*GOOD, *flags])
    message = str(info.value)
    assert named in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "flags",
    [
        ["--record.fps=-5", "--record.repo_id=lab/demo", "--record.single_task=x"],
        ["--record.bogus=1", "--record.repo_id=lab/demo", "--record.single_task=x"],
        ["--record.single_task=x"],
    ],
)
def test_program_prints_one_line_and_touches_nothing(tmp_path: Path, flags: list[str]) -> None:
    root = tmp_path / "ds"
    proc = run_record(*flags, f"--record.root={root}", env={"DOROBOT_HOME": str(tmp_path / "home")})
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--record." in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not root.exists() and not (tmp_path / "home").exists()


def test_defaults_and_flags_reach_the_config() -> None:
    cfg = parse_config([*GOOD, "--record.fps=15", "--record.use_async_save=false", "--robot.num_cameras=3"])
    assert cfg.record.fps == 15 and cfg.record.use_async_save is False
    assert cfg.robot.type == "sim" and cfg.robot.num_cameras == 3
    defaults = RecordConfig()
    assert (defaults.fps, defaults.video, defaults.resume, defaults.use_async_save) == (30, True, False, True)
    assert (
        defaults.async_save_queue_size,
        defaults.async_save_timeout_s,
        defaults.async_save_max_retries,
    ) == (
        10,
        300,
        3,
    )


def test_yaml_config_file_with_flag_override(tmp_path: Path) -> None:
    path = tmp_path / "session.yaml"
    path.write_text(
        "robot:\n  type: sim\n  num_cameras: 1\n"
        "record:\n  repo_id: lab/from_yaml\n  single_task: Stack the blocks\n  fps: 10\n"
    )
    cfg = parse_config([f"--config_path={path}", "--record.fps=20"])
    assert cfg.record.repo_id == "lab/from_yaml" and cfg.record.single_task == "Stack the blocks"
    assert cfg.record.fps == 20 and cfg.robot.num_cameras == 1


def test_bad_yaml_value_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "session.yaml"
    path.write_text("record:\n  repo_id: lab/x\n  single_task: t\n  fps: -1\n")
    with pytest.raises(ConfigError, match=r"--record\.fps"):
        parse_config([f"--config_path={path}"])


def test_default_root_follows_dorobot_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOROBOT_HOME", str(tmp_path))
    cfg = parse_config(GOOD)
    assert cfg.record.dataset_root == tmp_path / "dataset" / "lab" / "demo"
    monkeypatch.delenv("DOROBOT_HOME")
    assert parse_config(GOOD).record.dataset_root == Path.home() / "DoRobot" / "dataset" / "lab" / "demo"


def test_preview_without_opencv_or_display_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "cv2" else real_find_spec(name)
    )
    with pytest.raises(ConfigError, match=r"needs OpenCV: pip install"):
        parse_config([*GOOD, "--record.display=opencv"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ConfigError, match=r"needs a display"):
        parse_config([*GOOD, "--record.display=opencv"])


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--record.preset=bogus"], "--record.preset=bogus"),
        (["--record.vcodec=libsvtav1", "--record.preset=99"], "--record.preset=99"),
        (["--record.vcodec=libsvtav1", "--record.preset=bogus"], "--record.preset=bogus"),
        (["--record.vcodec=mpeg4", "--record.preset=slow"], "--record.preset=slow"),
    ],
)
def test_encoder_refusing_a_setting_stops_before_recording(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    root = tmp_path / "ds"
    proc = run_record(*GOOD, *flags, f"--record.root={root}", *SHORT)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}: "), proc.stderr
    assert "refuses" in lines[0] or "ignores" in lines[0], lines[0]
    assert not root.exists()


def test_encoder_settings_it_accepts_pass() -> None:
    for flags in (
        [],
        ["--record.vcodec=libsvtav1", "--record.preset=12", "--record.crf=30"],
        ["--record.vcodec=libsvtav1"],  # no preset chosen: its fastest, not libx264's "ultrafast"
        ["--record.vcodec=mpeg4"],  # the default preset and crf mean nothing to it: not the operator's
        ["--record.preset=veryslow", "--record.video=false"],
    ):
        parse_config([*GOOD, *flags])


def test_dataset_folder_that_is_a_file_names_the_flag(tmp_path: Path) -> None:
    notes = tmp_path / "demo.txt"
    notes.write_text("notes")
    for root, says in (
        (notes, f"--record.root={notes} is a file, not a folder"),
        (notes / "sub", f"--record.root={notes}/sub: {notes} is a file, not a folder"),
    ):
        proc = run_record(*GOOD, f"--record.root={root}", *SHORT)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = error_lines(proc.stderr)
        assert len(lines) == 1 and lines[0] == f"error: {says} (see --help)", proc.stderr
    assert (tmp_path / "demo.txt").read_text() == "notes"


@pytest.mark.parametrize("root", ["/proc/dorobot_ds", "/sys/dorobot_ds", "/proc/self/dorobot_ds"])
def test_dataset_folder_on_a_system_file_system_is_refused(root: str) -> None:
    proc = run_record(*GOOD, f"--record.root={root}", *SHORT)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: --record.root={root} cannot hold a dataset: ")
    assert "not storage" in lines[0] and "No such file" not in lines[0], lines[0]


def test_dataset_folder_in_a_folder_that_cannot_be_written(small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    root = small_disk / "new" / "ds"
    proc = run_record(*GOOD, f"--record.root={root}", *SHORT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: --record.root={root} cannot hold a dataset: "), lines[0]
    assert "Read-only file system" in lines[0] and str(small_disk) in lines[0]


@pytest.mark.parametrize("repo_id", ["demo", "lab/", "/demo", "a/b/c"])
def test_repo_id_must_be_user_slash_name(repo_id: str) -> None:
    with pytest.raises(ConfigError, match=r"--record\.repo_id=.* must look like 'user/name'"):
        parse_config(["--record.single_task=x", f"--record.repo_id={repo_id}"])


def _help_entries(text: str) -> dict[str, str]:
    """Option name -> its help text, from argparse's option listing."""
    entries: dict[str, str] = {}
    current = None
    for line in text.split("\n\n", 1)[1].splitlines():
        match = re.match(r"^  (--[\w.]+)(?: [\w\[\]{},]+)?(?:\s{2,}(.*))?$", line)
        if match:
            current = match.group(1)
            if current in entries:
                entries[current + "#dup"] = ""
            entries[current] = match.group(2) or ""
        elif current and line.startswith("    ") and line.strip():
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


def test_help_lists_each_flag_once_with_its_text_and_default() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "operating_platform.core.main", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    entries = _help_entries(text)
    assert not [name for name in entries if name.endswith("#dup")], text
    assert "--record" not in entries and "--robot" not in entries, text
    assert "[--record str]" not in text and "[--robot str]" not in text
    assert "(default: sim)" in entries["--robot.type"], entries["--robot.type"]
    assert "(default: )" not in text and "(default: None)" not in text, text
    for flag in ("--record.repo_id", "--record.single_task", "--record.root", "--config_path"):
        assert entries[flag].strip(), flag
    for name in ("--robot.camera_width", "--robot.camera_height", "--robot.num_cameras", "--robot.seed"):
        assert len(entries[name].split()) > 3, (name, entries[name])
    fields = [f.name for f in dataclasses.fields(RecordConfig)]
    assert sorted(n for n in entries if n.startswith("--record.")) == sorted(f"--record.{f}" for f in fields)
    for needed in ("DOROBOT_PLUGINS", "dorobot recover", "--config_path", "examples/session.yaml"):
        assert needed in text, needed
    for key in ("n or →", "d or ←", "space", "t "):
        assert key in text, key


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "session.yaml"


def test_example_yaml_file_records_a_session(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = run_record(
        f"--config_path={EXAMPLE}",
        f"--record.root={root}",
        "--record.num_episodes=1",
        "--record.episode_time_s=0.5",
        "--robot.camera_width=160",
        "--robot.camera_height=120",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_valid(root, episodes=1)
    cfg = parse_config([f"--config_path={EXAMPLE}"])
    tasks = [json.loads(line)["task"] for line in (root / "meta/tasks.jsonl").read_text().splitlines()]
    assert tasks == [cfg.record.single_task]
    info = json.loads((root / "meta/info.json").read_text())
    assert info["fps"] == cfg.record.fps and cfg.robot.type == "sim"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "--config_path=examples/session.yaml" in readme
