"""`dorobot info ROOT [--json]`: every figure against the files on disk, in both layouts, and the
projection of a dataset whose compression is under way (one episode re-encoded to AV1 by hand).

The expected figures are computed here from the files themselves (os.stat, PyAV, pyarrow), not
by the code under test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pyarrow.parquet as pq
import pytest

from operating_platform.dataset.realtime import without_realtime
from tests.conftest import episode_lengths, error_lines, run_session

TOP = "observation.images.image_top"
WRIST = "observation.images.image_wrist"
SETTINGS = ".dorobot/compress/settings.json"
AV1_SETTINGS = {"codec": "av1", "encoder": "libsvtav1", "preset": "8", "crf": 30}
FPS = 30
# A small video file cap, so that the v3.0 session's episodes are packed into several files.
PACKED = "--record.video_files_size_in_mb=0.15"


def _info(root: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "info", str(root), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _info_json(root: Path) -> dict[str, Any]:
    done = _info(root, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Three one-second episodes of two 160x120 cameras in a layout, recorded once per module."""
    base = tmp_path_factory.mktemp("info")
    recorded: dict[str, Path] = {}

    def session(layout: str) -> Path:
        if layout not in recorded:
            root = base / layout
            flags = [f"--record.format={layout}", *([PACKED] if layout == "v3.0" else [])]
            done = run_session(root, *flags, episodes=3)
            assert done.returncode == 0, done.stdout + done.stderr
            recorded[layout] = root
        return recorded[layout]

    return session


@pytest.fixture(params=["v2.1", "v3.0"])
def recorded(request: pytest.FixtureRequest, sessions: Callable[[str], Path]) -> Path:
    return sessions(request.param)


@pytest.fixture
def v21_copy(sessions: Callable[[str], Path], tmp_path: Path) -> Path:
    """A copy of the v2.1 session, to edit by hand."""
    return Path(shutil.copytree(sessions("v2.1"), tmp_path / "ds"))


def _video_files(root: Path) -> dict[str, list[tuple[Path, list[int]]]]:
    """Per camera, each video file and the episodes it holds, as the layout (FORMAT.md) says."""
    info = json.loads((root / "meta/info.json").read_text())
    cameras = [k for k, ft in info["features"].items() if ft["dtype"] == "video"]
    files: dict[str, dict[Path, list[int]]] = {key: {} for key in cameras}
    if info["codebase_version"] == "v2.1":
        for index in range(info["total_episodes"]):
            for key in cameras:
                path = root / f"videos/chunk-000/{key}/episode_{index:06d}.mp4"
                files[key][path] = [index]
    else:
        table = pq.read_table(sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))[0])
        for row in table.to_pylist():
            for key in cameras:
                chunk, file = row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]
                path = root / f"videos/{key}/chunk-{chunk:03d}/file-{file:03d}.mp4"
                files[key].setdefault(path, []).append(row["episode_index"])
    return {key: list(by_path.items()) for key, by_path in files.items()}


