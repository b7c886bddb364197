"""Signals from outside: a service manager's SIGTERM to the whole process group, a terminal
or SSH connection that hangs up. Each ends the session as the first Ctrl-C does: the episode
in progress is kept, queued saves finish, and nothing counts as a failed encode."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import (
    FAST,
    PLUGINS_DIR,
    SLOW_ENCODING,
    Tmux,
    assert_valid,
    episode_lengths,
    queued_episodes,
    wait_for_line,
)


def _start_in_own_group(root: Path, *flags: str, nohup: bool = False) -> subprocess.Popen:
    # As systemd, Docker or `kill -- -PGID` see it: the recorder leads a process group of its own.
    command = [sys.executable, "-m", "operating_platform.core.main", *FAST, "--record.repo_id=lab/sig"]
    return subprocess.Popen(
        [*command, f"--record.root={root}", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PLUGINS_DIR)},
        start_new_session=True,
        preexec_fn=(lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if nohup else None,
    )


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"]
)
def test_signal_to_the_process_group_stops_cleanly_and_keeps_the_encoder(
    tmp_path: Path, signum: int, code: int
) -> None:
    # As systemd, Docker or `kill -- -PGID` send it: the encoder must not die with the recorder's
    # group (a failed encode, a retry used up), and the session ends as on the first Ctrl-C.
    root = tmp_path / "ds"
    proc = _start_in_own_group(
        root, *SLOW_ENCODING, "--record.num_episodes=20", "--record.episode_time_s=0.5"
    )
    seen: list[str] = []
    try:
        wait_for_line(proc, r"Queued episode 2 ", seen, timeout=120)
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = "".join(seen) + out
    assert proc.returncode == code, out + err
    assert "Traceback" not in out + err
    assert "encoder process died" not in out and "retrying" not in out, out
    queued = queued_episodes(out)
    assert len(queued) >= 3
    assert_valid(root, episodes=len(queued))
    assert episode_lengths(root) == [queued[i] for i in range(len(queued))]


def test_sighup_ignored_from_the_start_stays_ignored(tmp_path: Path) -> None:
    # `nohup dorobot record ...`: asked to outlive the terminal, the session goes on.
    root = tmp_path / "ds"
    proc = _start_in_own_group(root, "--record.num_episodes=3", "--record.episode_time_s=0.5", nohup=True)
    seen: list[str] = []
    try:
        wait_for_line(proc, r"Queued episode 0 ", seen)
        os.killpg(proc.pid, signal.SIGHUP)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, "".join(seen) + out + err
    assert_valid(root, episodes=3)


def _wait_for_screen(tmux: Tmux, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in tmux("capture-pane", "-p"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared:\n{tmux('capture-pane', '-p')}")


def _wait_gone(pid: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"the recorder (pid {pid}) did not exit after its terminal hung up")


@pytest.mark.parametrize("how", ["leader", "under a shell", "under a shell that outlives it"])
def test_terminal_hanging_up_saves_everything(tmp_path: Path, tmux: Tmux, how: str) -> None:
    # An SSH connection dropping: the terminal goes away (writes to it fail from then on), and
    # the recorder gets SIGHUP from the kernel when it leads the terminal's session, from the
    # shell around it when that shell dies of it, and none at all when the shell survives it.
    root = tmp_path / "ds"
    flags = [*FAST, *SLOW_ENCODING, "--record.repo_id=lab/hup", f"--record.root={root}"]
    flags += ["--record.num_episodes=10", "--record.episode_time_s=0"]
    command = shlex.join(
        ["env", f"PYTHONPATH={PLUGINS_DIR}", sys.executable, "-m", "operating_platform.core.main", *flags]
    )
    if how != "leader":
        trap = "trap true HUP; " if how.endswith("outlives it") else ""
        command = shlex.join(["bash", "-c", f"{trap}{command}; echo finished"])
    tmux("new-session", "-d", "-x", "200", "-y", "50", command)
    try:
        pid = int(tmux("list-panes", "-F", "#{pane_pid}").split()[0])
        _wait_for_screen(tmux, "REC ep 0")
        if how != "leader":
            (pid,) = (int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
        time.sleep(0.5)
        tmux("send-keys", "n")
        _wait_for_screen(tmux, "Queued episode 0")
        tmux("send-keys", "p")
        _wait_for_screen(tmux, "REC ep 1")
        time.sleep(0.5)
    finally:
        tmux.kill()
    _wait_gone(pid)
    log = "".join(p.read_text() for p in sorted((root / ".dorobot/logs").glob("*.log")))
    assert "Traceback" not in log and "Logging error" not in log, log
    queued = queued_episodes(log)
    assert sorted(queued) == [0, 1], log  # the episode in progress was saved too
    assert "Save stats: queued=2 completed=2 failed=0" in log, log
    assert_valid(root, episodes=2)
    assert episode_lengths(root) == [queued[0], queued[1]]


# The kernel's SIGHUP, landing while the hang-up a read of the terminal found is being handled:
# the handler runs again in the middle of that call, on the same thread.
HANG_UP_TWICE = """
import os, signal, sys
from operating_platform.core.interrupts import Interrupts

sent = []
def restore_terminal():
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGHUP)

try:  # the terminal is gone by the end: the result goes to a file, failure or not
    with Interrupts("exiting now", restore_terminal=restore_terminal) as interrupts:
        interrupts.hang_up()
        print("still writing")  # to /dev/null now: must not fail
    result = [interrupts.signum, *(os.readlink(f"/proc/self/fd/{fd}") for fd in (0, 1, 2))]
except Exception as exc:
    result = exc
open(sys.argv[1], "w").write(repr(result))
"""


def test_a_hang_up_signal_during_a_hang_up_being_handled_is_harmless(tmp_path: Path) -> None:
    primary, secondary = os.openpty()
    out = tmp_path / "result"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", HANG_UP_TWICE, str(out)],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            timeout=60,
            start_new_session=True,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 0
    assert out.read_text() == repr([int(signal.SIGHUP), "/dev/null", "/dev/null", "/dev/null"])
