"""Check that a folder is a valid LeRobot dataset, as the format contract FORMAT.md describes.

`verify_dataset(root)` reads the whole dataset and returns a `VerifyReport`. It reads
info.json's codebase_version and hands the folder to the checker of that layout: `v21` (one file
per episode, JSONL metadata; also any version it does not know) or `v30` (many episodes per file,
parquet metadata). Without a usable info.json, the metadata files on disk decide. What it
promises, whatever the version:

- It never raises on a damaged dataset. A missing or unparseable info.json, a truncated parquet,
  an undecodable mp4 are problems in the report, and checking goes on with whatever can still be
  read, so one run lists every problem it can find.
- It never changes anything on disk.
- Each problem is one human-readable line that starts with the file it concerns (a path relative
  to the root, sometimes with a line or row number).
- `report.ok` (no problems) means the dataset holds together the way the LeRobot loader of that
  version needs: metadata, counters, data rows, video frames and timestamps agree, and no stray
  file sits where LeRobot looks. Each checker's docstring lists what it checks.
- The recorder's own hidden folder `ROOT/.dorobot/` is never a problem; unfinished journals in
  it give a note (`report.notes`), as do unknown entries at the top level.
"""

from __future__ import annotations

from pathlib import Path

from operating_platform.dataset.verify.common import INFO, check_top_level, load_info
from operating_platform.dataset.verify.report import VerifyReport, guard
from operating_platform.dataset.verify.v21 import verify_v21
from operating_platform.dataset.verify.v30 import verify_v30

__all__ = ["VerifyReport", "verify_dataset"]


def verify_dataset(root: str | Path, decode_videos: bool = True) -> VerifyReport:
    """Check the dataset at `root` against its version's contract; see the module docstring.

    With `decode_videos=False` videos are demuxed (packets counted) instead of decoded: much
    faster, but a corrupt frame payload goes unnoticed.
    """
    root = Path(root)
    report = VerifyReport(root=root)
    if not root.is_dir():
        report.problem(str(root), "not a directory")
        return report
    info = guard(report, INFO, load_info, root, report)
    version = info.get("codebase_version") if isinstance(info, dict) else _version_on_disk(root)
    if version == "v3.0":
        verify_v30(root, info, report, decode_videos)
    else:
        # v2.1 is the layout we write; anything else is judged against it, version included.
        verify_v21(root, info, report, decode_videos)
    # The top level and the recorder's folder are the same in both layouts.
    guard(report, "top level", check_top_level, root, report)
    return report


def _version_on_disk(root: Path) -> str | None:
    """Without a usable info.json, the metadata files tell the layouts apart."""
    v30_files = (root / "meta" / "tasks.parquet").is_file() or (root / "meta" / "episodes").is_dir()
    return "v3.0" if v30_files else None
