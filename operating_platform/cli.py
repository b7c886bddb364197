"""`dorobot`: record demonstrations, and check the datasets they make.

dorobot record --record.repo_id=... [--robot.* --record.* flags]
dorobot verify ROOT [--no-decode]
dorobot find-cameras [PATHS...] [--output-dir DIR]
dorobot info ROOT [--json]
dorobot compress ROOT [--codec av1] [--preset P] [--crf N] [--g N] [--min-psnr DB]
dorobot view ROOT [--episode N] [--rerun_addr HOST:PORT | --save FILE.rrd]
dorobot push ROOT DEST [--retry-for S]
dorobot convert ROOT --to v3.0|v2.1 [--output NEW_ROOT]
dorobot merge OUT SRC1 SRC2 ... [--format v2.1|v3.0]
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from rich.console import Console

T = TypeVar("T")

USAGE = """usage: dorobot COMMAND [ARGS]

commands:
  record   record episodes (flags: --robot.*, --record.*; `dorobot record --help` lists them)
  verify   check a dataset folder against the LeRobot v2.1 or v3.0 format: dorobot verify ROOT
  recover  finish what an interrupted session left: dorobot recover ROOT [--salvage-partial] [--retry-failed]
  find-cameras  list the cameras OpenCV can open, save a still of each: dorobot find-cameras [PATHS...]
  convert  write a dataset in the other layout, leaving it untouched: dorobot convert ROOT --to v3.0
  merge    gather datasets of several stations into one: dorobot merge OUT SRC1 SRC2 ...
  compress re-encode a dataset's videos to a smaller codec, checked, swapped in safely: dorobot compress ROOT
  info     what a dataset holds, per camera its codecs, sizes and compression: dorobot info ROOT [--json]
dorobot compress ROOT [--codec av1] [--preset P] [--crf N] [--g N] [--min-psnr DB]
  view     replay an episode in Rerun (needs rerun-sdk): dorobot view ROOT --episode N [--save FILE.rrd]
  push     upload a dataset, or finish a session's upload: dorobot push ROOT hf://datasets/USER/NAME|s3://...
