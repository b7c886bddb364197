"""One dataset, one destination: upload rounds, what is left, and what a failure means.

A round reads a snapshot of the dataset (`dataset/snapshot.py`), plans what the destination
lacks against the ledger, and carries the plan out. After a failure the destination is listed
again before the next round, so a round never builds on what it only hoped had happened.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operating_platform.dataset.metadata import INFO_PATH, DatasetError
from operating_platform.dataset.snapshot import Snapshot, read_snapshot
from operating_platform.upload.destination import Destination
from operating_platform.upload.ledger import UploadLedger
from operating_platform.upload.plan import LocalFileMissing, Plan, make_plan
from operating_platform.upload.remotes import Remote, SourceChanged, UploadRefused, make_remote

MB = 2**20
# Environment variables whose values must never appear in a message.
SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class Left:
    """What the destination still lacks: committed episodes whose metadata is not there yet,
    and the bytes still to send."""

    episodes: int
    bytes: int

    @property
    def nothing(self) -> bool:
        return self.episodes == 0 and self.bytes == 0

    def describe(self) -> str:
        episodes = f"{self.episodes} episode{'s' if self.episodes != 1 else ''}"
        return f"{episodes}, {self.bytes / MB:.1f} MB left"


@dataclass(frozen=True)
class Failure:
    """A failed round in one line; `permanent` when retrying will not help until someone acts."""

    message: str
    permanent: bool


class Uploader:
    """Brings one destination up to date with one local dataset, a round at a time.

    It promises: files of a round are sent data first, then metadata with info.json last,
    then remote files the dataset no longer has are deleted (on the Hub: all of it as one
    commit), so the remote copy is a valid dataset after every completed round; a file whose
    upload completed is recorded at once and not sent again unless its content changes; the
    local dataset is only read, never written (the ledger lives in `.dorobot/upload/`).
    """

    def __init__(self, root: Path, dest: Destination) -> None:
        self.root = Path(root)
        self.dest = dest
        self.remote: Remote = make_remote(dest)
        self.ledger = UploadLedger(self.root, dest)
        self.remote_paths: set[str] | None = None
        self.plan: Plan | None = None
        self.sent = 0
        self._latest: tuple[tuple[int, int], Snapshot] | None = None

    def connect(self) -> None:
        listing = self.remote.connect()
        self.ledger.reconcile(listing)
        self._refuse_foreign(listing)
        self.remote_paths = set(listing)

    def next_plan(self) -> Plan:
        if self.remote_paths is None:
            self.connect()
        assert self.remote_paths is not None
        try:
            return self._plan_from(self.snapshot())
        except LocalFileMissing:
            # Packing moves files without touching info.json, so the snapshot kept since
            # info.json last changed can name a file merged away: read it again before calling
            # a file lost.
            self._latest = None
            return self._plan_from(self.snapshot())

    def _plan_from(self, snapshot: Snapshot) -> Plan:
        assert self.remote_paths is not None
        if snapshot.total_episodes == 0:
            return Plan(snapshot=snapshot)  # a dataset just started: nothing worth a round yet
        extras = self.remote.extras(snapshot, self.ledger, self.remote_paths)
        retag = self.remote.needs_retag(snapshot.codebase_version)
        return make_plan(self.root, snapshot, self.ledger, self.remote_paths, extras, retag)

    def run_round(self, progress: Callable[[int], None] | None = None) -> Plan | None:
        """Upload what the destination lacks; the plan carried out, or None if it lacked nothing."""
        try:
            plan = self.next_plan()
            if plan.empty:
                return None
            self.plan, self.sent = plan, 0

            def sent(n: int) -> None:
                self.sent = n
                if progress is not None:
                    progress(n)

            assert self.remote_paths is not None
            self.remote.apply(plan, self.ledger, self.remote_paths, sent)
            return plan
        except BaseException:
            self.remote_paths = None  # list the destination again before trusting it
            raise
        finally:
            self.plan = None

    def snapshot(self) -> Snapshot:
        """The dataset's latest committed state (read again only once info.json changed)."""
        try:
            st = os.stat(self.root / INFO_PATH)
            signature = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            raise DatasetError(f"{self.root} is not a dataset: {INFO_PATH} is missing") from None
        if self._latest is None or self._latest[0] != signature:
            self._latest = (signature, read_snapshot(self.root))
        return self._latest[1]

    def left(self) -> Left:
        """What is left, counting episodes committed since the current round was planned."""
        snapshot = self.snapshot()
        plan = self.plan
        planned = {item.rel for item in plan.items} if plan is not None else set()
        pending = plan.bytes - self.sent if plan is not None else 0
        for rel in snapshot.files:
            if rel not in planned and rel not in self.ledger.files:
                with contextlib.suppress(OSError):
                    pending += os.stat(self.root / rel).st_size
        if plan is None:
            pending += sum(len(data) for rel, data in snapshot.meta.items() if not self._recorded(rel, data))
        episodes = max(0, snapshot.total_episodes - self.ledger.remote_episodes)
        return Left(episodes, pending if episodes or plan is not None else 0)

    def _recorded(self, rel: str, data: bytes) -> bool:
        entry = self.ledger.files.get(rel)
        return entry is not None and entry.size == len(data)

    def _refuse_foreign(self, listing: dict[str, int]) -> None:
        """Refuse to overwrite a dataset at the destination that is not an earlier state of ours."""
        if INFO_PATH not in listing or INFO_PATH in self.ledger.files:
            return
        data = self.remote.read(INFO_PATH)
        if data is None:
            return
        try:
            theirs = json.loads(data)
        except ValueError:
            theirs = {}
        ours = self.snapshot().info
        same = all(theirs.get(k) == ours.get(k) for k in ("codebase_version", "fps", "robot_type")) and (
            _shape(theirs.get("features")) == _shape(ours.get("features"))
        )
        if not same or int(theirs.get("total_episodes", 0)) > int(ours["total_episodes"]):
            raise UploadRefused(
                f"{self.dest.url} already holds another dataset ({theirs.get('total_episodes', '?')} "
                f"episodes, not an earlier state of {self.root}); it is left as it is: upload to "
                "another destination, or remove that dataset first"
            )


