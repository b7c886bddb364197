"""Background compression: copies checked, swapped in whole, and a kill at any point loses nothing.

Each test records a small dataset with the real recorder, compresses it with the real
`dorobot compress` (SVT-AV1), and reads every file back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from operating_platform.dataset.reader import DatasetReader
from tests.conftest import assert_valid, child_pids, episode_lengths, run_recover, run_session

SWAP_JSON = Path(".dorobot/compress/swap.json")


def compress(root: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "compress", str(root), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def start_compress(root: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "operating_platform.cli", "compress", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def videos(root: Path) -> list[Path]:
    return sorted((root / "videos").rglob("*.mp4"))


def codec(path: Path) -> str:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.codec.canonical_name


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.int16) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def assert_same_frames(original: Path, root: Path) -> None:
    """Every episode of `root` has, for every camera, the frames it has in `original`.

    Read through our reader, which finds an episode's frames wherever packing put them.
    """
    before, after = DatasetReader.open(original), DatasetReader.open(root)
    lengths = episode_lengths(original)
    assert episode_lengths(root) == lengths
    for index, length in enumerate(lengths):
        for key in before.video_keys:
            pairs = list(zip(before.frames(index, key), after.frames(index, key), strict=True))
            assert len(pairs) == length, (index, key)
            for a, b in pairs:
                assert psnr(a, b) > 30, (index, key)


def record(root: Path, *flags: str, episodes: int = 3) -> Path:
    result = run_session(root, *flags, episodes=episodes)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="module")
def recorded_v21(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("v21") / "ds")


@pytest.fixture(scope="module")
def recorded_v30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Small files, so that packing merges episodes into shared files before compression.
    return record(
        tmp_path_factory.mktemp("v30") / "ds",
        "--record.format=v3.0",
        "--record.video_files_size_in_mb=0.2",
        episodes=4,
    )


@pytest.mark.parametrize("layout", ["v21", "v30"])
def test_compress_swaps_in_checked_av1_copies_of_every_file(
    layout: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    original = request.getfixturevalue(f"recorded_{layout}")
    root = tmp_path / "ds"
    shutil.copytree(original, root)
    before = sum(p.stat().st_size for p in videos(root))

    result = compress(root)

    assert result.returncode == 0, result.stdout + result.stderr
    assert all(codec(p) == "av1" for p in videos(root))
    assert sum(p.stat().st_size for p in videos(root)) < before
    assert "above 30 dB PSNR" in result.stdout  # the floor is said
    features = json.loads((root / "meta/info.json").read_text())["features"].values()
    assert {ft["info"]["video.codec"] for ft in features if ft["dtype"] == "video"} == {"av1"}
    assert_valid(root, len(episode_lengths(original)))
    assert_same_frames(original, root)
    again = compress(root)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout


def test_compress_to_hevc_keeps_x265s_chatter_off_the_console(recorded_v21: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(recorded_v21, root)
    result = compress(root, "--codec=hevc")
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(codec(p) == "hevc" for p in videos(root))
    assert "x265 [" not in result.stdout + result.stderr, result.stderr  # x265's banner and statistics
    assert_same_frames(recorded_v21, root)


def test_a_copy_under_the_psnr_floor_is_refused_and_the_original_stays(
    recorded_v21: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    shutil.copytree(recorded_v21, root)
    hashes = {p: sha(p) for p in videos(root)}

    result = compress(root, "--min-psnr=99")

    assert result.returncode == 1, result.stdout
    assert result.stdout.count("not compressed:") == len(hashes)
    assert "under the floor of 99 dB" in result.stdout
    assert {p: sha(p) for p in videos(root)} == hashes
    assert_valid(root)
    # Remembered: a second run does not try the same files again.
    again = compress(root, "--min-psnr=99")
    assert "not compressed:" not in again.stdout and "nothing to do" in again.stdout, again.stdout


def _kill_when(root: Path, ready, pauses: str) -> subprocess.CompletedProcess:
    """Start `dorobot compress`, SIGKILL it as soon as `ready()` holds, then recover."""
    proc = start_compress(root, env={"DOROBOT_INJECT_PAUSES": pauses})
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recovered = run_recover(root)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    return recovered


def test_recover_finishes_a_swap_killed_before_its_rename(recorded_v21: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(recorded_v21, root)
    recovered = _kill_when(root, lambda: (root / SWAP_JSON).exists(), "swap-1=30")
    assert "finished swapping in its compressed copy" in recovered.stdout, recovered.stdout
    assert sum(codec(p) == "av1" for p in videos(root)) == 1
    assert not (root / SWAP_JSON).exists()
    assert_valid(root)
    assert_same_frames(recorded_v21, root)


def test_recover_after_a_kill_between_rename_and_cleanup(recorded_v21: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(recorded_v21, root)
    first = videos(root)[0]
    inode = first.stat().st_ino
    _kill_when(root, lambda: first.stat().st_ino != inode, "swap-2=30")
    assert not (root / SWAP_JSON).exists()
    assert codec(first) == "av1"
    assert_valid(root)
    assert_same_frames(recorded_v21, root)


def test_recover_drops_a_copy_killed_while_being_encoded(recorded_v21: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(recorded_v21, root)
    hashes = {p: sha(p) for p in videos(root)}
    staged = root / ".dorobot/compress"
    recovered = _kill_when(root, lambda: any(staged.glob("*.staged.mp4")), "")
    assert "removed a compressed copy that was not swapped in" in recovered.stdout, recovered.stdout
    assert not any(staged.glob("*.staged.mp4"))
    # Whatever was swapped before the kill is whole and checked; the rest is untouched.
    for path, digest in hashes.items():
        assert sha(path) == digest or codec(path) == "av1"
    assert_valid(root)
    assert_same_frames(recorded_v21, root)


@pytest.mark.parametrize("layout", ["v21", "v30"])
def test_kill_loop_compressor_killed_at_random_points(
    layout: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Kill `dorobot compress` at random moments; after each kill and `dorobot recover`, the
    dataset is valid, loads, and every episode has every frame. A run that gets through starts
    the next trial from the original again, so that every kill finds work under way."""
    original = request.getfixturevalue(f"recorded_{layout}")
    root = tmp_path / "ds"
    shutil.copytree(original, root)
    # Widened windows around the swap, so that kills land there as well as in the encoding.
    pauses = {"DOROBOT_INJECT_PAUSES": "swap-1=0.1,swap-2=0.1"}
    started = time.monotonic()
    assert start_compress(root, env=pauses).wait(timeout=300) == 0
    whole_run = time.monotonic() - started
    rng = random.Random(11)
    kills = swapped_before_kill = 0
    for _trial in range(10):
        shutil.rmtree(root)
        shutil.copytree(original, root)
        proc = start_compress(root, env=pauses)
        try:
            proc.wait(timeout=rng.uniform(0.05, 1.0) * whole_run)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        recovered = run_recover(root)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        assert_valid(root, len(episode_lengths(original)))
        assert_same_frames(original, root)
        swapped_before_kill += any(codec(p) == "av1" for p in videos(root)) and proc.returncode != 0
    assert kills >= 5, f"only {kills} of 10 runs were killed"
    assert swapped_before_kill >= 1, "no kill came after a first file was swapped in"
    finished = compress(root)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert all(codec(p) == "av1" for p in videos(root))
    assert_valid(root, len(episode_lengths(original)))
    assert_same_frames(original, root)


