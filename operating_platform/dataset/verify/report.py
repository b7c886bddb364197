"""The report every checker fills in, and the guard that keeps a checker from crashing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class VerifyReport:
    """What `verify_dataset` found. `problems` make the dataset invalid; `notes` do not.

    Each problem is one line that starts with the file it concerns (a path relative to the root,
    sometimes with a line or row number), so a list of them reads as a to-do list.
    """

    root: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    episodes: int = 0  # episodes on disk: v2.1 episode parquet files, v3.0 rows of meta/episodes
    frames: int = 0  # rows in the data parquet files LeRobot would load

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def note(self, message: str) -> None:
        self.notes.append(message)

    def summary(self) -> str:
        """A few lines for a terminal: the verdict, then every problem and note."""
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines = [f"{self.root}: {verdict} ({self.episodes} episodes, {self.frames} frames)"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def guard(report: VerifyReport, where: str, check: Callable[..., Any], *args: Any) -> Any:
    """Run one group of checks; an unexpected exception becomes a problem, never escapes."""
    try:
        return check(*args)
    except Exception as exc:  # the verifier's promise is to report, not to crash
        report.problem(where, f"could not be checked ({type(exc).__name__}: {exc})")
        return None
