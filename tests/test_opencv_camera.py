"""OpenCV cameras on any robot, read from real video files, and `dorobot find-cameras`.

The files are made here with PyAV, every frame recognisable: its index is stamped in eight big
coloured blocks (one bit each) over a texture with sensor-like noise. A camera reading a file
counts the frames it read in `Arrival.seq`, so `seq % frames` is the file frame a recorded frame
must show.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from operating_platform.cameras import CameraError, make_camera
from operating_platform.cameras import opencv as opencv_module
from operating_platform.cameras.find import find_cameras_main
from operating_platform.cameras.opencv import OpenCVCameraConfig, import_cv2
from operating_platform.core.configs import parse_config
from operating_platform.core.record_config import ConfigError
from tests.conftest import (
    FAST,
    assert_valid,
    episode_lengths,
    error_lines,
    run_record,
    start_record,
    wait_for_line,
)

W, H = 160, 120
# name: (frames in the file, seed). Each loops within a two-episode session.
FILES = {"top": (30, 1), "side": (10, 2)}
GOOD = ["--record.repo_id=lab/cams", "--record.single_task=Pick"]
# Mean absolute error of a recorded frame against its source: x264 at crf 23 on noisy frames
# stays near 10; any other frame of the file is over 20 away.
MATCH_MAE = 15.0


def source_frame(index: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    ys, xs = np.mgrid[0:H, 0:W]
    texture = (40 * np.sin(xs / (7 + seed)) + 30 * np.cos(ys / 5)).astype(np.int16)
    bits = ((index >> np.arange(8)) & 1).reshape(2, 4, 1)
    # Colours that red and blue swapped would change: an image in BGR order matches nothing.
    blocks = np.where(bits, [200, 140, 40], [40, 90, 170]).repeat(H // 2, axis=0).repeat(W // 4, axis=1)
    image = blocks + texture[..., None] + rng.integers(-20, 21, (H, W, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_video(path: Path, frames: int, seed: int, fps: int = 30) -> None:
    # Lossless, full chroma: what OpenCV decodes is the generated frame, up to rounding.
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv444p"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for i in range(frames):
            image = av.VideoFrame.from_ndarray(source_frame(i, seed), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def match(frames: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the index of the file frame it is closest to, and its mean absolute error."""
    count, seed = FILES[name]
    sources = np.stack([source_frame(i, seed) for i in range(count)]).astype(np.int16)
    errors = np.abs(frames[:, None].astype(np.int16) - sources[None]).mean(axis=(2, 3, 4))
    return errors.argmin(axis=1), errors.min(axis=1)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    paths = {name: folder / f"{name}.mp4" for name in FILES}
    for name, (frames, seed) in FILES.items():
        write_video(paths[name], frames, seed)
    return paths


def cameras_flag(videos: dict[str, Path]) -> str:
    # The side camera is throttled to 10 fps: a 30 fps recorder sees each of its frames 3 times.
    return (
        f"--robot.cameras={{top: {{index_or_path: {videos['top']}}}, "
        f"side: {{type: opencv, index_or_path: {videos['side']}, fps: 10}}}}"
    )


def timing(root: Path, episode: int) -> dict[str, np.ndarray]:
    table = pq.read_table(root / ".dorobot" / "timing" / f"episode_{episode:06d}.parquet")
    return {name: table.column(name).to_numpy() for name in table.column_names}


