"""`dorobot push ROOT DEST`: upload a dataset in the foreground, or finish what a session left.

It does what the recorder's background upload does (same order, same ledger), with progress
on the console: files already at the destination are not sent again, a network failure is
retried with backoff until `--retry-for` seconds pass without progress, and Ctrl-C stops it
with nothing lost (running it again resumes). Exit status: 0 the destination holds every
committed episode; 1 it does not (the message says why); 2 a wrong argument.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from operating_platform.dataset.metadata import INFO_PATH
from operating_platform.upload.destination import DestinationError, check_dependencies, parse_destination
from operating_platform.upload.sync import Backoff, Uploader, describe_failure
from operating_platform.upload.worker import upload_lock

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
LINE_EVERY_S = 2.0


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def push_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dorobot push",
        description="Upload a dataset to hf://datasets/USER/NAME, s3://BUCKET/PREFIX, a folder or another "
        "fsspec URL, or finish the upload a recording session left. Files already there are not sent "
        "again. Credentials come from the environment: HF_TOKEN or `hf auth login`; AWS_* variables, "
        "AWS_PROFILE and AWS_ENDPOINT_URL.",
    )
    parser.add_argument("root", help="the dataset folder (the one holding meta/)")
    parser.add_argument(
        "dest", help="where to upload it: hf://datasets/USER/NAME, s3://BUCKET/PREFIX, a folder"
    )
    parser.add_argument(
        "--retry-for",
        type=float,
        default=300.0,
        metavar="S",
        help="keep retrying a failing upload for this many seconds without progress (default 300)",
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        dest = parse_destination(args.dest, root)
        check_dependencies(dest)
    except DestinationError as exc:
        _error(f"{exc}")
        return EXIT_USAGE
    if not (root / INFO_PATH).is_file():
        _error(f"{root} is not a dataset: {INFO_PATH} is missing")
        return EXIT_FAILED
    lock = upload_lock(root, dest.key)
    try:
        held = lock.acquire()
    except OSError as exc:
        _error(f"cannot upload {root}: cannot write its .dorobot/upload/ ({exc.strerror or exc})")
        return EXIT_FAILED
    if not held:
        _error(
            f"an upload of {root} to {dest.url} is already running (pid {lock.holder()}); wait for it to end"
        )
        return EXIT_FAILED
    try:
        return _push(root, Uploader(root, dest), args.retry_for)
    finally:
        lock.release()


def _push(root: Path, uploader: Uploader, retry_for: float) -> int:
    console = Console(highlight=False, soft_wrap=True, stderr=False)
    url = uploader.dest.url
    again = f"`dorobot push {shlex.quote(str(root))} {shlex.quote(url)}`"
    backoff = Backoff(cap_s=30.0)
    progressed_at = time.monotonic()
    said: str | None = None
    rounds = 0
    sent = 0
    bar = _Bar(console, url)
    try:
        while True:
            try:
                with bar:
                    plan = uploader.run_round(progress=lambda n: bar.update(uploader, n))
            except Exception as exc:
                failure = describe_failure(exc, uploader.dest)
                if uploader.sent:
                    progressed_at = time.monotonic()
                waited = time.monotonic() - progressed_at
                if failure.permanent or waited >= retry_for:
                    left = _left_text(uploader)
                    _error(f"upload to {url} stopped: {failure.message}; {left}{again} finishes it")
                    return EXIT_FAILED
                delay = min(backoff.next(), max(0.5, retry_for - waited))
                if failure.message != said:
                    said = failure.message
                    console.print(f"{failure.message}; retrying (for up to {retry_for:g} s)", markup=False)
                time.sleep(delay)
                continue
            backoff.reset()
            if said is not None:
                console.print("going again", markup=False)
                said = None
            if plan is None:
                break
            rounds += 1
            sent += plan.bytes
            progressed_at = time.monotonic()
    except KeyboardInterrupt:
        _error(f"interrupted; what is uploaded stays there, {again} resumes")
        return EXIT_INTERRUPTED
    snapshot = uploader.snapshot()
    if rounds:
        console.print(
            f"[green]✓[/] {url}: {snapshot.total_episodes} episodes ({sent / 2**20:.1f} MB sent)",
        )
    else:
        console.print(f"[green]✓[/] {url}: already up to date ({snapshot.total_episodes} episodes)")
    return EXIT_OK


def _left_text(uploader: Uploader) -> str:
    try:
        return f"{uploader.left().describe()}; "
    except Exception:  # the dataset cannot be read: the failure already says why
        return ""


class _Bar:
    """A progress bar of the bytes still to send on a terminal; a line every 2 s elsewhere."""

    def __init__(self, console: Console, url: str) -> None:
        self.console = console
        self.url = url
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("uploading to {task.fields[url]}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[episodes]} episode(s) left"),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("", total=None, url=url, episodes="?")
        self._printed = 0.0

    def __enter__(self) -> _Bar:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.live:
            self.progress.stop()

    def update(self, uploader: Uploader, sent: int) -> None:
        now = time.monotonic()
        if not self.live and now - self._printed < LINE_EVERY_S:
            return
        left = uploader.left()
        total = sent + left.bytes
        if self.live:
            self.progress.update(self.task, completed=sent, total=total, episodes=left.episodes)
            return
        self._printed = now
        self.console.print(f"uploading to {self.url}: {left.describe()}", markup=False)
