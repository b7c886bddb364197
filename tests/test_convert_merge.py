"""`dorobot convert` and `dorobot merge`: every episode arrives whole (rows, bit-identical frames,
statistics), renumbered in order, in the layout asked for, and the sources are only read."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from operating_platform.dataset.reader import DatasetReader
from tests.conftest import FAST, REFERENCE, REFERENCE_V3, error_lines, run_record

RENUMBERED = ("episode_index", "index", "task_index")


def dorobot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", *args], capture_output=True, text=True, timeout=300
    )


def _session(root: Path, *flags: str, episodes: int = 3, task: str = "Pick the cube") -> Path:
    proc = run_record(
        *[f for f in FAST if not f.startswith("--record.single_task")],
        f"--record.single_task={task}",
        "--record.repo_id=lab/station",
        f"--record.root={root}",
        f"--record.num_episodes={episodes}",
        "--record.episode_time_s=0.5",
        *flags,
    )
    assert proc.returncode == 0, proc.stderr
    return root


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _same_episode(a: DatasetReader, i: int, b: DatasetReader, j: int, renumbered: bool = False) -> None:
    rows_a, rows_b = a.episode_table(i).to_pydict(), b.episode_table(j).to_pydict()
    assert set(rows_a) == set(rows_b)
    for name in rows_a:
        if renumbered and name in RENUMBERED:
            continue
        assert rows_a[name] == rows_b[name], (name, i, j)
    task_a = [a.tasks[t] for t in rows_a["task_index"]]
    assert task_a == [b.tasks[t] for t in rows_b["task_index"]]
    for key in a.video_keys:
        frames_a, frames_b = list(a.frames(i, key)), list(b.frames(j, key))
        assert len(frames_a) == len(frames_b) == a.episode(i).length
        assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True)), (key, i)


def _assert_verifies(root: Path) -> None:
    proc = dorobot("verify", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lerobot_v21_dataset_converts_to_the_v30_layout_of_lerobot_itself(tmp_path: Path) -> None:
    source = tmp_path / "lerobot-0.3.3"
    shutil.copytree(REFERENCE, source)
    before = _digest(source)
    out = tmp_path / "converted"
    proc = dorobot("convert", str(source), "--to", "v3.0", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert _digest(source) == before  # the original is only read
    _assert_verifies(out)
    # Same files, columns, types and metadata layout as the dataset LeRobot 0.4.4 wrote itself.
    relative = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert relative == sorted(
        str(p.relative_to(REFERENCE_V3)) for p in REFERENCE_V3.rglob("*") if p.is_file()
    )
    for rel in (
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/tasks.parquet",
        "data/chunk-000/file-000.parquet",
    ):
        ours, ref = pq.read_schema(out / rel), pq.read_schema(REFERENCE_V3 / rel)
        assert str(ours.remove_metadata()) == str(ref.remove_metadata()), rel
        if b"huggingface" in (ref.metadata or {}):
            assert (
                json.loads(ours.metadata[b"huggingface"])["info"]
                == json.loads(ref.metadata[b"huggingface"])["info"]
            )
    info, ref_info = (json.loads((r / "meta/info.json").read_text()) for r in (out, REFERENCE_V3))
    assert list(info) == list(ref_info)
    assert info["features"] == json.loads((REFERENCE / "meta/info.json").read_text())["features"]
    stats, ref_stats = (json.loads((r / "meta/stats.json").read_text()) for r in (out, REFERENCE_V3))
    assert {k: list(v) for k, v in stats.items()} == {k: list(v) for k, v in ref_stats.items()}
    # Both written from the same recording by LeRobot's two versions: the same episodes.
    ours, ref = DatasetReader.open(out), DatasetReader.open(source)
    for i in range(2):
        _same_episode(ref, i, ours, i)
        assert ours.episode(i).stats["action"]["mean"] == pytest.approx(
            ref.episode(i).stats["action"]["mean"]
        )


def test_convert_there_and_back_gives_the_same_episodes(tmp_path: Path) -> None:
    original = _session(tmp_path / "ds", episodes=3)
    v30, back = tmp_path / "ds_v3.0", tmp_path / "back"
    assert dorobot("convert", str(original), "--to", "v3.0").returncode == 0  # default: beside it
    assert dorobot("convert", str(v30), "--to", "v2.1", "--output", str(back)).returncode == 0
    for root in (v30, back):
        _assert_verifies(root)
    a, b, c = (DatasetReader.open(r) for r in (original, v30, back))
    assert (b.codebase_version, c.codebase_version) == ("v3.0", "v2.1")
    for i in range(3):
        _same_episode(a, i, b, i)
        _same_episode(a, i, c, i)
    info_a, info_c = (json.loads((r / "meta/info.json").read_text()) for r in (original, back))
    assert info_a == info_c
    assert (back / "meta/episodes_stats.jsonl").read_text() != ""


def test_merge_gathers_stations_in_order_with_tasks_unified(tmp_path: Path) -> None:
    one = _session(tmp_path / "one", episodes=2, task="Pick the cube")
    two = _session(tmp_path / "two", "--record.format=v3.0", episodes=3, task="Stack the cubes")
    three = _session(tmp_path / "three", episodes=1, task="Pick the cube")
    digests = [_digest(r) for r in (one, two, three)]
    out = tmp_path / "all"
    proc = dorobot("merge", str(out), str(one), str(two), str(three), "--format", "v3.0")
    assert proc.returncode == 0, proc.stderr
    assert [_digest(r) for r in (one, two, three)] == digests
    _assert_verifies(out)
    merged = DatasetReader.open(out)
    assert merged.codebase_version == "v3.0" and merged.total_episodes == 6
    assert merged.tasks == ["Pick the cube", "Stack the cubes"]
    sources = [(DatasetReader.open(one), i) for i in range(2)]
    sources += [(DatasetReader.open(two), i) for i in range(3)]
    sources += [(DatasetReader.open(three), 0)]
    start = 0
    for new, (reader, old) in enumerate(sources):
        _same_episode(reader, old, merged, new, renumbered=True)
        rows = merged.episode_table(new).to_pydict()
        assert set(rows["episode_index"]) == {new}
        assert rows["index"] == list(range(start, start + len(rows["index"])))
        assert merged.episode(new).tasks == [reader.episode(old).tasks[0]]
        start += len(rows["index"])
    stats = json.loads((out / "meta/stats.json").read_text())
    assert stats["frame_index"]["count"] == [start]
    states = np.concatenate(
        [np.asarray(r.episode_table(i).column("observation.state").to_pylist()) for r, i in sources]
    )
    np.testing.assert_allclose(stats["observation.state"]["mean"], states.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["observation.state"]["std"], states.std(0), rtol=1e-4, atol=1e-4)
    assert stats["observation.state"]["min"] == pytest.approx(states.min(0).tolist())


@pytest.mark.parametrize(
    ("other_flags", "expected"),
    [
        (["--record.fps=15"], "recorded at 15 fps"),
        (["--record.video=false"], "different features"),
    ],
)
def test_merge_refuses_datasets_that_do_not_belong_together(
    tmp_path: Path, other_flags: list[str], expected: str
) -> None:
    one = _session(tmp_path / "one", episodes=1)
    other = _session(tmp_path / "other", *other_flags, episodes=1)
    out = tmp_path / "all"
    proc = dorobot("merge", str(out), str(one), str(other))
    assert proc.returncode == 1
    [line] = error_lines(proc.stderr)
    assert expected in line
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_convert_never_writes_over_a_folder(tmp_path: Path) -> None:
    original = _session(tmp_path / "ds", episodes=1)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    proc = dorobot("convert", str(original), "--to", "v3.0", "--output", str(taken))
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [f"error: {taken} already exists; choose a new folder for the result"]
    assert (taken / "notes.txt").read_text() == "mine"
    missing = dorobot("convert", str(tmp_path / "nothing"), "--to", "v3.0")
    assert missing.returncode == 1 and len(error_lines(missing.stderr)) == 1