def test_every_recorded_frame_is_the_file_frame_its_seq_names(
    tmp_path: Path, videos: dict[str, Path]
) -> None:
    root = tmp_path / "ds"
    flags = [f"--record.root={root}", "--record.num_episodes=2", "--record.episode_time_s=1"]
    done = run_record(*FAST, *GOOD, "--robot.num_cameras=0", cameras_flag(videos), *flags)
    assert done.returncode == 0, done.stderr
    assert_valid(root, episodes=2)
    output = done.stdout + done.stderr
    for episode, length in enumerate(episode_lengths(root)):
        t = timing(root, episode)
        for name in FILES:
            key = f"observation.images.{name}"
            video = root / "videos" / "chunk-000" / key / f"episode_{episode:06d}.mp4"
            frames = decode(video)
            assert len(frames) == length == 30
            seq = t[f"{key}.seq"]
            closest, error = match(frames, name)
            assert np.array_equal(closest, seq % FILES[name][0]), (name, episode, closest, seq)
            assert error.max() < MATCH_MAE, (name, episode, error)
            repeated = np.concatenate([[False], seq[1:] == seq[:-1]])
            assert np.array_equal(t[f"{key}.repeated"], repeated)
            line = re.search(rf"Episode {episode} captured: .*\b{name} (\d+) repeated", output)
            assert line and int(line.group(1)) == repeated.sum(), output
            if name == "side":
                assert 15 <= repeated.sum() <= 25, seq  # about 2 of every 3 frames
            if episode == 1:
                assert seq.max() >= FILES[name][0], seq  # the file looped, and still matches


