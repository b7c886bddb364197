"""`dorobot push` and `--record.push_to` to the Hugging Face Hub (a stand-in speaking its HTTP API
on 127.0.0.1, driven by the real huggingface_hub) and to a folder (a mounted NAS share)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from huggingface_hub import hf_hub_download

from operating_platform.dataset.snapshot import read_snapshot
from tests.conftest import assert_valid, error_lines, run_session
from tests.standins.hub_server import Blob, HubServer
from tests.test_upload import v21_committed_files

TOKEN = "hf_standin_token_that_must_never_be_printed"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """The stand-in Hub; the programs a test starts find it and a token as a user's shell would."""
    server = HubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no cached login of this machine
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")  # the stand-in speaks Git LFS, not Xet
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    yield server
    server.stop()


def push(root: Path, dest: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "push", str(root), dest],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_whole_dataset(tree: dict[str, Blob]) -> int:
    """A commit's tree holds every file its info.json counts and every JSONL line; its episodes."""
    info = json.loads(tree["meta/info.json"].data)
    assert v21_committed_files(info) <= set(tree)
    lines = {rel: tree[rel].data.count(b"\n") for rel in ("meta/episodes.jsonl", "meta/tasks.jsonl")}
    assert lines["meta/episodes.jsonl"] == info["total_episodes"]
    assert lines["meta/tasks.jsonl"] == info["total_tasks"]
    return info["total_episodes"]


def test_hub_upload_is_one_commit_per_round_tagged_with_the_codebase_version(
    tmp_path: Path, hub: HubServer
) -> None:
    root = tmp_path / "ds"
    dest = "hf://datasets/lab/pick"
    assert run_session(root, episodes=2).returncode == 0
    done = push(root, dest)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ {dest}: 2 episodes" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    repo = hub.state.repos["lab/pick"]
    assert len(repo.commits) == 2  # the repository's creation, then the whole dataset at once
    head = repo.head()
    assert repo.tags == {"v2.1": head.oid}
    snapshot = read_snapshot(root)
    assert set(head.tree) == set(snapshot.files) | set(snapshot.meta) | {"README.md", ".gitattributes"}
    assert all(head.tree[rel].lfs for rel in snapshot.files)  # data and videos as LFS objects
    for rel in [*snapshot.files, *snapshot.meta]:
        # Read back as LeRobot's loader does: by the codebase-version tag.
        path = hf_hub_download(
            "lab/pick",
            rel,
            repo_type="dataset",
            revision="v2.1",
            cache_dir=tmp_path / "cache",
            endpoint=hub.url,
            token=False,
        )
        assert Path(path).read_bytes() == (root / rel).read_bytes(), rel
    card = head.tree["README.md"].data.decode()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["tags"] == ["LeRobot"] and front["task_categories"] == ["robotics"]
    assert front["configs"] == [{"config_name": "default", "data_files": "data/*/*.parquet"}]
    assert '"total_episodes": 2' in card

    again = push(root, dest)
    assert again.returncode == 0 and "already up to date (2 episodes)" in again.stdout, again.stdout
    assert len(repo.commits) == 2

    # One more episode, recorded with the upload on: one more commit, the tag follows it, and
    # what was sent before is not sent again.
    lfs_before = hub.state.lfs_puts
    sent_before = {hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in snapshot.files}
    proc = run_session(root, "--record.resume=true", f"--record.push_to={dest}", episodes=1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"✓ Upload to {dest} complete" in proc.stdout
    assert len(repo.commits) == 3
    assert repo.tags == {"v2.1": repo.head().oid}
    assert [assert_whole_dataset(c.tree) for c in repo.commits[1:]] == [2, 3]
    assert_valid(root, episodes=3)
    snapshot = read_snapshot(root)
    # Only the new episode's contents travelled (LFS stores by content: a video identical to
    # one already there, as the simulated robot's repeated motion makes them, is not sent).
    new = {hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in snapshot.files} - sent_before
    assert new and hub.state.lfs_puts - lfs_before == len(new)
    for rel in snapshot.files:
        assert repo.head().tree[rel].data == (root / rel).read_bytes()


def test_hub_upload_without_a_token_says_how_to_log_in(
    tmp_path: Path, hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    root = tmp_path / "ds"
    assert run_session(root, episodes=1).returncode == 0
    done = push(root, "hf://datasets/lab/pick")
    assert done.returncode == 1, done.stdout + done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "no Hugging Face token" in errors[0] and "hf auth login" in errors[0], errors
    assert hub.state.repos == {}


def test_push_to_a_folder_makes_a_valid_copy_and_keeps_it_in_step(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    assert run_session(root, episodes=2).returncode == 0
    nas = tmp_path / "nas" / "pick"
    done = push(root, str(nas))
    assert done.returncode == 0, done.stdout + done.stderr
    assert_valid(nas, episodes=2)
    snapshot = read_snapshot(root)
    copied = sorted(p.relative_to(nas).as_posix() for p in nas.rglob("*") if p.is_file())
    assert copied == sorted([*snapshot.files, *snapshot.meta])
    assert all((nas / rel).read_bytes() == (root / rel).read_bytes() for rel in copied)
    # What a copy killed half-way leaves (hidden) goes; a file outside the dataset's folders stays.
    partial = nas / "data" / "chunk-000" / ".episode_000001.parquet.part"
    partial.write_bytes(b"half a file")
    (nas / "notes.txt").write_text("someone's notes")
    before = {rel: (nas / rel).stat().st_mtime_ns for rel in snapshot.files}
    again = push(root, f"file://{nas}")  # the same destination, written as a URL
    assert again.returncode == 0, again.stdout + again.stderr
    assert not partial.exists()
    assert (nas / "notes.txt").read_text() == "someone's notes"
    assert {rel: (nas / rel).stat().st_mtime_ns for rel in snapshot.files} == before  # not copied again
    own = push(root, str(root / "backup"))
    assert own.returncode == 2
    assert error_lines(own.stderr) == [
        f"error: {root / 'backup'}: is the dataset's own folder; upload to a folder outside it"
    ]


def test_push_never_overwrites_another_dataset(tmp_path: Path) -> None:
    first, other = tmp_path / "first", tmp_path / "other"
    assert run_session(first, episodes=2).returncode == 0
    assert run_session(other, "--robot.num_cameras=1", episodes=1).returncode == 0
    nas = tmp_path / "nas"
    assert push(first, str(nas)).returncode == 0
    refused = push(other, str(nas))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    errors = error_lines(refused.stderr)
    assert len(errors) == 1 and "already holds another dataset" in errors[0], errors
    assert_valid(nas, episodes=2)
    for rel in read_snapshot(first).files:
        assert (nas / rel).read_bytes() == (first / rel).read_bytes()
