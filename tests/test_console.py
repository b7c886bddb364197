"""The operator's console in a real terminal (tmux): keys, phases, the status line, and a
terminal left sane on every way out."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from operating_platform.core.keyboard import decode_key
from tests.conftest import FAST, PLUGINS_DIR, SLOW_ENCODING, Tmux, assert_valid, episode_lengths

SESSION = "dorobot-test"


class Terminal:
    """A tmux window running one command; keys in, screen text out."""

    def __init__(self, tmux: Tmux, name: str) -> None:
        self.tmux = tmux
        self.name = name

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-S", "-200", "-t", self.name)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared:\n{self.screen()}")


@pytest.fixture
def terminal(tmux: Tmux) -> callable:
    started: list[str] = []

    def start(*flags: str, own_group: bool = False) -> Terminal:
        name = f"{SESSION}-{len(started)}"
        command = shlex.join([sys.executable, "-m", "operating_platform.core.main", *flags])
        # After the program, print its exit code and the terminal's modes, then linger to be read.
        script = f"{command}; echo EXIT=$?; stty -a | tr '\\n' ' '; echo; echo DONE; sleep 600"
        if own_group:  # job control: the program runs in a process group of its own, as from a shell
            script = f"set -m; {script}"
        env = f"PYTHONPATH={shlex.quote(str(PLUGINS_DIR))} DOROBOT_PLUGINS=faulty_robot"
        shell = f"env {env} bash -c {shlex.quote(script)}"
        tmux("new-session", "-d", "-s", name, "-x", "220", "-y", "50", shell)
        started.append(name)
        return Terminal(tmux, name)

    return start


def _sane(screen: str) -> bool:
    modes = screen.split("EXIT=", 1)[1]
    return " icanon " in f" {modes} " and " echo " in f" {modes} " and "-icanon" not in modes


def _exit_code(screen: str) -> int:
    return int(screen.split("EXIT=", 1)[1].split()[0])


def test_keys_record_discard_pause_and_exit(terminal, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    term = terminal(
        *FAST,
        "--record.repo_id=lab/keys",
        f"--record.root={root}",
        "--record.num_episodes=10",
        "--record.episode_time_s=0",
        "--record.reset_time_s=0",
    )
    term.wait_for("Recording episode 0")
    term.wait_for("REC ep 0")  # the status line
    time.sleep(0.5)
    term.send("n")
    term.wait_for("Reset the scene")
    term.send("p")
    term.wait_for("Recording episode 1")
    time.sleep(0.3)
    term.send("Space")
    term.wait_for("Paused")
    screen = term.wait_for("PAUSED ep 1")
    time.sleep(0.5)
    term.send("Space")
    term.wait_for("Resumed")
    time.sleep(0.3)
    term.send("Right")  # the arrow works like n
    term.wait_for("Queued episode 1")
    term.send("Enter")  # and Enter like p
    term.wait_for("Recording episode 2")
    time.sleep(0.5)
    term.send("d")
    term.wait_for("Discarded episode 2")
    term.send("p")
    term.wait_for("Recording episode 2 (3/10")
    time.sleep(0.4)
    term.send("e")
    screen = term.wait_for("DONE")
    assert _exit_code(screen) == 0, screen
    assert "saves:" in screen or "saved" in screen
    assert_valid(root, episodes=3)
    assert all(n > 0 for n in episode_lengths(root))
    assert _sane(screen), screen


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigterm-group", "sighup-group", "exception"])
def test_terminal_is_restored(terminal, tmp_path: Path, how: str) -> None:
    root = tmp_path / "ds"
    flags = [
        *FAST,
        "--record.repo_id=lab/keys",
        f"--record.root={root}",
        "--record.num_episodes=10",
        "--record.episode_time_s=0",
    ]
    if how == "exception":  # a robot plugin whose disconnect() raises, while the terminal is raw
        flags += ["--robot.type=faulty_sim", "--robot.fault=disconnect"]
    term = terminal(*flags, own_group=how.endswith("-group"))
    term.wait_for("REC ep 0")
    time.sleep(0.5)
    # The recorder itself, not the shell around it (whose command line names the root too).
    recorder = ["pgrep", "-f", f"^{sys.executable} -m operating_platform.*{root}"]
    if how == "ctrl-c":
        term.send("C-c")
    elif how == "sigterm":
        subprocess.run(["pkill", "-TERM", *recorder[1:]], check=True)
    elif how.endswith("-group"):  # as systemd, Docker or `kill -- -PGID` send it: to every process
        pid = int(subprocess.run(recorder, capture_output=True, text=True, check=True).stdout.split()[0])
        os.killpg(os.getpgid(pid), signal.SIGTERM if how == "sigterm-group" else signal.SIGHUP)
    else:
        term.send("e")
    screen = term.wait_for("DONE")
    expected = {"ctrl-c": 130, "sigterm": 143, "sigterm-group": 143, "sighup-group": 129, "exception": 1}[how]
    assert _exit_code(screen) == expected, screen
    if how == "exception":
        assert "disconnect failed" in screen
    assert_valid(root, episodes=1)
    assert _sane(screen), screen


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (b"\x1b[C", "right"),
        (b"\x1bOD", "left"),
        (b"\x1b", "esc"),
        (b"\r", "enter"),
        (b" ", "space"),
        (b"N", "n"),
        (b"\x1b[A", None),
    ],
)
def test_decode_key(data: bytes, key: str | None) -> None:
    assert decode_key(data) == key


def test_exit_shows_a_progress_bar_per_pending_save(terminal, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    term = terminal(
        *FAST,
        *SLOW_ENCODING,
        "--record.repo_id=lab/keys",
        f"--record.root={root}",
        "--record.num_episodes=10",
        "--record.episode_time_s=0.7",
        "--record.reset_time_s=0",
    )
    term.wait_for("Reset the scene")
    term.send("p")
    term.wait_for("Recording episode 1")
    time.sleep(0.5)
    term.send("e")
    screen = term.wait_for("frames encoded")
    assert "saving episode" in screen
    screen = term.wait_for("DONE", timeout=120)
    assert _exit_code(screen) == 0, screen
    assert_valid(root, episodes=2)
    assert _sane(screen)


def _glued(screen: str) -> list[str]:
    """Lines where a message was written onto the status line instead of below it."""
    status = re.compile(r"(REC|PAUSED|RESET) ep \d+ .*\| disk ")
    return [line for line in screen.splitlines() if status.search(line) and "[" in line.split("| disk ")[1]]


def test_esc_clears_the_status_line_before_the_next_message(terminal, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    term = terminal(
        *FAST,
        "--record.repo_id=lab/keys",
        f"--record.root={root}",
        "--record.num_episodes=10",
        "--record.episode_time_s=0",
    )
    term.wait_for("REC ep 0")
    time.sleep(0.5)
    term.send("Escape")
    screen = term.wait_for("DONE")
    assert _exit_code(screen) == 0, screen
    before_exit = screen.split("EXIT=", 1)[0]
    assert not _glued(before_exit), screen
    # The status line is gone once the session ends: no stale copy left among the messages.
    assert not re.search(r"REC ep \d+ ", before_exit), screen
    assert "Queued episode 0" in screen
    assert_valid(root, episodes=1)


def _wait_for_match(term: Terminal, pattern: str, timeout: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, term.screen())
        if match:
            return match
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} never appeared:\n{term.screen()}")


def test_reset_phase_shows_its_timer(terminal, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    term = terminal(
        *FAST,
        "--record.repo_id=lab/keys",
        f"--record.root={root}",
        "--record.num_episodes=2",
        "--record.episode_time_s=0.5",
        "--record.reset_time_s=60",
    )
    term.wait_for("Reset the scene")
    # The status line counts the reset's seconds against its length, as it does an episode's.
    _wait_for_match(term, r"RESET ep 1 +([1-9]\d*\.\d)/60 s", timeout=20)
    term.send("e")
    screen = term.wait_for("DONE")
    assert _exit_code(screen) == 0, screen
    assert_valid(root, episodes=1)


def test_task_text_is_visible_while_typed(terminal, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    term = terminal(
        *FAST,
        "--record.repo_id=lab/keys",
        f"--record.root={root}",
        "--record.num_episodes=2",
        "--record.episode_time_s=0.5",
        "--record.reset_time_s=0",
    )
    term.wait_for("Reset the scene")
    term.send("t")
    term.wait_for("New task for the next episodes:")
    term.send("-l", "Stack the")
    term.wait_for("New task for the next episodes: Stack the")
    time.sleep(1.5)  # several redraws of the status line later, still there
    assert "New task for the next episodes: Stack the" in term.screen(), term.screen()
    term.send("-l", " blocks")
    term.wait_for("New task for the next episodes: Stack the blocks")
    term.send("Enter")
    term.wait_for("Task: Stack the blocks")
    term.send("p")
    screen = term.wait_for("DONE")
    assert _exit_code(screen) == 0, screen
    tasks = [json.loads(line)["task"] for line in (root / "meta/tasks.jsonl").read_text().splitlines()]
    assert tasks == ["Pick the cube", "Stack the blocks"]
    assert _sane(screen)