def test_a_camera_that_does_not_exist_fails_in_one_line_and_leaves_no_dataset(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    missing = tmp_path / "nope.mp4"
    flags = [f"--record.root={root}", "--record.num_episodes=1", "--record.episode_time_s=1"]
    cameras = f"--robot.cameras={{wrist: {{index_or_path: {missing}}}}}"
    done = run_record(*FAST, *GOOD, "--robot.num_cameras=0", cameras, *flags)
    assert done.returncode == 1, done.stderr
    (line,) = error_lines(done.stderr)
    assert line.startswith("error: ") and "camera wrist" in line and str(missing) in line, line
    assert "no such file" in line
    assert "cannot connect the robot" not in line  # the robot is fine: the camera says what is wrong
    assert not root.exists()


def test_a_camera_falling_silent_stops_the_episode_naming_it(tmp_path: Path, videos: dict[str, Path]) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(videos["side"].read_bytes())
    root = tmp_path / "ds"
    flags = [f"--record.root={root}", "--record.num_episodes=1", "--record.episode_time_s=5"]
    cameras = f"--robot.cameras={{top: {{index_or_path: {clip}, fps: 30}}}}"
    proc = start_record(*FAST, *GOOD, "--robot.num_cameras=0", "--robot.stale_timeout_s=0.5", cameras, *flags)
    seen: list[str] = []
    wait_for_line(proc, r"Recording episode 0", seen)
    # The open file plays to its end; then it cannot be opened again, and no frame comes.
    clip.unlink()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "top" in errors[0] and "--robot.stale_timeout_s=0.5" in errors[0], err
    assert_valid(root, episodes=1)
    (length,) = episode_lengths(root)
    assert 0 < length < 5 * 30
    assert "camera top" in "".join(seen) + out + err and "stopped delivering" in "".join(seen) + out + err


def test_a_camera_that_stops_is_retried_without_spinning(
    tmp_path: Path, videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(videos["side"].read_bytes())
    opened = []
    real_open = opencv_module.open_capture
    monkeypatch.setattr(opencv_module, "open_capture", lambda cv2, s: opened.append(s) or real_open(cv2, s))
    camera = make_camera("top", OpenCVCameraConfig(index_or_path=str(clip), fps=200))
    caplog.set_level(logging.WARNING, logger="operating_platform.cameras")
    camera.connect()
    try:
        clip.unlink()
        deadline = time.monotonic() + 10
        while not stopped(caplog) and time.monotonic() < deadline:  # the file played to its end
            time.sleep(0.01)
        _, last = camera.latest()
        before = len(opened)
        time.sleep(0.5)
        frame, arrival = camera.latest()
        assert arrival == last and frame.shape == (H, W, 3)  # the last frame stays, never waited for
        # One attempt per RETRY_S (0.1 s) at most; a loop that spun would make thousands.
        assert len(opened) - before <= 10, len(opened) - before
    finally:
        camera.disconnect()
    warnings = stopped(caplog)
    assert len(warnings) == 1 and "camera top" in warnings[0], warnings


def stopped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "stopped delivering" in r.getMessage()]


def test_frames_are_new_arrays_never_written_again(videos: dict[str, Path]) -> None:
    camera = make_camera("top", OpenCVCameraConfig(index_or_path=str(videos["top"]), fps=200))
    camera.connect()
    try:
        assert camera.shape == (H, W, 3)
        first, arrival = camera.latest()
        kept = first.copy()
        deadline = time.monotonic() + 10
        while camera.latest()[1].seq < arrival.seq + 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        newer, later = camera.latest()
        assert later.seq >= arrival.seq + 40 and later.time > arrival.time
    finally:
        camera.disconnect()
    assert np.array_equal(first, kept) and newer is not first
    for frame, seq in ((first, arrival.seq), (newer, later.seq)):
        closest, error = match(frame[None], "top")
        assert closest[0] == seq % FILES["top"][0] and error[0] < 2, (seq, closest, error)


def test_settings_a_camera_cannot_give_fail_naming_it_and_both_values(videos: dict[str, Path]) -> None:
    config = OpenCVCameraConfig(index_or_path=str(videos["top"]), width=320, height=240, fourcc="MJPG")
    camera = make_camera("front", config)
    with pytest.raises(CameraError) as caught:
        camera.connect()
    message = str(caught.value)
    assert "camera front" in message and "\n" not in message, message
    assert "asked for size 320x240, fourcc MJPG, it gives size 160x120, fourcc h264" in message, message
    camera.disconnect()


def test_cameras_from_the_command_line_and_from_a_yaml_file(tmp_path: Path) -> None:
    flag = "{top: {type: opencv, index_or_path: /dev/video0, width: 640, height: 480, fps: 30, fourcc: MJPG}}"
    cfg = parse_config([*GOOD, f"--robot.cameras={flag}"])
    assert cfg.robot.cameras == {
        "top": OpenCVCameraConfig(index_or_path="/dev/video0", width=640, height=480, fps=30, fourcc="MJPG")
    }
    session = tmp_path / "session.yaml"
    session.write_text(
        "robot:\n  type: sim\n  cameras:\n"
        "    wrist: {index_or_path: 2, fps: 15}\n"  # `type` left out: opencv is the default
        "    top:\n      index_or_path: rtsp://10.0.0.5:554/stream\n      rotation: 180\n"
        "record:\n  repo_id: lab/cams\n  single_task: Pick\n"
    )
    cfg = parse_config([f"--config_path={session}"])
    assert cfg.robot.cameras == {
        "wrist": OpenCVCameraConfig(index_or_path=2, fps=15),
        "top": OpenCVCameraConfig(index_or_path="rtsp://10.0.0.5:554/stream", rotation=180),
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{top: {fps: -1}}", "--robot.cameras.top.fps must be positive (got -1)"),
        ("{top: {fps: fast}}", "--robot.cameras.top.fps: Couldn't parse 'fast'"),
        ("{top: {width: 641}}", "--robot.cameras.top.width must be a positive even number (got 641)"),
        ("{top: {fourcc: MJPEG}}", "--robot.cameras.top.fourcc must be four characters"),
        ("{top: {rotation: 45}}", "--robot.cameras.top.rotation must be 0, 90, 180 or 270"),
        ("{top: {index_or_path: -1}}", "--robot.cameras.top.index_or_path must be a device index"),
        ("{top: {widht: 640}}", "widht"),
        ("{top: {type: webcam}}", "--robot.cameras.top: no camera type 'webcam' (known: opencv)"),
        ("{top: 3}", "--robot.cameras must give each camera a name and its settings, e.g."),
        ("top", "--robot.cameras must give each camera a name and its settings, e.g."),
    ],
)
def test_a_bad_camera_setting_names_its_flag(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config([*GOOD, f"--robot.cameras={value}"])
    assert expected in str(caught.value) and "\n" not in str(caught.value).strip(), caught.value


def test_a_bad_camera_setting_exits_2_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    done = run_record(*FAST, *GOOD, f"--record.root={root}", "--robot.cameras={top: {fps: -1}}")
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert line.startswith("error: --robot.cameras.top.fps must be positive (got -1)"), line
    assert not root.exists()


def find_cameras(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "operating_platform.cli", "find-cameras", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_find_cameras_saves_a_still_and_prints_the_flag(tmp_path: Path, videos: dict[str, Path]) -> None:
    import cv2

    out_dir = tmp_path / "stills"
    done = find_cameras(str(videos["top"]), "--output-dir", str(out_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{videos['top']}: {W}x{H}, 30 fps" in done.stdout, done.stdout
    (still,) = out_dir.glob("*.png")
    image = cv2.imread(str(still))[:, :, ::-1]
    closest, error = match(image[None], "top")
    assert closest[0] == 0 and error[0] < 2, error  # the file's first frame
    # The printed value records that camera as it was found.
    (line,) = [line for line in done.stdout.splitlines() if "--robot.cameras=" in line]
    cfg = parse_config([*GOOD, *shlex.split(line)])
    assert cfg.robot.cameras == {
        "cam0": OpenCVCameraConfig(index_or_path=str(videos["top"]), width=W, height=H, fps=30)
    }


def test_find_cameras_with_nothing_to_find_says_where_it_looked(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux") or list(Path("/dev").glob("video*")):
        pytest.skip("needs a Linux machine without cameras")
    done = find_cameras(cwd=tmp_path)
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert line.startswith("error: no camera found") and "/dev/video*" in line, line
    assert not (tmp_path / "cameras").exists()
    missing = find_cameras(str(tmp_path / "nope.mp4"), cwd=tmp_path)
    assert missing.returncode == 1 and "nope.mp4: no such file" in missing.stdout
    (line,) = error_lines(missing.stderr)
    assert line.startswith("error: no camera found") and "nope.mp4" in line, line


def test_opencv_is_imported_only_once_a_camera_is_used() -> None:
    code = (
        "import sys; from operating_platform.core.configs import parse_config; "
        "parse_config(['--record.repo_id=a/b', '--record.single_task=x', "
        "'--robot.cameras={top: {index_or_path: 0}}']); print('cv2' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stdout + done.stderr


def test_without_opencv_each_way_in_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if not installed: import fails, find_spec is None
    hint = "pip install 'operating_platform[opencv]'"
    with pytest.raises(
        ConfigError, match=re.escape(f"--robot.cameras.top: OpenCV cameras need OpenCV: {hint}")
    ):
        parse_config([*GOOD, "--robot.cameras={top: {index_or_path: 0}}"])
    with pytest.raises(ImportError, match=re.escape(hint)):
        import_cv2()
    assert find_cameras_main(["--output-dir", str(tmp_path / "stills")]) == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert line == f"error: find-cameras: OpenCV cameras need OpenCV: {hint}", line


def test_a_rotated_camera_turns_its_frames_clockwise(videos: dict[str, Path]) -> None:
    camera = make_camera("wrist", OpenCVCameraConfig(index_or_path=str(videos["top"]), rotation=90))
    camera.connect()
    try:
        frame, arrival = camera.latest()
    finally:
        camera.disconnect()
    assert camera.shape == frame.shape == (W, H, 3)
    upright = np.rot90(frame, k=1)  # a quarter turn back, anticlockwise
    closest, error = match(upright[None], "top")
    assert closest[0] == arrival.seq % FILES["top"][0] and error[0] < 2, (closest, error)


def test_a_camera_named_like_one_of_the_robots_is_refused_in_one_line(
    tmp_path: Path, videos: dict[str, Path]
) -> None:
    root = tmp_path / "ds"
    cameras = f"--robot.cameras={{image_top: {{index_or_path: {videos['top']}}}}}"
    done = run_record(*FAST, *GOOD, cameras, f"--record.root={root}", "--record.episode_time_s=1")
    assert done.returncode == 2, done.stderr
    (line,) = error_lines(done.stderr)
    assert line == "error: --robot.cameras: 'image_top' is already a camera of sim", line
    assert not root.exists()
