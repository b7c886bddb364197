"""`--record.format=v3.0` writes LeRobot 0.4's layout: the same files and columns as the
reference written by LeRobot 0.4.4 itself, and, episode for episode, exactly what the v2.1
recorder writes for the same session, whatever way the episodes were packed into files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from operating_platform.dataset.reader import DatasetReader
from tests.conftest import (
    FAST,
    REFERENCE_V3,
    assert_valid,
    episode_lengths,
    run_record,
    run_recover,
    wait_for_line,
)

REF_CAMERA = "observation.images.cam"
# Small file caps, so that a few short episodes already fill files and get packed.
PACKED = ["--record.video_files_size_in_mb=0.15", "--record.data_files_size_in_mb=0.02"]


def _session(root: Path, *flags: str, episodes: int = 5) -> None:
    proc = run_record(
        *FAST,
        "--record.repo_id=lab/v3",
        f"--record.root={root}",
        f"--record.num_episodes={episodes}",
        "--record.episode_time_s=0.5",
        *flags,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same simulated session recorded in both layouts (the simulated robot is deterministic)."""
    base = tmp_path_factory.mktemp("pair")
    _session(base / "v21")
    _session(base / "v30", "--record.format=v3.0", *PACKED)
    return base / "v21", base / "v30"


def _info(root: Path) -> dict:
    return json.loads((root / "meta/info.json").read_text())


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if ".dorobot" not in p.parts)


def test_info_json_has_the_reference_keys(pair: tuple[Path, Path]) -> None:
    ours, ref = _info(pair[1]), _info(REFERENCE_V3)
    assert list(ours) == list(ref)
    for key in ("codebase_version", "chunks_size", "data_path", "video_path", "fps"):
        assert ours[key] == ref[key], key
    assert (ours["data_files_size_in_mb"], ours["video_files_size_in_mb"]) == (0.02, 0.15)
    assert ours["total_episodes"] == 5 and ours["total_frames"] == 75 and ours["splits"] == {"train": "0:5"}
    ref_cam = ref["features"][REF_CAMERA]
    for key in ("observation.images.image_top", "observation.images.image_wrist"):
        assert list(ours["features"][key]) == list(ref_cam)
        assert list(ours["features"][key]["info"]) == list(ref_cam["info"])


def test_metadata_files_match_the_reference_schema(pair: tuple[Path, Path]) -> None:
    root = pair[1]
    ref = pq.read_schema(REFERENCE_V3 / "meta/episodes/chunk-000/file-000.parquet")
    ours = pq.read_schema(root / "meta/episodes/chunk-000/file-000.parquet")
    renamed = [n.replace("image_top", "cam") for n in ours.names if "image_wrist" not in n]
    assert renamed == ref.names
    for name in ours.names:
        if "image_wrist" not in name:
            ref_name = name.replace("image_top", "cam")
            assert str(ours.field(name).type) == str(ref.field(ref_name).type), name
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.schema.names == pq.read_schema(REFERENCE_V3 / "meta/tasks.parquet").names
    assert tasks.to_pylist() == [{"task_index": 0, "__index_level_0__": "Pick the cube"}]
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]
    stats, ref_stats = (json.loads((r / "meta/stats.json").read_text()) for r in (root, REFERENCE_V3))
    assert set(stats) == set(_info(root)["features"])
    assert list(stats["action"]) == list(ref_stats["action"])
    assert list(stats["observation.images.image_top"]) == list(ref_stats[REF_CAMERA])
    assert np.asarray(stats["observation.images.image_top"]["q50"]).shape == (3, 1, 1)
    assert stats["frame_index"]["count"] == [75]


def test_data_files_have_the_reference_schema(pair: tuple[Path, Path]) -> None:
    ref = pq.read_schema(REFERENCE_V3 / "data/chunk-000/file-000.parquet")
    for path in _files(pair[1], "data/*/*.parquet"):
        ours = pq.read_schema(path)
        assert str(ours.remove_metadata()) == str(ref.remove_metadata())
        ref_hf = json.loads(ref.metadata[b"huggingface"])["info"]["features"]
        assert json.loads(ours.metadata[b"huggingface"])["info"]["features"] == ref_hf


