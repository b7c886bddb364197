"""The compressor process: `python -m operating_platform.compress.worker ROOT`.

It compresses the dataset's waiting videos to the target in `.dorobot/compress/settings.json`,
on CPU time nothing else wants: SCHED_IDLE (where the kernel has it), nice 19, the idle I/O
class, its encoder's threads never real-time. It reads one command per line on stdin (`pause`,
`resume`, `final`: the session is over) and writes one JSON
object per line on stdout (see `Compressor`). The end of stdin after `final` lets it finish
what waits and exit, between sessions; the end of stdin without `final` (the recorder is gone)
or SIGTERM stops it at once, leaving every file whole. While an episode is recorded, the
recorder stops it outright (SIGSTOP, never while it holds the files lock); should the recorder
die meanwhile, the kernel continues it (SIGCONT as its parent-death signal), and it stops.

One compressor per dataset (`compress.lock`): a new one asks the one of an earlier session to
stop and takes over.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from operating_platform.compress.compressor import Compressor, Controls, Stopped
from operating_platform.compress.settings import CompressSettings
from operating_platform.dataset.compress_target import read_target
from operating_platform.dataset.lock import COMPRESS_LOCK, FileLock
from operating_platform.dataset.realtime import forgo_realtime, run_only_when_idle
from operating_platform.upload.worker import lower_priority

MODULE = "operating_platform.compress.worker"
TAKEOVER_WAIT_S = 15.0


PR_SET_PDEATHSIG = 1


def continue_when_orphaned() -> None:
    """Have the kernel send SIGCONT to this process when its parent dies: a compressor stopped
    by a recorder that was killed meanwhile must not stay stopped, holding its lock, forever."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGCONT)


def take_compress_lock(root: Path) -> FileLock | None:
    """The dataset's compress lock, asking an earlier compressor to stop if it holds it."""
    lock = FileLock(root, COMPRESS_LOCK)
    if lock.acquire():
        return lock
    with contextlib.suppress(ValueError, OSError):
        os.kill(int(lock.holder()), signal.SIGTERM)
    return lock if lock.acquire(wait_s=TAKEOVER_WAIT_S) else None


def _say(message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # nobody listens any more: compress on regardless
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def _listen(controls: Controls) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "pause":
            controls.paused.set()
        elif command == "resume":
            controls.paused.clear()
        elif command == "final":
            controls.final.set()
            controls.wake.set()
    if not controls.final.is_set():
        controls.stop.set()
    controls.paused.clear()
    controls.wake.set()


def main(argv: Sequence[str]) -> int:
    root = Path(argv[0])
    continue_when_orphaned()
    _say({"event": "started"})  # the recorder stops it outright only from now on
    # Before any thread exists, so that every thread, the encoder's too, inherits all of it.
    lower_priority(0)
    run_only_when_idle()
    forgo_realtime()
    target = read_target(root)
    if target is None:
        _say({"event": "error", "error": f"{root} has no compression target"})
        return 2
    lock = take_compress_lock(root)
    if lock is None:
        _say({"event": "error", "error": "another compressor works on this dataset and did not stop"})
        return 3
    controls = Controls()
    signal.signal(signal.SIGTERM, lambda *_: controls.stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the recorder decides; a stray Ctrl-C must not
    threading.Thread(target=_listen, args=(controls,), name="commands", daemon=True).start()
    try:
        Compressor(root, CompressSettings.from_target(target), _say, controls).run()
        _say({"state": "done"})
    except Stopped:
        _say({"state": "stopped"})
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
