"""The two kinds of destination behind one interface.

- `FsspecRemote` (S3, a folder, any fsspec file system): files one by one, data first, then
  the metadata with info.json last, then deletions; the ledger records each file as it lands.
  Object stores replace an object atomically; on a folder each file is written under a hidden
  name and renamed, so a reader never sees half a file.
- `HubRemote` (huggingface_hub): the whole round is one commit (every added, changed and
  deleted file), so the repository always holds one complete state; then the tag named after
  the codebase version (LeRobot's loader resolves revisions by it) is moved to that commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from operating_platform.dataset.metadata import INFO_PATH
from operating_platform.dataset.snapshot import Snapshot
from operating_platform.upload.destination import Destination
from operating_platform.upload.ledger import Entry, UploadLedger
from operating_platform.upload.plan import Item, Plan, sha256_file

CARD = "README.md"
Progress = Callable[[int], None]


class UploadRefused(Exception):
    """The destination refuses the upload until someone acts (credentials, a missing bucket,
    another dataset there); retrying soon will not help. The message says what to do."""


class SourceChanged(Exception):
    """A local file changed while it was being sent: the round stops before its metadata."""


class Remote(ABC):
    """A destination as an upload round sees it."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest

    @abstractmethod
    def connect(self) -> dict[str, int]:
        """Make the destination ready; return what it holds (relative path -> size)."""

    @abstractmethod
    def read(self, rel: str) -> bytes | None:
        """The remote file `rel`, or None if there is none."""

    def extras(self, snapshot: Snapshot, ledger: UploadLedger, remote_paths: set[str]) -> dict[str, bytes]:
        """Files the destination gets besides the dataset's own (relative path -> bytes)."""
        return {}

    def needs_retag(self, version: str) -> bool:
        return False

    @abstractmethod
    def apply(self, plan: Plan, ledger: UploadLedger, remote_paths: set[str], progress: Progress) -> None:
        """Carry out `plan`, recording in `ledger` and `remote_paths` what it changed."""


def make_remote(dest: Destination) -> Remote:
    return HubRemote(dest) if dest.kind == "hub" else FsspecRemote(dest)


