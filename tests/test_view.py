"""`dorobot view ROOT --episode N`: an episode of a recorded dataset and of both LeRobot reference
datasets, replayed into an .rrd (or a running Rerun server) and read back with rerun's reader."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from operating_platform.dataset.reader import DatasetReader
from tests.conftest import REFERENCE, REFERENCE_V3, error_lines, run_session
from tests.test_rerun_view import read_rrd, running_rerun_server


def _view(*args: str, hide_rerun: bool = False) -> subprocess.CompletedProcess:
    """The real `dorobot view`; with `hide_rerun`, in a process where rerun-sdk cannot be imported."""
    hide = "sys.modules['rerun'] = None\n" if hide_rerun else ""
    run_cli = "from operating_platform.cli import main\nsys.exit(main(['view', *sys.argv[1:]]))"
    code = f"import sys\n{hide}{run_cli}"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def _jpeg(row: dict[str, Any]) -> np.ndarray:
    assert row["EncodedImage:media_type"] == ["image/jpeg"]
    return np.asarray(Image.open(io.BytesIO(row["EncodedImage:blob"].tobytes())).convert("RGB"))


def _check_episode(received: dict[str, list[dict[str, Any]]], root: Path, index: int) -> None:
    """What `dorobot view` sent is episode `index` of `root`, every frame and joint value of it."""
    reader = DatasetReader.open(root)
    entry = reader.episode(index)
    table = reader.episode_table(index)
    stamps_ns = np.round(table.column("timestamp").to_numpy().astype(np.float64) * 1e9)
    assert received["/task#static"][0]["TextDocument:text"] == ["\n".join(entry.tasks)]
    for key in reader.video_keys:
        rows = received[f"/cameras/{key.removeprefix('observation.images.')}"]
        assert len(rows) == entry.length, key
        assert [row["frame_index"] for row in rows] == list(range(entry.length))
        assert np.abs(np.array([row["timestamp"] for row in rows]) - stamps_ns).max() <= 1
        height, width = reader.features[key]["shape"][:2]
        for row, frame in zip(rows, reader.frames(index, key), strict=True):
            shown = _jpeg(row)
            assert shown.shape == (height, width, 3)
            assert _psnr(shown, frame) > 30
    for key in ("action", "observation.state"):
        names = reader.features[key]["names"]
        assert received[f"/joints/{key}#static"][0]["SeriesLines:names"] == names
        rows = received[f"/joints/{key}"]
        assert [row["frame_index"] for row in rows] == list(range(entry.length))
        sent = np.array([row["Scalars:scalars"] for row in rows])
        stored = np.array(table.column(key).to_pylist(), np.float32)
        assert np.array_equal(sent.astype(np.float32), stored), key


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recorded") / "ds"
    done = run_session(root, episodes=2)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_view_a_recorded_episode(recorded: Path, tmp_path: Path) -> None:
    rrd = tmp_path / "episode.rrd"
    done = _view(str(recorded), "--episode", "1", "--save", str(rrd))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"✓ episode 1 of {recorded} (30 frames, 2 cameras) sent to {rrd}"
    assert done.stderr == ""
    received = read_rrd(rrd)
    assert len(received["/cameras/image_top"]) == len(received["/cameras/image_wrist"]) == 30
    _check_episode(received, recorded, 1)


@pytest.mark.parametrize("root", [REFERENCE, REFERENCE_V3], ids=["v2.1", "v3.0"])
def test_view_a_reference_episode(root: Path, tmp_path: Path) -> None:
    rrd = tmp_path / "episode.rrd"
    done = _view(str(root), "--episode=1", f"--save={rrd}")
    assert done.returncode == 0, done.stderr
    received = read_rrd(rrd)
    assert len(received["/cameras/cam"]) == 20
    assert received["/joints/action#static"][0]["SeriesLines:names"] == [f"j{i}" for i in range(6)]
    _check_episode(received, root, 1)


def test_view_to_a_running_viewer(tmp_path: Path) -> None:
    with running_rerun_server(tmp_path) as server:
        done = _view(str(REFERENCE_V3), "--episode", "0", "--rerun_addr", server.addr)
        assert done.returncode == 0, done.stderr
        assert f"sent to the Rerun viewer at {server.addr}" in done.stdout
        received = server.finish()
    _check_episode(received, REFERENCE_V3, 0)


@pytest.mark.parametrize(
    ("episode", "message"),
    [
        ("2", "episode 2 is not in {root}: it has episodes 0 to 1"),
        ("-1", "episode -1 is not in {root}: it has episodes 0 to 1"),
        ("two", "--episode=two is not a number; {root} has episodes 0 to 1"),
    ],
)
def test_bad_episode_is_one_line(episode: str, message: str, tmp_path: Path) -> None:
    rrd = tmp_path / "episode.rrd"
    done = _view(str(REFERENCE), f"--episode={episode}", "--save", str(rrd))
    assert done.returncode == 2
    assert error_lines(done.stderr) == ["error: " + message.format(root=REFERENCE)]
    assert not rrd.exists()


def test_missing_rerun_is_one_line(tmp_path: Path) -> None:
    rrd = tmp_path / "episode.rrd"
    done = _view(str(REFERENCE), "--save", str(rrd), hide_rerun=True)
    assert done.returncode == 1
    assert error_lines(done.stderr) == [
        "error: dorobot view needs rerun-sdk: pip install 'operating_platform[rerun]'"
    ]
    assert not rrd.exists()


def test_not_a_dataset_is_one_line(tmp_path: Path) -> None:
    done = _view(str(tmp_path), "--save", str(tmp_path / "episode.rrd"))
    assert done.returncode == 1
    assert error_lines(done.stderr) == [f"error: {tmp_path} is not a dataset: meta/info.json is missing"]


def test_unreachable_viewer_is_one_line(tmp_path: Path) -> None:
    from tests.test_rerun_view import free_port

    port = free_port()
    done = _view(str(REFERENCE), "--rerun_addr", f"127.0.0.1:{port}")
    assert done.returncode == 1
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: no Rerun viewer at 127.0.0.1:{port}"), lines


def test_usage_lists_view() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "  view     replay an episode in Rerun" in done.stdout
