"""Uploading to S3 while recording (`--record.push_to=s3://...`), against moto's S3 server on
127.0.0.1: every episode arrives byte for byte, the remote copy is a valid dataset after every
round, an outage is ridden out, a killed recorder's upload is finished by `dorobot push` without
sending again what had arrived, and a destination that cannot be used never costs the recording.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from operating_platform.core.record import CaptureStats
from operating_platform.core.status import render
from operating_platform.dataset.snapshot import read_snapshot
from operating_platform.dataset.verify import verify_dataset
from operating_platform.upload.process import UploadProcess
from tests.conftest import (
    FAST,
    assert_valid,
    error_lines,
    run_record,
    run_session,
    start_record,
    wait_for_line,
)
from tests.standins.s3_server import S3Server

BUCKET = "robot-data"
SECRET = "s3cr3t-value-that-must-never-be-printed"
WORKER = "operating_platform.upload.worker"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """moto's S3 on 127.0.0.1 with an empty bucket; this process and the programs it starts
    find it through the AWS variables, as a user's shell would (and nothing else)."""
    server = S3Server()
    server.start()
    environment = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.endpoint,
        # Never the machine's own profile, nor the cloud metadata address.
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    with contextlib.suppress(AssertionError):  # a test may have left it stopped
        server.stop()


def _remote(server: S3Server, prefix: str) -> dict[str, bytes]:
    s3 = server.client()
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            found[key[len(prefix) + 1 :]] = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return found


def assert_mirrored(server: S3Server, prefix: str, root: Path, copy: Path, episodes: int) -> None:
    """The remote holds exactly the dataset's files, byte for byte, and they form a valid dataset."""
    remote = _remote(server, prefix)
    snapshot = read_snapshot(root)
    assert snapshot.total_episodes == episodes
    assert set(remote) == set(snapshot.files) | set(snapshot.meta)
    for rel, data in remote.items():
        assert data == (root / rel).read_bytes(), rel
    for rel, data in remote.items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    report = verify_dataset(copy)
    assert report.ok, "\n".join(report.problems)
    assert report.episodes == episodes


def v21_committed_files(info: dict) -> set[str]:
    videos = [k for k, ft in info["features"].items() if ft["dtype"] == "video"]
    files = set()
    for index in range(info["total_episodes"]):
        chunk = index // info["chunks_size"]
        files.add(info["data_path"].format(episode_chunk=chunk, episode_index=index))
        files.update(
            info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=index)
            for key in videos
        )
    return files


def assert_valid_after_every_round(server: S3Server, prefix: str) -> list[int]:
    """Each info.json that landed found every file it counts already there; its episode counts."""
    counts = []
    for data, keys in server.info_states:
        info = json.loads(data)
        missing = v21_committed_files(info) - keys
        assert not missing, f"info.json counting {info['total_episodes']} episodes landed before {missing}"
        assert {"meta/tasks.jsonl", "meta/episodes.jsonl", "meta/episodes_stats.jsonl"} <= keys
        counts.append(info["total_episodes"])
    assert counts == sorted(counts)
    return counts


def _data_and_video_puts(server: S3Server, prefix: str) -> dict[str, int]:
    puts = server.object_puts(BUCKET, f"{prefix}/")
    return {k: n for k, n in puts.items() if k.startswith(("data/", "videos/"))}


def _ledger_files(root: Path) -> set[str]:
    files: set[str] = set()
    for path in (root / ".dorobot" / "upload").glob("*.jsonl"):
        for raw in path.read_bytes().split(b"\n"):
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if "put" in line:
                files.add(line["put"])
            elif "del" in line:
                files.discard(line["del"])
    return files


