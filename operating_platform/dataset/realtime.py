"""Keep encoder threads out of real-time scheduling, and below everything else.

SVT-AV1, run by root (as on many robot computers), switches every thread it starts to SCHED_FIFO
at the highest priority. Such threads ignore niceness and take a core from the capture clock
whenever they have work, and processes started afterwards inherit the policy. A thread without
the CAP_SYS_NICE capability cannot make that switch (RLIMIT_RTPRIO is 0 unless someone raised
it), and threads inherit their creator's capabilities: so a thread that gives the capability up
before opening an encoder keeps all of the encoder's threads on the normal policy, from their
first instant.

The other way round, `run_only_when_idle` puts a process under SCHED_IDLE: it then gets a core
only when no normal thread wants it, so a capture tick that falls due never waits for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator

_CAP_SYS_NICE = 23
_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Sets(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None


def _set_sys_nice(enabled: bool) -> bool:
    """Enable or disable CAP_SYS_NICE in this thread's effective set; False if not possible."""
    libc = _libc()
    if libc is None or not hasattr(libc, "capset"):
        return False
    header = _Header(_CAPABILITY_VERSION_3, 0)
    sets = (_Sets * 2)()
    if libc.capget(ctypes.byref(header), sets) != 0:
        return False
    word, bit = divmod(_CAP_SYS_NICE, 32)
    if enabled:
        if not sets[word].permitted & (1 << bit):
            return True  # never had it: nothing to give back
        sets[word].effective |= 1 << bit
    else:
        sets[word].effective &= ~(1 << bit)
    return libc.capset(ctypes.byref(header), sets) == 0


def forgo_realtime() -> None:
    """From now on, this thread and every thread it starts stay off real-time policies.

    For a process that only encodes: call it before opening any encoder.
    """
    if not _set_sys_nice(False):
        leave_realtime_scheduling()


@contextlib.contextmanager
def without_realtime() -> Iterator[None]:
    """Open an encoder inside this block: none of its threads gets a real-time policy.

    The calling thread gets its capability back afterwards; the encoder's threads do not.
    """
    dropped = _set_sys_nice(False)
    try:
        yield
    finally:
        if dropped:
            _set_sys_nice(True)
        else:
            leave_realtime_scheduling()


def leave_realtime_scheduling() -> None:
    """Put every thread of this process that runs under a real-time policy back to the normal one.

    The fallback where capabilities cannot be changed: it repairs after the fact, so an
    encoder's threads may run real-time for the moment between their start and this call.
    """
    realtime = (getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1))
    with contextlib.suppress(OSError):
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread may end while we look
                if os.sched_getscheduler(int(tid)) in realtime:
                    os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))


def run_only_when_idle() -> bool:
    """Put every thread of this process, and every thread they start, under SCHED_IDLE.

    Such threads run only on CPU time that no normal thread wants: a thread of another process
    waking up (the capture clock) takes their core at once, where niceness only shrinks their
    share. Call it before starting threads of one's own (threads inherit the policy from their
    creator). Returns False where the kernel has no SCHED_IDLE, leaving niceness to do what it can.
    """
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None:
        return False
    try:
        tids = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]  # 0: the calling thread
    applied = False
    for tid in tids:
        with contextlib.suppress(OSError):  # a thread may end while we look
            os.sched_setscheduler(tid, policy, os.sched_param(0))
            applied = applied or tid in (0, threading.get_native_id())
    return applied