"""


def verify_main(argv: Sequence[str]) -> int:
    from operating_platform.dataset.verify import verify_dataset

    parser = argparse.ArgumentParser(
        prog="dorobot verify",
        description="Check a LeRobot dataset folder, v2.1 or v3.0 (as its meta/info.json says).",
    )
    parser.add_argument("root", help="the dataset folder (the one holding meta/)")
    parser.add_argument(
        "--no-decode", action="store_true", help="count video packets instead of decoding every frame"
    )
    args = parser.parse_args(argv)
    report = verify_dataset(args.root, decode_videos=not args.no_decode)
    console = Console(highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}", soft_wrap=True)
    if report.ok:
        console.print(
            f"[green]✓[/] {report.root}: valid ({report.episodes} episodes, {report.frames} frames)"
        )
        return 0
    console.print(f"[red]✗[/] {report.root}: {len(report.problems)} problem(s)")
    return 1


def recover_main(argv: Sequence[str]) -> int:
    from operating_platform.dataset.recovery import recover_dataset

    parser = argparse.ArgumentParser(
        prog="dorobot recover",
        description="Commit the episodes an interrupted session had ended, roll back half-published "
        "ones, and set aside (or salvage) the episode being recorded. Safe to run any number of times. "
        "Exit status: 0 every episode is in the dataset; 1 some are set aside or wait for disk space "
        "(the dataset is valid either way), or recovery could not run.",
    )
    parser.add_argument("root", help="the dataset folder (the one holding meta/)")
    parser.add_argument(
        "--salvage-partial",
        action="store_true",
        help="commit the intact frames of an episode cut short by a crash (this one's, and any set "
        "aside in .dorobot/partial/) as an episode of its own",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="try again the episodes set aside in .dorobot/failed/, once their cause is fixed",
    )
    args = parser.parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    report = _run_or_explain(
        lambda: recover_dataset(
            args.root, salvage_partial=args.salvage_partial, retry_failed=args.retry_failed, say=console.print
        ),
        f"cannot recover {args.root}",
    )
    if report is None:
        return 1
    if report.no_space:
        _error(report.no_space)
        return 1
    for kind, count in report.still_set_aside.items():
        flag = "--retry-failed" if kind == "failed" else "--salvage-partial"
        console.print(
            f"note: {count} episode(s) set aside in .dorobot/{kind}/ (each has an error.txt); "
            f"`dorobot recover {args.root} {flag}` tries them again",
            markup=False,
        )
    summary = f"{len(report.committed)} episode(s) committed, {len(report.set_aside)} set aside"
    if report.set_aside:
        console.print(f"[red]✗[/] {args.root}: recovered, but not completely ({summary})")
        return 1
    if not report.changed:
        console.print(f"{args.root}: nothing to recover")
    else:
        console.print(f"[green]✓[/] {args.root}: recovered ({summary})")
    return 0


def convert_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dorobot convert",
        description="Write a copy of a dataset in the other LeRobot layout (v2.1 for LeRobot 0.3 and "
        "DoRobot, v3.0 for LeRobot 0.4 and later). The dataset itself is only read.",
    )
    parser.add_argument("root", help="the dataset folder (the one holding meta/)")
    parser.add_argument("--to", required=True, choices=["v2.1", "v3.0"], help="the layout to write")
    parser.add_argument("--output", help="where to write the copy (default: ROOT_<version> beside it)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    output = Path(args.output) if args.output else root.with_name(f"{root.name}_{args.to}")
    return _gather([str(root)], output, args.to, f"cannot convert {root}")


def merge_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dorobot merge",
        description="Gather datasets with the same robot, fps and features (from several stations) "
        "into one: episodes renumbered in the order given, tasks unified, statistics combined. "
        "Sources may be folders or fsspec URLs (s3://bucket/prefix); they are only read.",
    )
    parser.add_argument("output", help="the new dataset folder")
    parser.add_argument("sources", nargs="+", help="the datasets to gather, in order")
    parser.add_argument(
        "--format", choices=["v2.1", "v3.0"], help="layout to write (default: the first source's)"
    )
    args = parser.parse_args(argv)
    return _gather(args.sources, Path(args.output), args.format, f"cannot merge into {args.output}")


def _gather(sources: list[str], output: Path, version: str | None, what: str) -> int:
    from operating_platform.dataset.merge import merge_datasets

    console = Console(highlight=False, soft_wrap=True)
    report = _run_or_explain(
        lambda: merge_datasets(sources, output, version, say=lambda line: console.print(line, markup=False)),
        what,
    )
    if report is None:
        return 1
    console.print(
        f"[green]✓[/] {report.output}: {report.codebase_version}, {report.episodes} episodes, "
        f"{report.frames} frames, {report.tasks} task(s)"
    )
    return 0


def _run_or_explain(work: Callable[[], T], what: str) -> T | None:
    """Run a command's work; any failure becomes one `error:` line on stderr, never a traceback."""
    from operating_platform.dataset.diskspace import is_disk_full
    from operating_platform.dataset.metadata import DatasetError

    try:
        return work()
    except DatasetError as exc:
        _error(str(exc))
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.EROFS:
            _error(f"{what}: it is on a read-only file system{where}; remount it read-write and try again")
        elif is_disk_full(exc):
            _error(f"{what}: the disk is full{where}; free some space and try again")
        else:
            _error(f"{what}: {exc.strerror or exc}{where}")
    return None


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "record":
        from operating_platform.core.main import main as record_main

        return record_main(rest)
    if command == "verify":
        return verify_main(rest)
    if command == "recover":
        return recover_main(rest)
    if command == "find-cameras":
        from operating_platform.cameras.find import find_cameras_main

        return find_cameras_main(rest)
    if command == "convert":
        return convert_main(rest)
    if command == "merge":
        return merge_main(rest)
    if command == "info":
        from operating_platform.info import info_main

        return info_main(rest)
    if command == "compress":
        from operating_platform.compress.command import compress_main

        return compress_main(rest)
    if command == "view":
        from operating_platform.view import view_main

        return view_main(rest)
    if command == "push":
        from operating_platform.upload.push import push_main

        return push_main(rest)
    print(f"dorobot: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