def _shape(features: Any) -> dict[str, Any]:
    if not isinstance(features, dict):
        return {}
    return {k: (v.get("dtype"), v.get("shape")) for k, v in features.items() if isinstance(v, dict)}


def describe_failure(exc: BaseException, dest: Destination) -> Failure:
    """`exc` as one line that names what failed, and whether waiting can fix it."""
    permanent, message = _classify(exc, dest)
    message = " ".join(message.split()) or type(exc).__name__
    return Failure(redact(message), permanent)


def _classify(exc: BaseException, dest: Destination) -> tuple[bool, str]:
    if type(exc) is RuntimeError and exc.__cause__ is not None:
        return _classify(exc.__cause__, dest)  # huggingface_hub wraps a failed file upload so
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, UploadRefused | DatasetError | LocalFileMissing):
        return True, str(exc)
    if isinstance(exc, SourceChanged):
        return False, str(exc)
    name = type(exc).__name__
    module = type(exc).__module__
    if name in ("NoCredentialsError", "PartialCredentialsError", "NoAuthTokenError"):
        return True, (
            "no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE, as for the aws command"
        )
    if name == "LocalTokenNotFoundError":
        return True, "no Hugging Face token found; set HF_TOKEN or run `hf auth login`"
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if module.startswith("huggingface_hub") and status is not None:
        if name in ("RepositoryNotFoundError", "GatedRepoError") or status in (401, 403):
            return (
                True,
                f"the Hub refused access to {dest.repo_id} ({status}): check that HF_TOKEN can write there",
            )
        if status == 429 or status >= 500:
            return False, f"the Hub is busy or failing ({status}: {first})"
        return True, f"the Hub refused the upload ({status}: {first})"
    if isinstance(response, dict):  # botocore's ClientError
        code = str(response.get("Error", {}).get("Code", ""))
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"):
            return True, f"S3 refused access ({code}); check the AWS credentials and the bucket's permissions"
        if code in ("NoSuchBucket", "404"):
            return True, f"the bucket of {dest.url} does not exist; create it first"
        return code not in ("InvalidBucketName", "InvalidArgument"), f"S3: {first}"
    if isinstance(exc, PermissionError):
        return True, f"access denied at {dest.url} ({first}); check the credentials and permissions"
    if isinstance(exc, FileNotFoundError) and dest.protocol in ("s3", "s3a") and "bucket" in first.lower():
        return True, f"the bucket of {dest.url} does not exist; create it first"
    network = module.startswith(("botocore", "aiohttp", "httpx", "httpcore", "urllib3", "requests"))
    if network or isinstance(exc, ConnectionError | TimeoutError):
        # The kind of failure, not its text: that names the file being sent, and the same
        # outage must read the same for every file.
        return False, f"cannot reach {_endpoint(dest)} ({name})"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return False, f"{exc.strerror or first}{where}"
    return False, f"{name}: {first}"


def _endpoint(dest: Destination) -> str:
    if dest.kind == "hub":
        from huggingface_hub import constants

        return constants.ENDPOINT
    if dest.protocol in ("s3", "s3a"):
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "S3"
    return dest.url


def redact(text: str) -> str:
    """`text` with every credential this process knows replaced by `***`."""
    secrets = [os.environ.get(name, "") for name in SECRET_VARIABLES]
    try:
        from huggingface_hub import get_token

        secrets.append(get_token() or "")
    except Exception:  # not installed, or an unreadable token file: nothing more to hide
        pass
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    return text


class Backoff:
    """Delays between attempts after failures: 1, 2, 4, ... seconds up to `cap_s`."""

    def __init__(self, cap_s: float = 60.0) -> None:
        self.cap_s = cap_s
        self.failures = 0

    def next(self, permanent: bool = False) -> float:
        self.failures += 1
        if permanent:
            return self.cap_s
        return min(self.cap_s, 2.0 ** (self.failures - 1))

    def reset(self) -> None:
        self.failures = 0
