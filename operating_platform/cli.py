"""`dorobot`: record demonstrations, and check the datasets they make.

dorobot record --record.repo_id=... [--robot.* --record.* flags]
dorobot verify ROOT [--no-decode]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

USAGE = """usage: dorobot COMMAND [ARGS]

commands:
  record   record episodes (flags: --robot.*, --record.*; `dorobot record --help` lists them)
  verify   check a dataset folder against the LeRobot v2.1 format: dorobot verify ROOT
  recover  finish what an interrupted session left: dorobot recover ROOT [--salvage-partial]
"""


def verify_main(argv: Sequence[str]) -> int:
    from operating_platform.dataset.verify import verify_dataset

    parser = argparse.ArgumentParser(
        prog="dorobot verify", description="Check a LeRobot v2.1 dataset folder."
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
    from operating_platform.dataset.metadata import DatasetError
    from operating_platform.dataset.recovery import recover_dataset

    parser = argparse.ArgumentParser(
        prog="dorobot recover",
        description="Commit the episodes an interrupted session had ended, roll back half-published "
        "ones, and set aside (or salvage) the episode being recorded. Safe to run any number of times.",
    )
    parser.add_argument("root", help="the dataset folder (the one holding meta/)")
    parser.add_argument(
        "--salvage-partial",
        action="store_true",
        help="commit the intact frames of the episode being recorded as an episode of its own",
    )
    args = parser.parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    try:
        report = recover_dataset(args.root, salvage_partial=args.salvage_partial, say=console.print)
    except DatasetError as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return 1
    if not report.changed:
        console.print(f"{args.root}: nothing to recover")
    else:
        console.print(
            f"[green]✓[/] {args.root}: recovered ({len(report.committed)} episode(s) committed, "
            f"{len(report.set_aside)} set aside)"
        )
    return 0


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
    print(f"dorobot: unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