def _worker_pids(root: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if WORKER.encode() in cmdline and str(root).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def _wait(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_recording_uploads_every_episode_to_s3(tmp_path: Path, s3: S3Server) -> None:
    root = tmp_path / "ds"
    proc = run_session(root, f"--record.push_to=s3://{BUCKET}/lab/pick", episodes=3)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"✓ Upload to s3://{BUCKET}/lab/pick complete" in proc.stdout
    assert "retrying" not in proc.stdout
    assert_valid(root, episodes=3)
    assert_mirrored(s3, "lab/pick", root, tmp_path / "copy", episodes=3)
    counts = assert_valid_after_every_round(s3, "lab/pick")
    assert counts[-1] == 3
    # Each data and video file went up once, however many rounds there were.
    assert set(_data_and_video_puts(s3, "lab/pick").values()) == {1}
    # Nothing of the recorder's own (.dorobot/: journals, timing, the upload's ledger) left the machine.
    assert not any(".dorobot" in key for key in s3.object_puts(BUCKET))


def test_upload_process_runs_at_the_lowest_priority(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    assert run_session(root, episodes=1).returncode == 0
    upload = UploadProcess(root, str(tmp_path / "nas")).start()
    try:
        _wait(lambda: upload.status().state in ("uploading", "idle"))
        assert upload.pid is not None
        fields = Path(f"/proc/{upload.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[16]) == 19  # stat's 19th field, the niceness
        ioprio_get = {"x86_64": 252, "aarch64": 31}.get(platform.machine())
        if ioprio_get is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.syscall(ioprio_get, 1, upload.pid) >> 13 == 3  # the idle I/O class
    finally:
        status = upload.stop(60)
    assert status.state == "done", status
    assert_valid(tmp_path / "nas", episodes=1)


def test_upload_rides_out_the_server_going_down(tmp_path: Path, s3: S3Server) -> None:
    # Each object takes a while to arrive, so the server can be stopped with the upload half
    # done; the recorder must neither stop nor crash, and the upload must finish once it is back.
    s3.delay_s = 0.15
    root = tmp_path / "ds"
    proc = start_record(
        *FAST,
        "--record.repo_id=lab/outage",
        f"--record.root={root}",
        "--record.num_episodes=3",
        "--record.episode_time_s=1",
        f"--record.push_to=s3://{BUCKET}/outage",
    )
    try:
        s3.wait_for(lambda: len(_data_and_video_puts(s3, "outage")) >= 2)
        s3.stop()
        logs = root / ".dorobot" / "logs"
        _wait(lambda: any("round failed" in p.read_text() for p in logs.glob("upload-*.log")))
        s3.start()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    said = [line for line in out.splitlines() if "retrying" in line]
    assert len(said) == 1 and "cannot reach" in said[0] and "the recording goes on" in said[0], out
    assert SECRET not in out + err
    assert f"Upload to s3://{BUCKET}/outage: going again" in out
    assert f"✓ Upload to s3://{BUCKET}/outage complete" in out
    assert_valid(root, episodes=3)
    assert_mirrored(s3, "outage", root, tmp_path / "copy", episodes=3)
    assert_valid_after_every_round(s3, "outage")


def test_push_finishes_what_a_killed_recorder_left_without_sending_it_again(
    tmp_path: Path, s3: S3Server
) -> None:
    s3.delay_s = 0.4
    root = tmp_path / "ds"
    dest = f"s3://{BUCKET}/killed"
    proc = start_record(
        *FAST,
        "--record.repo_id=lab/killed",
        f"--record.root={root}",
        "--record.num_episodes=3",
        "--record.episode_time_s=1",
        f"--record.push_to={dest}",
    )
    seen: list[str] = []
    try:
        # Every episode is committed; the recorder waits for the upload: kill it there.
        wait_for_line(proc, rf"Uploading to {re.escape(dest)}: ", seen, timeout=90)
        s3.wait_for(lambda: len(_data_and_video_puts(s3, "killed")) >= 2)
    finally:
        proc.kill()
        proc.communicate()
    # The upload process notices its recorder is gone and ends by itself.
    _wait(lambda: not _worker_pids(root), timeout=30)
    arrived = {rel for rel in _ledger_files(root) if rel.startswith(("data/", "videos/"))}
    before = _data_and_video_puts(s3, "killed")
    assert arrived and len(arrived) < 9, arrived  # some files were up, not all
    assert all(before[rel] == 1 for rel in arrived)

    done = subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "push", str(root), dest],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ {dest}: 3 episodes" in done.stdout
    after = _data_and_video_puts(s3, "killed")
    assert {rel: after[rel] for rel in arrived} == {rel: 1 for rel in arrived}  # not sent again
    assert len(after) == 9 and max(after.values()) <= 2  # at most the file in flight, twice
    assert_mirrored(s3, "killed", root, tmp_path / "copy", episodes=3)
    assert_valid_after_every_round(s3, "killed")
    again = subprocess.run(
        [sys.executable, "-m", "operating_platform.cli", "push", str(root), dest],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "already up to date (3 episodes)" in again.stdout, again.stdout
    assert _data_and_video_puts(s3, "killed") == after


def test_push_sends_changed_files_and_removes_what_the_dataset_no_longer_has(
    tmp_path: Path, s3: S3Server
) -> None:
    root = tmp_path / "ds"
    dest = f"s3://{BUCKET}/changes"
    assert run_session(root, episodes=2).returncode == 0

    def push() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "operating_platform.cli", "push", str(root), dest],
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert push().returncode == 0
    video = "videos/chunk-000/observation.images.image_top/episode_000000.mp4"
    parquet = "data/chunk-000/episode_000001.parquet"
    # Touched but the same: not sent. Rewritten in place with other bytes: sent again.
    os.utime(root / parquet, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = bytearray((root / video).read_bytes())
    changed[-1] ^= 0xFF
    (root / video).write_bytes(bytes(changed))
    # A file of an episode the dataset no longer has, and a file outside the dataset's folders.
    s3.client().put_object(Bucket=BUCKET, Key="changes/data/chunk-000/episode_000007.parquet", Body=b"old")
    s3.client().put_object(Bucket=BUCKET, Key="changes/notes.txt", Body=b"someone's notes")
    done = push()
    assert done.returncode == 0, done.stdout + done.stderr
    puts = s3.object_puts(BUCKET, "changes/")
    assert puts[video] == 2 and puts[parquet] == 1
    remote = _remote(s3, "changes")
    assert remote[video] == bytes(changed)
    assert "data/chunk-000/episode_000007.parquet" not in remote
    assert remote["notes.txt"] == b"someone's notes"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftpx://host/pick", "unknown URL scheme 'ftpx://'"),
        ("hf://lab/pick", "hf://datasets/USER/NAME"),
        (f"s3://AKIAEXAMPLE:{SECRET}@bucket/pick", "credentials do not go in the URL"),
        ("https://example.com/pick", "cannot be written to"),
    ],
)
def test_a_wrong_destination_is_refused_before_anything_is_recorded(
    tmp_path: Path, url: str, says: str
) -> None:
    root = tmp_path / "ds"
    proc = run_session(root, f"--record.push_to={url}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and errors[0].startswith("error: --record.push_to=") and says in errors[0], errors
    assert SECRET not in proc.stdout + proc.stderr
    assert not root.exists()


def test_a_missing_library_is_named_with_its_pip_command(tmp_path: Path) -> None:
    # The program as installed without the upload extra: s3fs cannot be imported.
    root = tmp_path / "ds"
    flags = [*FAST, "--record.repo_id=lab/x", f"--record.root={root}", f"--record.push_to=s3://{BUCKET}/x"]
    code = (
        "import sys; sys.modules['s3fs'] = None\n"
        "from operating_platform.core.main import main\n"
        f"sys.exit(main({flags!r}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == [
        f"error: --record.push_to=s3://{BUCKET}/x: uploading to S3 needs s3fs: "
        "pip install 'operating_platform[upload]' (see --help)"
    ]
    assert not root.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("problem", ["no credentials", "unreachable", "no bucket"])
def test_an_unusable_destination_never_costs_the_recording(
    tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    root = tmp_path / "ds"
    dest = f"s3://{BUCKET}/unusable"
    says = {
        "no credentials": "no AWS credentials found",
        "unreachable": "cannot reach",
        "no bucket": "does not exist; create it first",
    }[problem]
    if problem == "no credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    elif problem == "unreachable":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    else:
        dest = "s3://no-such-bucket/unusable"
    # Failures that need someone to act end the wait at once: well within the run's own timeout.
    wait = "5" if problem == "unreachable" else "100"
    proc = run_record(
        *FAST,
        "--record.repo_id=lab/unusable",
        f"--record.root={root}",
        "--record.num_episodes=2",
        "--record.episode_time_s=1",
        f"--record.push_to={dest}",
        f"--record.push_timeout_s={wait}",
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Traceback" not in output and SECRET not in output
    assert_valid(root, episodes=2)
    failing = [line for line in proc.stdout.splitlines() if "retrying" in line]
    assert len(failing) == 1 and says in failing[0], proc.stdout
    unfinished = [line for line in proc.stdout.splitlines() if "not finished" in line]
    assert len(unfinished) == 1 and "2 episodes" in unfinished[0] and says in unfinished[0], proc.stdout
    command = re.search(r"`(dorobot push [^`]+)`", unfinished[0])
    assert command is not None
    if problem == "no bucket":
        # Once the cause is gone, the command the line names finishes the upload.
        s3.client().create_bucket(Bucket="no-such-bucket")
        argv = shlex.split(command[1])[1:]
        done = subprocess.run(
            [sys.executable, "-m", "operating_platform.cli", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        objects = s3.client().list_objects_v2(Bucket="no-such-bucket")["Contents"]
        assert {o["Key"] for o in objects} >= {"unusable/meta/info.json"}
        assert len(objects) == 4 + 2 * 3


def test_push_says_in_one_line_what_stops_it(
    tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ds"
    assert run_session(root, episodes=1).returncode == 0
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "operating_platform.cli",
            "push",
            str(root),
            f"s3://{BUCKET}/x",
            "--retry-for=2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "cannot reach" in errors[0] and "1 episode" in errors[0], errors
    assert f"`dorobot push {root} s3://{BUCKET}/x` finishes it" in errors[0]
    assert SECRET not in proc.stdout + proc.stderr
    interrupted = subprocess.Popen(
        [sys.executable, "-m", "operating_platform.cli", "push", str(root), f"s3://{BUCKET}/x"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_line(interrupted, "cannot reach .*; retrying", [])  # it waits to try again: Ctrl-C
    interrupted.send_signal(signal.SIGINT)
    out, err = interrupted.communicate(timeout=60)
    assert interrupted.returncode == 130, out + err
    assert error_lines(err) == [
        f"error: interrupted; what is uploaded stays there, `dorobot push {root} s3://{BUCKET}/x` resumes"
    ]


def test_a_snapshot_holds_only_what_info_json_has_committed(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    assert run_session(root, episodes=2).returncode == 0
    meta = root / "meta"
    committed = {f"meta/{p.name}": p.read_bytes() for p in meta.iterdir()}
    # A commit under way: its JSONL lines are appended (one only half), info.json not replaced yet.
    with open(meta / "tasks.jsonl", "a") as f:
        f.write('{"task_index": 1, "task": "Stack the cubes"}\n')
    with open(meta / "episodes.jsonl", "a") as f:
        f.write('{"episode_index": 2, "tasks": ["Stack the cubes"], "length": 30}\n')
    with open(meta / "episodes_stats.jsonl", "a") as f:
        f.write('{"episode_index": 2, "sta')
    (meta / ".info.json.tmp").write_text("{}")  # the next info.json, being written
    snapshot = read_snapshot(root)
    assert snapshot.codebase_version == "v2.1" and snapshot.total_episodes == 2
    assert snapshot.meta == committed
    cameras = ("observation.images.image_top", "observation.images.image_wrist")
    assert snapshot.files == [
        path
        for index in (0, 1)
        for path in (
            f"data/chunk-000/episode_{index:06d}.parquet",
            *(f"videos/chunk-000/{camera}/episode_{index:06d}.mp4" for camera in cameras),
        )
    ]


def _record_like(root: Path) -> SimpleNamespace:
    """What the status line reads from a `Record`."""
    return SimpleNamespace(
        stats=CaptureStats(30),
        session_missed_ticks=0,
        episode_frames=0,
        fps=30,
        task="Pick the cube",
        status=lambda: None,
        halted=None,
        dataset=SimpleNamespace(root=root),
    )


def test_the_status_line_shows_what_the_upload_has_left(tmp_path: Path, s3: S3Server) -> None:
    root = tmp_path / "ds"
    assert run_session(root, episodes=2).returncode == 0
    s3.delay_s = 0.3
    upload = UploadProcess(root, f"s3://{BUCKET}/status").start()
    disk = (2**30, 60.0)
    try:
        _wait(lambda: upload.status().state == "uploading")
        line = render(_record_like(root), "REC", 2, None, disk, upload=upload.status()).plain
        shown = re.search(r"\| upload: (\d+) episodes, ([\d.]+) MB left \|", line)
        assert shown is not None, line
        total = sum((root / rel).stat().st_size for rel in read_snapshot(root).files) / 2**20
        assert shown[1] == "2" and 0 < float(shown[2]) <= round(total, 1) + 0.1
    finally:
        final = upload.stop(60)
    assert final.state == "done"
    assert "| upload: up to date |" in render(_record_like(root), "REC", 2, None, disk, upload=final).plain


def test_a_killed_upload_process_is_started_again_and_resumes(tmp_path: Path, s3: S3Server) -> None:
    root = tmp_path / "ds"
    assert run_session(root, episodes=2).returncode == 0
    s3.delay_s = 0.3
    upload = UploadProcess(root, f"s3://{BUCKET}/restart").start()
    try:
        s3.wait_for(lambda: len(_data_and_video_puts(s3, "restart")) >= 2)
        first = upload.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        _wait(lambda: upload.pid != first)
    finally:
        final = upload.stop(60)
    assert final.state == "done", final
    puts = _data_and_video_puts(s3, "restart")
    assert len(puts) == 6 and sum(puts.values()) <= 7, puts  # at most the file in flight, twice
    assert_mirrored(s3, "restart", root, tmp_path / "copy", episodes=2)


def test_a_v30_recording_is_uploaded_as_its_files_are_packed(tmp_path: Path, s3: S3Server) -> None:
    """v3.0 packs episodes into shared files during the session: the remote follows, byte for
    byte, and what the recorder no longer has (files merged away) is gone from it too."""
    root = tmp_path / "ds"
    flags = [
        "--record.format=v3.0",
        "--record.video_files_size_in_mb=0.25",
        "--record.data_files_size_in_mb=0.03",
    ]
    proc = run_session(root, f"--record.push_to=s3://{BUCKET}/lab/v3", *flags, episodes=6)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"✓ Upload to s3://{BUCKET}/lab/v3 complete" in proc.stdout, proc.stdout[-1500:]
    assert "packing episodes" in proc.stdout  # files were merged while the upload ran
    assert_valid(root, episodes=6)
    assert_mirrored(s3, "lab/v3", root, tmp_path / "copy", episodes=6)
    videos = [key for key in _remote(s3, "lab/v3") if key.startswith("videos/")]
    assert len(videos) < 2 * 6  # packed: fewer files than episodes, per camera
    counts = [json.loads(info)["total_episodes"] for info, _keys in s3.info_states]
    assert counts == sorted(counts) and counts[-1] == 6


def test_merge_gathers_a_station_from_s3_with_a_local_one(tmp_path: Path, s3: S3Server) -> None:
    """`dorobot merge` reads a source by its fsspec URL: a station that uploaded to the bucket."""
    station = tmp_path / "station"
    proc = run_session(station, f"--record.push_to=s3://{BUCKET}/station", episodes=2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    local = tmp_path / "local"
    assert run_session(local, episodes=1).returncode == 0
    out = tmp_path / "all"
    merged = subprocess.run(
        [
            sys.executable,
            "-m",
            "operating_platform.cli",
            "merge",
            str(out),
            f"s3://{BUCKET}/station",
            str(local),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert_valid(out, episodes=3)
    lengths = [json.loads(line)["length"] for line in (out / "meta/episodes.jsonl").read_text().splitlines()]
    assert lengths == [30, 30, 30]

    # The station's episodes came first, with the very rows it recorded; the local one follows.
    def rows(root: Path, index: int) -> dict:
        return pq.read_table(root / f"data/chunk-000/episode_{index:06d}.parquet").to_pydict()

    for index in range(2):
        assert rows(out, index) == rows(station, index)
    last, theirs = rows(out, 2), rows(local, 0)
    assert last["observation.state"] == theirs["observation.state"] and set(last["episode_index"]) == {2}
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "operating_platform.cli",
            "merge",
            str(tmp_path / "x"),
            f"s3://{BUCKET}/nothing",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 1 and len(error_lines(missing.stderr)) == 1, missing.stderr
