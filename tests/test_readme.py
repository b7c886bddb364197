"""The README's examples run as written."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_valid

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _python_block(first_line: str) -> str:
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no python block starting with {first_line!r} in the README")


def _bash_block(first_word: str) -> str:
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        if block.startswith(first_word):
            return block.strip()
    raise AssertionError(f"no bash block starting with {first_word!r} in the README")


def _reader_env(**extra: str) -> dict[str, str]:
    """A reader's shell with this environment active: its `dorobot` and `dora` on PATH, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DOROBOT_PLUGINS")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def _typed(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`command` as a reader types it in `cwd`."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=_reader_env(**env),
        stdin=subprocess.DEVNULL,
    )


def test_own_robot_example_records(tmp_path: Path) -> None:
    # As a reader would: my_arm.py in the folder they are in, the command typed as shown, the
    # installed `dorobot` on PATH, nothing on PYTHONPATH.
    work = tmp_path / "lab"
    work.mkdir()
    (work / "my_arm.py").write_text(_python_block("# my_arm.py"))
    command = _bash_block("DOROBOT_PLUGINS=my_arm dorobot record")
    home = tmp_path / "home"
    proc = _typed(command, work, DOROBOT_HOME=str(home))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = home / "dataset" / "lab" / "pick"
    assert_valid(root)
    assert "observation.images.front" in (root / "meta/info.json").read_text()


@pytest.mark.parametrize("how", ["file", "-c"])
def test_python_example_records_two_episodes(tmp_path: Path, how: str) -> None:
    # As users run it: saved as a script without a `__main__` guard, from a fresh folder.
    script = _python_block("import time")
    (tmp_path / "api.py").write_text(script)
    command = ["api.py"] if how == "file" else ["-c", script]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["0 2"], proc.stdout + proc.stderr
    assert_valid(tmp_path / "pick", episodes=2)
    assert not (tmp_path / "pick/.dorobot/failed").exists()


def test_simulated_dataflow_runs_as_the_readme_shows(tmp_path: Path) -> None:
    # The two terminals of the README, typed as shown in a clone (the example folder copied, so
    # dora's run files stay out of the repository), with this environment active.
    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "examples" / "dorobot_sim", tmp_path / "examples" / "dorobot_sim")
    dataflow = _bash_block("python3 -m venv .venv && . .venv/bin/activate").splitlines()[-1]
    record = _bash_block(". .venv/bin/activate && dorobot record").removeprefix(". .venv/bin/activate && ")
    assert dataflow == "dora run examples/dorobot_sim/dataflow.yml"
    terminal_1 = subprocess.Popen(
        ["bash", "-c", dataflow],
        cwd=tmp_path,
        env=_reader_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        terminal_2 = _typed(record, tmp_path)
    finally:
        os.killpg(terminal_1.pid, signal.SIGINT)  # Ctrl-C, as the README says
        terminal_1.wait(30)
    assert terminal_2.returncode == 0, terminal_2.stdout + terminal_2.stderr
    assert_valid(tmp_path / "dora_dataset", episodes=2)


def _yaml_block(first_line: str) -> str:
    for block in re.findall(r"```yaml\n(.*?)```", README, flags=re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no yaml block starting with {first_line!r} in the README")


def test_so101_session_file_is_read_as_the_readme_says(tmp_path: Path) -> None:
    # Saved as the README names it and read by the program (the arms and cameras themselves need
    # hardware; LeRobot's device API is the tests' stand-in, as LeRobot is not installed here).
    (tmp_path / "so101.yaml").write_text(_yaml_block("# so101.yaml"))
    standins = Path(__file__).resolve().parent / "standins"
    path = os.pathsep.join(str(standins / part) for part in ("lerobot_api", "devices"))
    check = (
        "from operating_platform.core.configs import parse_config\n"
        "cfg = parse_config(['--config_path=so101.yaml'])\n"
        "print(cfg.robot.type, sorted(cfg.robot.cameras), cfg.robot.robot['port'], cfg.record.repo_id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_reader_env(PYTHONPATH=path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["lerobot", "['top',", "'wrist']", "/dev/ttyACM0", "lab/pick_cube"]