def test_episodes_were_packed_into_fewer_files_with_dense_numbering(pair: tuple[Path, Path]) -> None:
    root = pair[1]
    assert_valid(root, episodes=5)
    for pattern in ("data/*/*.parquet", "videos/observation.images.image_top/*/*.mp4"):
        files = _files(root, pattern)
        assert 1 <= len(files) < 5, files  # packed: fewer files than episodes
        assert [f.name for f in files] == [
            f"file-{i:03d}.parquet" if "data" in pattern else f"file-{i:03d}.mp4" for i in range(len(files))
        ]
    cap = 0.15 * 1024 * 1024
    videos = _files(root, "videos/*/*/*.mp4")
    # Every file but each camera's last is full enough that the next episode did not fit.
    assert any(p.stat().st_size > cap / 2 for p in videos)


def test_every_episode_equals_the_v21_recording(pair: tuple[Path, Path]) -> None:
    v21, v30 = (DatasetReader.open(root) for root in pair)
    assert v30.total_episodes == v21.total_episodes == 5
    for index in range(5):
        rows21, rows30 = v21.episode_table(index), v30.episode_table(index)
        assert rows30.to_pydict() == rows21.to_pydict(), index
        for key in v21.video_keys:
            frames21 = list(v21.frames(index, key))
            frames30 = list(v30.frames(index, key))
            assert len(frames30) == len(frames21) == 15
            for a, b in zip(frames21, frames30, strict=True):
                # Same encoder, same frames: identical streams, copied without re-encoding.
                assert np.array_equal(a, b), (index, key)
    assert v30.episode(3).stats["action"]["mean"] == pytest.approx(v21.episode(3).stats["action"]["mean"])


def test_resume_appends_to_a_v30_dataset_and_keeps_its_layout(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _session(root, "--record.format=v3.0", *PACKED, episodes=2)
    _session(root, "--record.resume=true", *PACKED, episodes=3)  # no --record.format: it keeps v3.0
    assert _info(root)["codebase_version"] == "v3.0"
    assert_valid(root, episodes=5)
    proc = run_record(
        *FAST, "--record.repo_id=lab/v3", f"--record.root={root}", "--record.resume=true",
        "--record.format=v2.1", "--record.num_episodes=1",
    )  # fmt: skip
    assert proc.returncode != 0
    assert (
        f"it is a v3.0 dataset; resume it as it is, or convert it first: dorobot convert {root}"
        in proc.stderr
    )


@pytest.mark.parametrize("step", ["pack-1", "pack-2", "pack-3", "pack-4", "pack-5"])
def test_kill_while_packing_files_is_finished_by_recover(
    tmp_path: Path, step: str, pair: tuple[Path, Path]
) -> None:
    """A kill at each step of a merge (after its plan is written) leaves what recovery finishes:
    every episode in the dataset with every row and frame, the files packed and numbered densely."""
    reference = pair[1]  # the same session, recorded whole
    root = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "operating_platform.core.main", *FAST, "--record.repo_id=lab/v3",
            f"--record.root={root}", "--record.num_episodes=4", "--record.episode_time_s=0.5",
            "--record.format=v3.0", *PACKED,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "DOROBOT_INJECT_PAUSES": f"{step}=60"},
    )  # fmt: skip
    seen: list[str] = []
    try:
        wait_for_line(proc, r": packing episodes", seen)
        time.sleep(1.0)  # the merge is built, its plan written: now paused at `step`
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    rec = run_recover(root, "--salvage-partial")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "interrupted earlier" in rec.stdout, rec.stdout
    assert_valid(root)
    assert run_recover(root).stdout.strip().endswith("nothing to recover")
    ours, whole = DatasetReader.open(root), DatasetReader.open(reference)
    lengths = episode_lengths(root)
    assert len(lengths) >= 2 and lengths[:-1] == [15] * (len(lengths) - 1)
    for index in range(len(lengths) - 1):  # the last may be a salvaged partial episode
        assert ours.episode_table(index).to_pydict() == whole.episode_table(index).to_pydict()
        for key in ours.video_keys:
            for a, b in zip(ours.frames(index, key), whole.frames(index, key), strict=True):
                assert np.array_equal(a, b), (index, key)