def _codec(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.codec.canonical_name


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _minutes(frames: int) -> float:
    return frames / FPS / 60


def _reencode_to_av1(path: Path) -> None:
    """Replace an mp4 by its AV1 re-encoding: same frames, same time base and timestamps."""
    new = path.with_name(path.name + ".av1.mp4")
    # In this process, SVT-AV1 run by root would put the test process under SCHED_FIFO, and
    # every recorder the suite starts afterwards with it.
    with without_realtime(), av.open(str(path)) as src, av.open(str(new), "w") as dst:
        source = src.streams.video[0]
        out = dst.add_stream("libsvtav1", rate=source.average_rate, options={"preset": "12", "crf": "30"})
        out.width, out.height, out.pix_fmt = (
            source.codec_context.width,
            source.codec_context.height,
            "yuv420p",
        )
        out.time_base = source.time_base
        out.codec_context.time_base = source.time_base
        for frame in src.decode(source):
            frame.pict_type = av.video.frame.PictureType.NONE  # let the encoder place its keyframes
            for packet in out.encode(frame):
                dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    os.replace(new, path)


def _packet_times(path: Path) -> tuple[Any, list[int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.time_base, sorted(p.pts for p in container.demux(stream) if p.size)


# -- figures against the disk ---------------------------------------------------------------------


def test_json_figures_are_the_files_on_disk(recorded: Path) -> None:
    report = _info_json(recorded)
    info = json.loads((recorded / "meta/info.json").read_text())
    lengths = episode_lengths(recorded)
    assert report["root"] == str(recorded)
    assert report["codebase_version"] == recorded.name
    assert (report["episodes"], report["frames"], report["fps"]) == (3, sum(lengths), FPS)
    assert report["frames"] == info["total_frames"]
    assert report["minutes"] == pytest.approx(_minutes(sum(lengths)))
    assert report["compression_target"] is None

    files = _video_files(recorded)
    assert list(report["cameras"]) == [TOP, WRIST] == list(files)
    if recorded.name == "v3.0":
        # The cap packed the three episodes into more than one file, several in one of them.
        assert all(1 < len(held) < 3 for held in files.values()), files
    video_bytes = 0
    for key, held in files.items():
        camera = report["cameras"][key]
        size = sum(path.stat().st_size for path, _ in held)
        frames = sum(lengths)
        video_bytes += size
        assert camera["files"] == len(held)
        assert (camera["episodes"], camera["frames"], camera["bytes"]) == (3, frames, size)
        assert camera["minutes"] == pytest.approx(_minutes(frames))
        assert camera["bytes_per_minute"] == pytest.approx(size / _minutes(frames))
        assert {_codec(path) for path, _ in held} == {"h264"}
        assert camera["codecs"] == [
            {"codec": "h264", "episodes": 3, "frames": frames, "minutes": camera["minutes"], "bytes": size}
        ]
        # No target: nothing waits, nothing will change.
        assert camera["compressed"] is None
        assert camera["waiting"] == {"episodes": 0, "frames": 0, "minutes": 0.0, "bytes": 0}
        assert camera["projected_bytes"] == size
        assert camera["unreadable"] == []

    data, meta = _folder_bytes(recorded / "data"), _folder_bytes(recorded / "meta")
    assert report["totals"] == {
        "video_bytes": video_bytes,
        "data_bytes": data,
        "meta_bytes": meta,
        "bytes": video_bytes + data + meta,
        "projected_video_bytes": video_bytes,
        "projected_bytes": video_bytes + data + meta,
    }


def test_text_report_says_the_same(recorded: Path) -> None:
    done = _info(recorded)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    frames = sum(episode_lengths(recorded))
    assert lines[0] == (
        f"{recorded}: LeRobot {recorded.name}, 3 episodes, {frames} frames at 30 fps, "
        f"{_minutes(frames):.2f} min"
    )
    assert lines[1] == "compression: no target (.dorobot/compress/settings.json absent)"
    for key in (TOP, WRIST):
        at = lines.index(f"{key}:")
        assert lines[at + 1] == "  codec      h264 (3 episodes)"
        assert lines[at + 2].startswith("  size       ") and "KB" in lines[at + 2]
    assert lines[-1].startswith("total: ")


def test_a_target_in_the_recorded_codec_leaves_nothing_waiting(recorded: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(recorded, tmp_path / "ds"))
    (root / SETTINGS).parent.mkdir(parents=True)
    (root / SETTINGS).write_text(json.dumps({"codec": "h264", "encoder": "libx264", "crf": 23}))
    report = _info_json(root)
    assert report["compression_target"] == {"codec": "h264", "encoder": "libx264", "crf": 23}
    for camera in report["cameras"].values():
        assert camera["compressed"] == {k: camera[k] for k in ("episodes", "frames", "minutes", "bytes")}
        assert camera["waiting"]["episodes"] == 0
        assert camera["projected_bytes"] == camera["bytes"]
    assert report["totals"]["projected_bytes"] == report["totals"]["bytes"]


def test_all_waiting_projection_is_unknown(recorded: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(recorded, tmp_path / "ds"))
    (root / SETTINGS).parent.mkdir(parents=True)
    (root / SETTINGS).write_text(json.dumps(AV1_SETTINGS))
    report = _info_json(root)
    for key, held in _video_files(root).items():
        camera = report["cameras"][key]
        # Whole files wait: in v3.0 every episode of a file has the file's codec.
        assert camera["waiting"] == {k: camera[k] for k in ("episodes", "frames", "minutes", "bytes")}
        assert camera["waiting"]["bytes"] == sum(path.stat().st_size for path, _ in held)
        assert camera["compressed"] == {"episodes": 0, "frames": 0, "minutes": 0.0, "bytes": 0}
        assert camera["projected_bytes"] is None
    assert report["totals"]["projected_video_bytes"] is None
    assert report["totals"]["projected_bytes"] is None
    text = _info(root).stdout
    assert text.count("  projected  unknown until the first episode is compressed") == 2, text


# -- compression under way --------------------------------------------------------------------------


def test_one_compressed_episode_projects_the_others(v21_copy: Path) -> None:
    root = v21_copy
    (root / SETTINGS).parent.mkdir(parents=True)
    (root / SETTINGS).write_text(json.dumps(AV1_SETTINGS))
    videos = {key: [path for path, _ in held] for key, held in _video_files(root).items()}
    compressed = videos[TOP][0]
    before = _packet_times(compressed)
    _reencode_to_av1(compressed)
    assert _codec(compressed) == "av1" and _packet_times(compressed) == before

    report = _info_json(root)
    assert report["compression_target"] == AV1_SETTINGS
    lengths = episode_lengths(root)

    top = report["cameras"][TOP]
    av1_bytes = compressed.stat().st_size
    h264_bytes = sum(path.stat().st_size for path in videos[TOP][1:])
    waiting_frames = sum(lengths[1:])
    assert top["codecs"] == [
        {
            "codec": "av1",
            "episodes": 1,
            "frames": lengths[0],
            "minutes": _minutes(lengths[0]),
            "bytes": av1_bytes,
        },
        {
            "codec": "h264",
            "episodes": 2,
            "frames": waiting_frames,
            "minutes": _minutes(waiting_frames),
            "bytes": h264_bytes,
        },
    ]
    assert top["bytes"] == av1_bytes + h264_bytes
    assert top["compressed"] == {
        "episodes": 1,
        "frames": lengths[0],
        "minutes": _minutes(lengths[0]),
        "bytes": av1_bytes,
    }
    assert top["waiting"]["episodes"] == 2 and top["waiting"]["bytes"] == h264_bytes
    assert top["waiting"]["minutes"] == pytest.approx(_minutes(waiting_frames))
    rate = av1_bytes / _minutes(lengths[0])
    expected_top = av1_bytes + _minutes(waiting_frames) * rate
    assert top["projected_bytes"] == pytest.approx(expected_top, abs=1)
    assert top["projected_bytes"] < top["bytes"]  # AV1 at crf 30 is smaller than x264 ultrafast

    # No episode of the other camera is compressed yet: no rate to project with.
    wrist = report["cameras"][WRIST]
    assert wrist["waiting"]["episodes"] == 3
    assert wrist["compressed"]["episodes"] == 0
    assert wrist["projected_bytes"] is None
    assert report["totals"]["projected_bytes"] is None

    lines = _info(root).stdout.splitlines()
    at = lines.index(f"{TOP}:")
    assert lines[at + 1] == "  codec      av1 (1 episode), h264 (2 episodes)"
    assert lines[at + 3].startswith(f"  waiting    2 episodes, {_minutes(waiting_frames):.2f} min")
    assert lines[at + 4].startswith("  projected  ") and "unknown" not in lines[at + 4]
    at = lines.index(f"{WRIST}:")
    assert lines[at + 4] == "  projected  unknown until the first episode is compressed"


def test_unreadable_settings_are_no_target(v21_copy: Path) -> None:
    (v21_copy / SETTINGS).parent.mkdir(parents=True)
    (v21_copy / SETTINGS).write_text('{"codec": "av1", ')
    report = _info_json(v21_copy)
    assert report["compression_target"] is None
    assert all(camera["waiting"]["episodes"] == 0 for camera in report["cameras"].values())


def test_a_missing_video_is_reported_and_kept_out_of_the_projection(v21_copy: Path) -> None:
    (v21_copy / SETTINGS).parent.mkdir(parents=True)
    (v21_copy / SETTINGS).write_text(json.dumps({"codec": "h264"}))
    videos = [path for path, _ in _video_files(v21_copy)[TOP]]
    videos[1].unlink()
    done = _info(v21_copy, "--json")
    assert done.returncode == 0, done.stderr
    top = json.loads(done.stdout)["cameras"][TOP]
    rel = videos[1].relative_to(v21_copy).as_posix()
    assert top["unreadable"] == [f"{rel}: missing"]
    assert [(c["codec"], c["episodes"]) for c in top["codecs"]] == [("h264", 2), (None, 1)]
    kept = videos[0].stat().st_size + videos[2].stat().st_size
    assert top["bytes"] == top["projected_bytes"] == kept
    assert (top["compressed"]["episodes"], top["waiting"]["episodes"]) == (2, 0)
    assert f"  unreadable {rel}: missing" in _info(v21_copy).stdout.splitlines()


# -- no cameras, bad roots --------------------------------------------------------------------------


def test_dataset_without_cameras(tmp_path: Path) -> None:
    root = tmp_path / "joints"
    done = run_session(root, "--robot.num_cameras=0", episodes=1)
    assert done.returncode == 0, done.stdout + done.stderr
    report = _info_json(root)
    frames = sum(episode_lengths(root))
    assert (report["episodes"], report["frames"], report["cameras"]) == (1, frames, {})
    data = _folder_bytes(root / "data")
    assert report["totals"]["video_bytes"] == 0 and report["totals"]["data_bytes"] == data > 0
    text = _info(root)
    assert text.returncode == 0
    assert text.stdout.splitlines()[0].startswith(f"{root}: LeRobot v2.1, 1 episode, {frames} frames")
    assert "no cameras" in text.stdout.splitlines()


@pytest.mark.parametrize("case", ["missing", "empty", "file"])
def test_bad_root_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    root = tmp_path / "ds"
    if case == "empty":
        root.mkdir()
    elif case == "file":
        root.write_text("not a dataset")
    for flags in ((), ("--json",)):
        done = _info(root, *flags)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stdout == ""
        expected = (
            f"error: {root} is not a dataset: meta/info.json is missing"
            if case == "empty"
            else f"error: {root} is not a folder"
        )
        assert error_lines(done.stderr) == [expected]


def test_usage_lists_info() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "  info     " in done.stdout