def _stat_of(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _hash_unchanged(item: Item) -> str:
    """The sha256 of a file about to be sent, checking it is still the file the plan saw."""
    assert item.path is not None
    digest = sha256_file(item.path)
    if _stat_of(item.path) != (item.size, item.mtime_ns):
        raise SourceChanged(f"{item.path} changed while it was being read; it is sent again")
    return digest


def _files_unchanged(plan: Plan) -> None:
    """Before the metadata goes up: every file it describes is still the one that was sent.

    In v3.0 the recorder packs files into bigger ones between commits; a file sent and then
    replaced would otherwise be described by metadata of another state.
    """
    for item in plan.files:
        assert item.path is not None
        try:
            unchanged = _stat_of(item.path) == (item.size, item.mtime_ns)
        except FileNotFoundError:
            unchanged = False
        if not unchanged:
            raise SourceChanged(f"{item.path} changed after it was sent; the round starts again")


# -- fsspec -------------------------------------------------------------------------------------


class FsspecRemote(Remote):
    """S3 (s3fs), a local or mounted folder, or any other fsspec file system."""

    def __init__(self, dest: Destination) -> None:
        super().__init__(dest)
        self.fs: Any = None

    def _full(self, rel: str) -> str:
        return f"{self.dest.path.rstrip('/')}/{rel}"

    def connect(self) -> dict[str, int]:
        import fsspec

        if self.dest.protocol in ("s3", "s3a"):
            # A fresh client after every failure; botocore's own retries are kept short, as
            # the worker retries with its own backoff and reports what it is waiting for.
            self.fs = fsspec.filesystem(
                "s3",
                skip_instance_cache=True,
                config_kwargs={
                    "retries": {"max_attempts": 2, "mode": "standard"},
                    "connect_timeout": 10,
                    "read_timeout": 120,
                },
            )
            self.fs.retries = 1
        else:
            self.fs = fsspec.filesystem(self.dest.protocol, skip_instance_cache=True)
        base = self.dest.path.rstrip("/")
        if self.dest.is_local:
            self.fs.makedirs(base, exist_ok=True)
        prefix = base.strip("/") + "/"
        listing = {}
        for name, info in self.fs.find(base, detail=True).items():
            name = name.split("://", 1)[-1].strip("/")
            if name.startswith(prefix) and info.get("type", "file") == "file":
                listing[name[len(prefix) :]] = int(info.get("size") or 0)
        return listing

    def read(self, rel: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._full(rel))
        except FileNotFoundError:
            return None

    def apply(self, plan: Plan, ledger: UploadLedger, remote_paths: set[str], progress: Progress) -> None:
        sent = 0
        for item in plan.items:
            if plan.meta and item is plan.meta[0]:
                _files_unchanged(plan)
            if item.path is not None:
                digest = _hash_unchanged(item)
                self._put_file(item, lambda n, base=sent: progress(base + n))
                if _stat_of(item.path) != (item.size, item.mtime_ns):
                    raise SourceChanged(f"{item.path} changed while it was being sent; it is sent again")
                ledger.put(item.rel, Entry(item.size, item.mtime_ns, digest))
            else:
                assert item.data is not None
                self._put_bytes(item.rel, item.data)
                ledger.put(item.rel, Entry(item.size, 0, item.sha256))
            remote_paths.add(item.rel)
            sent += item.size
            progress(sent)
            if item.rel == INFO_PATH:
                ledger.published(plan.snapshot.total_episodes)
        for rel in plan.deletions:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self._full(rel))
            ledger.delete(rel)
            remote_paths.discard(rel)

    def _put_file(self, item: Item, progress: Progress) -> None:
        from fsspec.callbacks import Callback

        class _Sent(Callback):
            def call(self, *args: Any, **kwargs: Any) -> None:
                progress(self.value)

        target = self._full(item.rel)
        if not self.dest.is_local:
            self.fs.put_file(str(item.path), target, callback=_Sent())
            return
        partial = self._partial(target)
        self.fs.put_file(str(item.path), partial, callback=_Sent())
        self.fs.mv(partial, target)

    def _put_bytes(self, rel: str, data: bytes) -> None:
        target = self._full(rel)
        if not self.dest.is_local:
            self.fs.pipe_file(target, data)
            return
        partial = self._partial(target)
        self.fs.pipe_file(partial, data)
        self.fs.mv(partial, target)

    def _partial(self, target: str) -> str:
        # Hidden, so a reader globbing the folder never takes it for a file of the dataset; a
        # leftover one is removed by the next round as a file the dataset does not have.
        folder, name = target.rsplit("/", 1)
        self.fs.makedirs(folder, exist_ok=True)
        return f"{folder}/.{name}.part"


# -- the Hugging Face Hub ---------------------------------------------------------------------


