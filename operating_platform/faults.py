"""Deliberate failures, for the tests that prove nothing is lost when things go wrong.

`DOROBOT_INJECT_FAULTS` holds comma-separated rules `POINT:EPISODE[:TIMES[:ERRNO]]`: the named
point fails for that episode (its expected index), on its first TIMES attempts, or on every
attempt when TIMES is left out or empty, with the error ERRNO (default EIO; `ENOSPC` stands for
a full disk). Example: `encode:1:1` makes the first encode of episode 1 fail, so its retry must
succeed; `encode:1::ENOSPC` makes every encode of it find the disk full. An episode set aside
gives its index to the next one, which then matches the same rule. Points: `encode`,
`crash` (the encoder process dies), `fsync` and `rename` (while publishing). Unset (always,
in real use), `check` does nothing.
"""

from __future__ import annotations

import errno
import os
import time

ENV = "DOROBOT_INJECT_FAULTS"
PAUSE_ENV = "DOROBOT_INJECT_PAUSES"
CRASH_ENV = "DOROBOT_INJECT_CRASH"


class InjectedFault(OSError):
    """A failure raised on purpose by a fault-injection rule, shaped like an I/O error."""


def check(point: str, episode: int, attempt: int) -> None:
    """Raise `InjectedFault` if a rule asks `point` to fail for this episode and attempt (0-based)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for rule in spec.split(","):
        parts = rule.strip().split(":")
        if len(parts) < 2 or parts[0] != point or int(parts[1]) != episode:
            continue
        times = int(parts[2]) if len(parts) > 2 and parts[2] else None
        code = getattr(errno, parts[3]) if len(parts) > 3 else errno.EIO
        if times is None or attempt < times:
            raise InjectedFault(code, f"injected {point} failure (episode {episode}, attempt {attempt + 1})")


def pause(point: str) -> None:
    """Sleep at `point` if `DOROBOT_INJECT_PAUSES` names it (`publish=0.3,metadata=0.2`).

    Used to hold a crash window open, so that a kill lands there often enough to be tested.
    """
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    for rule in spec.split(","):
        name, _, seconds = rule.strip().partition("=")
        if name == point:
            time.sleep(float(seconds))


def crash_after(episode: int, attempt: int, frames: int) -> bool:
    """True once `DOROBOT_INJECT_CRASH=EPISODE:FRAMES` asks the encoder to die at this point.

    Only on an episode's first attempt, so that the retry shows what a crash mid-episode
    leaves behind is enough to finish it.
    """
    spec = os.environ.get(CRASH_ENV)
    if not spec or attempt:
        return False
    wanted_episode, _, wanted_frames = spec.partition(":")
    return int(wanted_episode) == episode and frames >= int(wanted_frames)
