"""`--record.display=rerun`: a real recording streams to a real Rerun server (`rerun --save`,
started here, writing what it receives to an .rrd), read back with rerun's own reader."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import rerun_cli

from operating_platform.dataset.reader import DatasetReader
from operating_platform.robots import make_robot
from operating_platform.robots.sim import JOINTS, SimRobotConfig
from tests.conftest import PLUGINS_DIR, assert_valid, error_lines, run_record

# The viewer binary itself, not the Python launcher in bin/: a signal then reaches the server.
RERUN = Path(rerun_cli.__file__).parent / "rerun"


# -- reading an .rrd back (also used by test_view.py) -----------------------------------------------


def read_rrd(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row logged, by entity path (static rows under `<path>#static`).

    A row maps column names to values: timelines as ints (nanoseconds for times), images'
    `Image:buffer` and `EncodedImage:blob` as numpy arrays, the rest as Python values.
    """
    from rerun.chunk import RrdReader

    rows: dict[str, list[dict[str, Any]]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a server's .rrd has no footer: read by scanning, fine here
        chunks = list(RrdReader(path).stream())
    for chunk in chunks:
        batch = chunk.to_record_batch()
        key = chunk.entity_path + ("#static" if chunk.is_static else "")
        for i in range(batch.num_rows):
            row: dict[str, Any] = {}
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                if name.startswith("rerun.controls"):
                    continue
                value = column[i]
                if name in ("Image:buffer", "EncodedImage:blob"):
                    row[name] = value.values.flatten().to_numpy(zero_copy_only=False)
                elif pa.types.is_temporal(column.type):
                    row[name] = value.value
                else:
                    row[name] = value.as_py()
            rows.setdefault(key, []).append(row)
    return rows


def image_size(row: dict[str, Any]) -> tuple[int, int]:
    """(width, height) of a logged `rr.Image` row."""
    fmt = row["Image:format"][0]
    return fmt["width"], fmt["height"]


# -- a Rerun server that saves what it receives ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RerunServer:
    addr: str
    rrd: Path
    proc: subprocess.Popen

    def finish(self) -> dict[str, list[dict[str, Any]]]:
        """Stop the server (it writes out what it received) and read it back."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        return read_rrd(self.rrd)


@contextmanager
def running_rerun_server(folder: Path) -> Iterator[RerunServer]:
    """A `rerun` process on a free local port, saving all it receives to `folder`/received.rrd."""
    port = free_port()
    rrd = folder / "received.rrd"
    log_path = folder / "rerun.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(RERUN), "--bind", "127.0.0.1", "--port", str(port), "--save", str(rrd)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None, log_path.read_text()
                    time.sleep(0.1)
            else:
                pytest.fail(f"rerun never listened on {port}: {log_path.read_text()}")
            yield RerunServer(f"127.0.0.1:{port}", rrd, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def rerun_server(tmp_path: Path) -> Iterator[RerunServer]:
    with running_rerun_server(tmp_path) as server:
        yield server


# -- the tests ---------------------------------------------------------------------------------------

CAMERAS = ("image_top", "image_wrist")


def _flags(root: Path, *extra: str) -> list[str]:
    return [
        "--robot.type=sim",
        "--robot.camera_width=640",
        "--robot.camera_height=480",
        "--record.repo_id=lab/live",
        f"--record.root={root}",
        "--record.single_task=Pick the cube",
        "--record.num_episodes=2",
        "--record.episode_time_s=1",
        "--record.reset_time_s=0",
        "--record.display=rerun",
        *extra,
    ]


def _sim_captures(count: int) -> list[dict[str, np.ndarray]]:
    robot = make_robot(SimRobotConfig(camera_width=640, camera_height=480))
    robot.open()
    try:
        return [robot.capture() for _ in range(count)]
    finally:
        robot.close()


def test_live_view_streams_downscaled_cameras_and_joints(tmp_path: Path, rerun_server: RerunServer) -> None:
    root = tmp_path / "ds"
    done = run_record(*_flags(root, f"--record.rerun_addr={rerun_server.addr}"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Live view: streaming to the Rerun viewer at {rerun_server.addr}" in done.stdout
    assert "Live view off" not in done.stdout
    assert_valid(root, episodes=2)
    received = rerun_server.finish()

    reader = DatasetReader.open(root)
    recorded = {
        key: {
            tuple(row)
            for i in range(2)
            for row in np.array(reader.episode_table(i).column(key).to_pylist(), np.float32).tolist()
        }
        for key in ("action", "observation.state")
    }
    joint_names = [f"{j}.pos" for j in JOINTS]
    for key in ("action", "observation.state"):
        assert received[f"/joints/{key}#static"][0]["SeriesLines:names"] == joint_names
        rows = received[f"/joints/{key}"]
        for row in rows:
            values = row["Scalars:scalars"]
            assert len(values) == 6
            # Each plotted point is a frame that went into the dataset, to the float32 bit.
            assert tuple(np.float32(values).tolist()) in recorded[key], (key, values)

    captures = _sim_captures(80)
    for camera in CAMERAS:
        key = f"observation.images.{camera}"
        # Half size, pixel for pixel what the robot captured: no copy, filter or codec between.
        shown = {captures[t][key][::2, ::2].tobytes(): t for t in range(len(captures))}
        rows = received[f"/cameras/{camera}"]
        assert rows, camera
        ticks = []
        for row in rows:
            assert image_size(row) == (320, 240)
            assert row["Image:buffer"].size == 320 * 240 * 3
            ticks.append(shown[row["Image:buffer"].tobytes()])
        assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks), ticks  # each new frame once
        # The rate is capped: far fewer than the 60 frames recorded, sent at least 0.1 s apart.
        assert len(rows) < 60
        times = np.array([row["time"] for row in rows]) / 1e9
        assert np.diff(times).min() >= 0.1 - 0.002, np.diff(times)


def test_viewer_unreachable_recording_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    addr = f"127.0.0.1:{free_port()}"  # nothing listens there
    done = run_record(*_flags(root, f"--record.rerun_addr={addr}"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_valid(root, episodes=2)
    said = [line for line in (done.stdout + done.stderr).splitlines() if "rerun" in line.lower()]
    assert len(said) == 1, said
    assert said[0].startswith("Live view off: no Rerun viewer at " + addr), said
    assert "recording goes on" in said[0]


def test_local_viewer_that_cannot_start_recording_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    # A display is named, so the viewer is started; but no X server is there, so it fails.
    done = run_record(*_flags(root), env={"DISPLAY": ":97", "WAYLAND_DISPLAY": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert_valid(root, episodes=2)
    said = [line for line in (done.stdout + done.stderr).splitlines() if "rerun" in line.lower()]
    assert said == [
        "Live view off: the Rerun viewer did not start: Failed to open connection to X server; "
        "recording goes on without it"
    ], done.stdout + done.stderr


def _record_without_rerun(*flags: str) -> subprocess.CompletedProcess:
    """The real recorder in a process where rerun-sdk cannot be imported."""
    code = (
        "import sys; sys.modules['rerun'] = None\n"
        "from operating_platform.core.main import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *flags],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(PLUGINS_DIR)},
    )


def test_missing_rerun_sdk_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    done = _record_without_rerun(*_flags(root, "--record.rerun_addr=127.0.0.1:9876"))
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        "error: --record.display=rerun needs rerun-sdk: pip install 'operating_platform[rerun]' (see --help)"
    ]
    assert not root.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--record.rerun_addr=localhost"], "--record.rerun_addr: 'localhost' is not HOST:PORT"),
        (["--record.rerun_addr=host:99999"], "is not HOST:PORT"),
        (
            ["--record.display=none", "--record.rerun_addr=127.0.0.1:9876"],
            "only used with --record.display=rerun",
        ),
        ([], "needs a display ($DISPLAY is not set"),
    ],
)
def test_bad_rerun_flags_are_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    root = tmp_path / "ds"
    env = {"DISPLAY": "", "WAYLAND_DISPLAY": ""}
    done = run_record(*_flags(root), *flags, env=env)
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not root.exists()