class HubRemote(Remote):
    """A dataset repository on the Hub (or any server speaking its API, via HF_ENDPOINT)."""

    def __init__(self, dest: Destination) -> None:
        super().__init__(dest)
        self.api: Any = None
        self._tag_target: dict[str, str | None] = {}
        self._head: str | None = None
        self._has_dataset = False

    def connect(self) -> dict[str, int]:
        from huggingface_hub import HfApi, get_token
        from huggingface_hub.hf_api import RepoFile
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()  # progress is ours to show, on the status line or the console
        if get_token() is None:
            raise UploadRefused(
                "no Hugging Face token found; set HF_TOKEN or run `hf auth login` (a token with write access)"
            )
        self.api = HfApi()
        self.api.create_repo(self.dest.repo_id, repo_type="dataset", exist_ok=True)
        tree = self.api.list_repo_tree(self.dest.repo_id, repo_type="dataset", recursive=True)
        listing = {entry.path: int(entry.size) for entry in tree if isinstance(entry, RepoFile)}
        refs = self.api.list_repo_refs(self.dest.repo_id, repo_type="dataset")
        self._head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
        self._tag_target = {t.name: t.target_commit for t in refs.tags}
        self._has_dataset = INFO_PATH in listing
        return listing

    def read(self, rel: str) -> bytes | None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        with tempfile.TemporaryDirectory() as cache:
            try:
                path = hf_hub_download(self.dest.repo_id, rel, repo_type="dataset", cache_dir=cache)
            except EntryNotFoundError:
                return None
            return Path(path).read_bytes()

    def extras(self, snapshot: Snapshot, ledger: UploadLedger, remote_paths: set[str]) -> dict[str, bytes]:
        # The card is ours to write while it is missing or still the one we wrote; a card
        # someone edited on the Hub is theirs.
        if CARD in remote_paths and CARD not in ledger.files:
            return {}
        return {CARD: dataset_card(snapshot.info, self.dest.repo_id).encode()}

    def needs_retag(self, version: str) -> bool:
        return self._has_dataset and self._head is not None and self._tag_target.get(version) != self._head

    def apply(self, plan: Plan, ledger: UploadLedger, remote_paths: set[str], progress: Progress) -> None:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        operations: list[Any] = []
        entries: dict[str, Entry] = {}
        for item in plan.items:
            if item.path is not None:
                entries[item.rel] = Entry(item.size, item.mtime_ns, _hash_unchanged(item))
                operations.append(CommitOperationAdd(path_in_repo=item.rel, path_or_fileobj=str(item.path)))
            else:
                assert item.data is not None
                entries[item.rel] = Entry(item.size, 0, item.sha256)
                operations.append(CommitOperationAdd(path_in_repo=item.rel, path_or_fileobj=item.data))
        operations += [CommitOperationDelete(path_in_repo=rel) for rel in plan.deletions]
        if operations:
            progress(0)
            commit = self.api.create_commit(
                self.dest.repo_id,
                operations,
                commit_message=_commit_message(plan),
                repo_type="dataset",
            )
            # Committed: the Hub now holds this state whole. The ledger follows.
            for rel, entry in entries.items():
                ledger.put(rel, entry)
                remote_paths.add(rel)
            for rel in plan.deletions:
                ledger.delete(rel)
                remote_paths.discard(rel)
            if any(item.rel == INFO_PATH for item in plan.meta):
                ledger.published(plan.snapshot.total_episodes)
            self._head = commit.oid
            self._has_dataset = True
            progress(plan.bytes)
        version = plan.snapshot.codebase_version
        if self.needs_retag(version):
            self._move_tag(version)

    def _move_tag(self, version: str) -> None:
        from huggingface_hub.errors import HfHubHTTPError

        # The Hub has no way to move a tag in one step: for a moment between these two calls
        # the tag is missing, never pointing at an incomplete state.
        if self._tag_target.get(version) is not None:
            try:
                self.api.delete_tag(self.dest.repo_id, tag=version, repo_type="dataset")
            except HfHubHTTPError as exc:
                if getattr(exc.response, "status_code", None) != 404:
                    raise
            self._tag_target.pop(version, None)
        self.api.create_tag(self.dest.repo_id, tag=version, revision=self._head, repo_type="dataset")
        self._tag_target[version] = self._head


def _commit_message(plan: Plan) -> str:
    total = plan.snapshot.total_episodes
    parts = [f"{len(plan.items)} file(s)"]
    if plan.deletions:
        parts.append(f"{len(plan.deletions)} removed")
    return f"Dataset with {total} episode(s): {', '.join(parts)}"


def dataset_card(info: dict[str, Any], repo_id: str) -> str:
    """A dataset card in the form LeRobot gives its datasets: tagged `LeRobot`, its parquet
    files as the default configuration, and info.json as the structure."""
    front = {
        "license": "apache-2.0",
        "task_categories": ["robotics"],
        "tags": ["LeRobot"],
        "configs": [{"config_name": "default", "data_files": "data/*/*.parquet"}],
    }
    robot = info.get("robot_type")
    structure = json.dumps(info, indent=4, ensure_ascii=False)
    return (
        "---\n"
        f"{yaml.safe_dump(front, sort_keys=False, allow_unicode=True)}"
        "---\n\n"
        f"# {repo_id}\n\n"
        "A robot-demonstration dataset in the [LeRobot](https://github.com/huggingface/lerobot) format "
        f"(codebase version {info.get('codebase_version')}): {info.get('total_episodes')} episodes, "
        f"{info.get('total_frames')} frames at {info.get('fps')} fps"
        f"{f', robot {robot}' if robot else ''}.\n\n"
        "```python\n"
        "from lerobot.datasets.lerobot_dataset import LeRobotDataset\n\n"
        f'dataset = LeRobotDataset("{repo_id}")\n'
        "```\n\n"
        "## Dataset Structure\n\n"
        "[meta/info.json](meta/info.json):\n"
        f"```json\n{structure}\n```\n"
    )
