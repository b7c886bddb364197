"""kill -9 at random instants loses nothing and duplicates nothing: after one `dorobot recover`,
every episode whose save was announced is in the dataset exactly once with every frame, and
the folder is valid.

Trials vary what the recorder is doing when it dies: capturing, just after a save, encoding
saves in the background, saving synchronously, publishing or retiring a journal (pauses held
open inside the commit and the retirement make those windows wide enough to hit). Some trials
also kill the first recovery at a random instant, in the middle of its own commits. The loop
runs for both layouts; in v3.0, with small file caps, episodes are packed into shared files all
along, and kills also land inside those merges. The summary line gives the counts.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from operating_platform.dataset.verify import verify_dataset
from tests.conftest import FAST, PLUGINS_DIR, episode_lengths, wait_for_line

TRIALS = int(os.environ.get("DOROBOT_KILL_TRIALS", "30"))
ANNOUNCED = re.compile(
    r"Queued episode (\d+) \(queue_pos=\d+, frames=(\d+)|Saved episode (\d+) \((\d+) frames\)"
)
SALVAGED = re.compile(r"salvaging the partial episode's (\d+) intact frames")
PARTIAL = re.compile(
    r"salvaging the partial episode's (\d+) intact|the episode being recorded \((\d+) frames\)"
)
WINDOWS = "publish=0.15,metadata=0.15,retire=0.15"
LAYOUTS = {
    "v2.1": ([], ""),
    "v3.0": (
        [
            "--record.format=v3.0",
            "--record.video_files_size_in_mb=0.1",
            "--record.data_files_size_in_mb=0.02",
        ],
        ",pack-1=0.1,pack-3=0.1,pack-4=0.1",
    ),
}


@dataclass
class Trial:
    number: int
    flags: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    salvage: bool = False
    kill_recovery: bool = False
    windows: str = WINDOWS

    @classmethod
    def make(cls, number: int, layout: str = "v2.1") -> Trial:
        # Every third trial records episodes long enough (75 frames) that raw segments (30
        # frames) are released while recording: recovery must rebuild those from the encoded part.
        seconds = 2.5 if number % 3 == 0 else 0.4
        flags, windows = LAYOUTS[layout]
        trial = cls(number, ["--record.num_episodes=200", f"--record.episode_time_s={seconds}", *flags])
        trial.windows = WINDOWS + windows
        if number % 5 == 4:
            trial.flags.append("--record.use_async_save=false")
        elif number % 4 == 1:  # encoding slower than capture: kills land while saves are pending
            trial.flags += [
                "--robot.camera_width=320",
                "--robot.camera_height=240",
                "--record.preset=veryslow",
            ]
        if number % 3 == 2:
            trial.env["DOROBOT_INJECT_PAUSES"] = trial.windows
        trial.salvage = number % 2 == 1
        trial.kill_recovery = number % 4 == 3
        return trial

    def recover_command(self, root: Path) -> list[str]:
        flags = ["--salvage-partial"] if self.salvage else []
        return [sys.executable, "-m", "operating_platform.cli", "recover", str(root), *flags]


def _record_and_kill(trial: Trial, root: Path, log: Path, rng: random.Random) -> str:
    with open(log, "w") as out_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "operating_platform.core.main",
                *FAST,
                "--record.repo_id=lab/kill",
                f"--record.root={root}",
                *trial.flags,
            ],
            stdout=out_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(PLUGINS_DIR), **trial.env},
        )
        time.sleep(rng.uniform(1.0, 6.0))
        proc.kill()
        proc.wait()
    return log.read_text()


def _kill_a_recovery(trial: Trial, root: Path, rng: random.Random) -> str:
    """Start a recovery with its commit windows held open, and kill it at a random instant."""
    proc = subprocess.Popen(
        trial.recover_command(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "DOROBOT_INJECT_PAUSES": f"{trial.windows},recover=0.1"},
    )
    time.sleep(rng.uniform(0.05, 1.5))
    proc.kill()
    out, _ = proc.communicate(timeout=60)
    return out


def _announced(out: str) -> dict[int, int]:
    announced = {}
    for m in ANNOUNCED.finditer(out):
        index, frames = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        announced[int(index)] = int(frames)
    return announced


def _episode_contents(root: Path) -> list[bytes]:
    """Each committed episode's joint readings: two equal ones would be one episode twice.

    Read from every data file, whichever layout: in v3.0 a file holds many episodes.
    """
    rows = [
        pq.read_table(f, columns=["episode_index", "observation.state"]).to_pydict()
        for f in sorted((root / "data").rglob("*.parquet"))
    ]
    episodes: dict[int, list] = {}
    for table in rows:
        for index, state in zip(table["episode_index"], table["observation.state"], strict=True):
            episodes.setdefault(index, []).append(state)
    return [np.asarray(episodes[i], dtype=np.float32).tobytes() for i in sorted(episodes)]


def _phase(out: str, recovery: str, queued: int, committed_before: int) -> str:
    if "interrupted earlier" in recovery:
        return "packing"
    if "removed leftovers" in recovery and "retired" in recovery:
        return "retiring"
    if any(
        s in recovery for s in ("not part of any committed", "never reached info.json", "already committed")
    ):
        return "publishing"
    if "Recording episode" not in out:
        return "start-up"
    if queued > committed_before:
        return "encoding"
    partial = [int(a or b) for a, b in PARTIAL.findall(recovery)]
    if queued and (not partial or partial[0] <= 3):
        return "just after a save"
    return "capture"


def _assert_each_announced_once(root: Path, announced: dict[int, int], context: str) -> None:
    """Valid, every announced episode with its frames, and no episode committed twice."""
    report = verify_dataset(root)
    assert report.ok, f"{report.problems}\n{context}"
    lengths = episode_lengths(root)
    missing = [i for i, frames in announced.items() if i >= len(lengths) or lengths[i] != frames]
    assert not missing, f"episodes {missing} lost or short\n{context}"
    # Beyond the announced ones, at most the episode the kill caught: ended but not yet
    # announced, or being recorded and salvaged. Never one committed twice.
    assert len(announced) <= len(lengths) <= len(announced) + 1, context
    contents = _episode_contents(root)
    assert len(contents) == len(lengths) and len(set(contents)) == len(contents), context


def _start_and_kill_at(root: Path, pattern: str, pauses: str) -> str:
    """Record with `pauses` held open, and SIGKILL the recorder as soon as it prints `pattern`."""
    flags = [f"--record.root={root}", "--record.num_episodes=6", "--record.episode_time_s=0.4"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "operating_platform.core.main", *FAST, "--record.repo_id=lab/kill", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "DOROBOT_INJECT_PAUSES": pauses},
    )
    seen: list[str] = []
    try:
        wait_for_line(proc, pattern, seen)
        time.sleep(0.5)  # well into the pause that follows the line
    finally:
        proc.kill()
        seen.append(proc.communicate()[0])  # what it printed up to the kill counts too
    return "".join(seen)


def test_kill_aimed_at_retiring_a_journal_and_at_recovery_itself(tmp_path: Path) -> None:
    # Recovery salvages the episode being recorded at the kill, so every one ends in the dataset.
    # Retirement: the saver holds a committed journal renamed out of journal/ but not deleted.
    root = tmp_path / "retire"
    out = _start_and_kill_at(root, r"Episode 0 saved successfully", "retire=60")
    recover = Trial(0, salvage=True).recover_command(root)
    rec = subprocess.run(recover, capture_output=True, text=True, timeout=300)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "removed leftovers" in rec.stdout and "retired" in rec.stdout, rec.stdout
    _assert_each_announced_once(root, _announced(out), out + rec.stdout)
    assert len(episode_lengths(root)) >= 1

    # Recovery itself: killed after its first commit, with more journals still to go.
    root = tmp_path / "recovery"
    out = _start_and_kill_at(root, r"Queued episode 3 ", "publish=60")
    recover = Trial(0, salvage=True).recover_command(root)
    # Recovery pauses before each journal: the kill lands in the pause after its first commit.
    slow = {**os.environ, "PYTHONUNBUFFERED": "1", "DOROBOT_INJECT_PAUSES": "recover=2"}
    proc = subprocess.Popen(recover, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=slow)
    seen: list[str] = []
    try:
        wait_for_line(proc, r"committed as episode 0 ", seen)
    finally:
        proc.kill()
        proc.wait()
    rec = subprocess.run(recover, capture_output=True, text=True, timeout=300)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "committed as episode 1 " in rec.stdout, "".join(seen) + rec.stdout  # it went on where it died
    _assert_each_announced_once(root, _announced(out), out + "".join(seen) + rec.stdout)
    assert len(episode_lengths(root)) >= 4


@dataclass
class Outcome:
    """What one trial found, for the summary line."""

    phase: str
    announced: int = 0
    recovered: int = 0
    partial_frames: int = 0
    recovery_killed: bool = False


def _trial(number: int, layout: str, tmp_path: Path) -> Outcome:
    """Record, kill, maybe kill a recovery too, recover once, and check nothing was lost."""
    rng = random.Random(20261203 + number)
    trial = Trial.make(number, layout)
    root = tmp_path / f"t{number:02d}"
    out = _record_and_kill(trial, root, tmp_path / f"t{number:02d}.out", rng)
    announced = _announced(out)
    if not (root / "meta/info.json").exists():
        assert not announced, out
        return Outcome("start-up")
    committed_before = len(episode_lengths(root))
    killed_recovery = _kill_a_recovery(trial, root, rng) if trial.kill_recovery else ""

    # One recovery makes it whole, whatever state the kills left.
    rec = subprocess.run(trial.recover_command(root), capture_output=True, text=True, timeout=300)
    set_aside = "set aside whole" in rec.stdout
    assert rec.returncode == (1 if set_aside else 0), rec.stdout + rec.stderr
    again = subprocess.run(trial.recover_command(root)[:5], capture_output=True, text=True, timeout=300)
    assert "nothing to recover" in again.stdout, again.stdout  # recovery is idempotent

    context = f"trial {number}:\n{out}\n{killed_recovery}\n{rec.stdout}"
    _assert_each_announced_once(root, announced, context)
    phase = "recovery" if killed_recovery else _phase(out, rec.stdout, len(announced), committed_before)
    return Outcome(
        phase,
        len(announced),
        len(episode_lengths(root)) - committed_before,
        sum(int(n) for n in SALVAGED.findall(killed_recovery + rec.stdout)),
        trial.kill_recovery,
    )


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_kill_at_random_instants_loses_nothing(tmp_path: Path, layout: str) -> None:
    # Four trials at a time: each mostly waits for its kill, and the load they put on each
    # other only varies where the kills land.
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda n: _trial(n, layout, tmp_path), range(TRIALS)))
    phases = Counter(o.phase for o in outcomes)
    print(
        f"\nkill loop ({layout}): {TRIALS} trials, kills per phase {dict(sorted(phases.items()))}, "
        f"{sum(o.recovery_killed for o in outcomes)} recoveries killed, "
        f"{sum(o.announced for o in outcomes)} announced episodes, 0 lost, 0 duplicated, "
        f"0 invalid datasets, {sum(o.recovered for o in outcomes)} episodes committed by recovery, "
        f"{sum(o.partial_frames for o in outcomes)} partial-episode frames salvaged"
    )
