"""A robot that cannot be reached stops the session before anything is written."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import assert_valid, error_lines, run_session

PLUGIN = {"DOROBOT_PLUGINS": "faulty_robot"}


def test_failed_connect_leaves_no_dataset_and_the_retry_works(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = run_session(
        root, "--robot.type=faulty_sim", "--robot.fault=connect", "--robot.port=/dev/ttyUSB7", env=PLUGIN
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("error: ") and "faulty_sim" in errors[0], errors
    assert "/dev/ttyUSB7" in errors[0] and "check" in errors[0].lower(), errors
    assert not root.exists(), sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    # Plugged in again: the same command, in the same place, records.
    proc = run_session(root, "--robot.type=faulty_sim", "--robot.fault=none", episodes=1, env=PLUGIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_valid(root, episodes=1)