def _compressor_done(root: Path, timeout: float = 120) -> None:
    """Wait until no compressor holds the dataset's compress lock."""
    from operating_platform.dataset.lock import COMPRESS_LOCK, FileLock

    lock = FileLock(root, COMPRESS_LOCK)
    assert lock.acquire(wait_s=timeout), "the compressor never finished"
    lock.release()


def test_a_session_compresses_in_the_background_and_finishes_after_it(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    plain = tmp_path / "plain"
    result = run_session(root, "--record.compress=av1", episodes=3)
    assert result.returncode == 0, result.stderr
    record(plain, episodes=3)  # the same session (same seed), not compressed, to compare with
    _compressor_done(root)
    assert all(codec(p) == "av1" for p in videos(root))
    assert_valid(root, 3)
    assert_same_frames(plain, root)
    info = json.loads(
        subprocess.run(
            [sys.executable, "-m", "operating_platform.cli", "info", str(root), "--json"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert all(camera["waiting"]["episodes"] == 0 for camera in info["cameras"].values())


def _compressor_of(recorder: int) -> int:
    for child in child_pids(recorder):
        if "operating_platform.compress.worker" in Path(f"/proc/{child}/cmdline").read_text():
            return child
    raise AssertionError("the recorder has no compressor process")


def _wait_for_state(pid: int, state: str, timeout: float = 10) -> None:
    """Wait until process `pid` is in scheduler state `state` (T: stopped)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if seen == state:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never in state {state} (last {seen})")


def test_a_killed_recorder_stops_its_compressor_and_recover_leaves_it_whole(tmp_path: Path) -> None:
    from tests.conftest import FAST, start_record, wait_for_line

    root = tmp_path / "ds"
    proc = start_record(
        *FAST, "--record.repo_id=lab/c", f"--record.root={root}", "--record.num_episodes=20",
        "--record.episode_time_s=1", "--record.reset_time_s=0.5", "--record.compress=av1",
    )  # fmt: skip
    seen: list[str] = []
    wait_for_line(proc, r"Compressed observation", seen, timeout=120)
    # While the next episode is recorded, the compressor is stopped outright; the recorder dies
    # then, and the compressor must not stay stopped (holding its lock) for ever.
    wait_for_line(proc, r"Recording episode", seen, timeout=60)
    compressor = _compressor_of(proc.pid)
    _wait_for_state(compressor, "T")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # It is continued, notices its commands' pipe is closed, and stops, files whole.
    _compressor_done(root, timeout=30)
    recovered = run_recover(root, "--salvage-partial")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert_valid(root)
    assert any(codec(p) == "av1" for p in videos(root))
    assert not any((root / ".dorobot/compress").glob("*.staged.mp4"))
