"""kill -9 at random instants loses nothing: after recovery, every episode whose save was
announced is in the dataset with every frame, and the folder is valid.

Trials vary what the recorder is doing when it dies: capturing, just after a save, encoding
saves in the background, saving synchronously, or publishing (a pause held open inside the
commit makes that window wide enough to hit). The summary line gives the counts.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from operating_platform.dataset.verify import verify_dataset
from tests.conftest import FAST, PLUGINS_DIR

TRIALS = int(os.environ.get("DOROBOT_KILL_TRIALS", "30"))
ANNOUNCED = re.compile(
    r"Queued episode (\d+) \(queue_pos=\d+, frames=(\d+)|Saved episode (\d+) \((\d+) frames\)"
)
SALVAGED = re.compile(r"salvaging the partial episode's (\d+) intact frames")
PARTIAL = re.compile(
    r"salvaging the partial episode's (\d+) intact|the episode being recorded \((\d+) frames\)"
)


def _trial_setup(trial: int) -> tuple[list[str], dict[str, str], bool]:
    # Every third trial records episodes long enough (75 frames) that raw segments (30 frames)
    # are released while recording: recovery must rebuild those from the encoded part.
    seconds = 2.5 if trial % 3 == 0 else 0.4
    flags = ["--record.num_episodes=200", f"--record.episode_time_s={seconds}"]
    env = {}
    if trial % 5 == 4:
        flags.append("--record.use_async_save=false")
    elif trial % 4 == 1:  # encoding slower than capture: kills land while saves are pending
        flags += ["--robot.camera_width=320", "--robot.camera_height=240", "--record.preset=veryslow"]
    if trial % 3 == 2:
        env["DOROBOT_INJECT_PAUSES"] = "publish=0.15,metadata=0.15"
    return flags, env, trial % 2 == 1


def _phase(out: str, recovery: str, queued: int, committed_before: int) -> str:
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


def _episode_lengths(root: Path) -> list[int]:
    path = root / "meta/episodes.jsonl"
    return [json.loads(line)["length"] for line in path.read_text().splitlines()] if path.exists() else []


def test_kill_at_random_instants_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261130)
    phases: Counter[str] = Counter()
    announced_total = recovered_total = partial_frames = invalid = lost = 0
    for trial in range(TRIALS):
        root = tmp_path / f"t{trial:02d}"
        flags, env, salvage = _trial_setup(trial)
        log = tmp_path / f"t{trial:02d}.out"
        with open(log, "w") as out_file:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "operating_platform.core.main",
                    *FAST,
                    "--record.repo_id=lab/kill",
                    f"--record.root={root}",
                    *flags,
                ],
                stdout=out_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(PLUGINS_DIR), **env},
            )
            time.sleep(rng.uniform(1.0, 6.0))
            proc.kill()
            proc.wait()
        out = log.read_text()
        announced = {}
        for m in ANNOUNCED.finditer(out):
            index, frames = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            announced[int(index)] = int(frames)
        if not (root / "meta/info.json").exists():
            assert not announced, out
            phases["start-up"] += 1
            continue
        committed_before = len(_episode_lengths(root))
        cmd = [sys.executable, "-m", "operating_platform.cli", "recover", str(root)]
        rec = subprocess.run(cmd + (["--salvage-partial"] if salvage else []), capture_output=True, text=True)
        assert rec.returncode == (1 if "set aside whole" in rec.stdout else 0), rec.stdout + rec.stderr
        again = subprocess.run(cmd, capture_output=True, text=True)
        assert "nothing to recover" in again.stdout, again.stdout  # recovery is idempotent

        report = verify_dataset(root)
        invalid += not report.ok
        lengths = _episode_lengths(root)
        missing = [i for i, frames in announced.items() if i >= len(lengths) or lengths[i] != frames]
        lost += len(missing)
        assert report.ok, f"trial {trial}: {report.problems}\n{out}\n{rec.stdout}"
        assert not missing, f"trial {trial}: episodes {missing} lost or short\n{out}\n{rec.stdout}"
        if not salvage:
            assert len(lengths) >= len(announced)
        phases[_phase(out, rec.stdout, len(announced), committed_before)] += 1
        announced_total += len(announced)
        recovered_total += len(lengths) - committed_before
        partial_frames += sum(int(n) for n in SALVAGED.findall(rec.stdout))
    print(
        f"\nkill loop: {TRIALS} trials, kills per phase {dict(sorted(phases.items()))}, "
        f"{announced_total} announced episodes, {lost} lost, {invalid} invalid datasets, "
        f"{recovered_total} episodes committed by recovery, {partial_frames} partial-episode frames salvaged"
    )
    assert lost == 0 and invalid == 0
