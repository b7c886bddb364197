"""`dorobot compress ROOT`: compress a dataset's waiting videos now, in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from operating_platform.compress.compressor import Compressor, Controls, Stopped
from operating_platform.compress.process import MB, describe_swap
from operating_platform.compress.settings import DEFAULT_G, DEFAULT_MIN_PSNR, CompressSettings
from operating_platform.compress.worker import take_compress_lock
from operating_platform.dataset import swap
from operating_platform.dataset.compress_target import read_target
from operating_platform.dataset.lock import lock_session
from operating_platform.dataset.metadata import DatasetError, DoRobotDatasetMetadata
from operating_platform.dataset.realtime import forgo_realtime, run_only_when_idle
from operating_platform.upload.worker import lower_priority


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dorobot compress",
        description="Re-encode a dataset's videos to a smaller codec, oldest first, on idle CPU time. "
        "Each copy is checked against its original (frame count, timestamps, PSNR above the floor) "
        "and swapped in by one atomic rename; a kill leaves every file whole (`dorobot recover` "
        "finishes a swap it cut). Ctrl-C stops; running it again goes on. Without flags: the "
        "dataset's own target, else AV1.",
    )
    parser.add_argument("root", help="the dataset folder (the one holding meta/)")
    parser.add_argument("--codec", help="av1 (default), hevc, h264, or an encoder name (libsvtav1)")
    parser.add_argument("--preset", help="encoder preset (default: libsvtav1 10)")
    parser.add_argument("--crf", type=int, help="constant rate factor (default: libsvtav1 30)")
    parser.add_argument("--g", type=int, help=f"keyframe interval in frames (default {DEFAULT_G})")
    parser.add_argument(
        "--min-psnr",
        type=float,
        help=f"a copy's worst frame must be above it, in dB (default {DEFAULT_MIN_PSNR:g})",
    )
    return parser


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace, root: Path) -> CompressSettings:
    flags = {"preset": args.preset, "crf": args.crf, "g": args.g, "min_psnr": args.min_psnr}
    current = read_target(root)
    if args.codec is None and current is not None:
        settings = CompressSettings.from_target(current)
        return CompressSettings(**{**settings.__dict__, **{k: v for k, v in flags.items() if v is not None}})
    return CompressSettings.parse(args.codec or "av1", **flags)


def compress_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    root = Path(args.root)
    console = Console(highlight=False, soft_wrap=True)
    try:
        settings = _settings(args, root)
        session = lock_session(root)
    except (ValueError, DatasetError) as exc:
        _error(str(exc))
        return 2
    try:
        swap.finish_interrupted(root, say=lambda line: console.print(line, markup=False))
        meta = DoRobotDatasetMetadata.load(root)
        meta.compact(final=True, say=lambda line: console.print(line, markup=False))
        meta.set_compression_target(settings.as_target())
        lower_priority(0)
        run_only_when_idle()
        forgo_realtime()
        compressor_lock = take_compress_lock(root)
        if compressor_lock is None:
            _error("another compressor works on this dataset and did not stop")
            return 1
        return _compress(root, settings, console)
    except (DatasetError, OSError) as exc:
        _error(f"cannot compress {root}: {exc}")
        return 1
    finally:
        session.release()


def _compress(root: Path, settings: CompressSettings, console: Console) -> int:
    video = settings.video
    console.print(
        f"{root}: compressing to {settings.codec} ({video.vcodec} preset {video.preset}, crf {video.crf}, "
        f"keyframe every {video.g} frames); a copy's every frame must be above {settings.min_psnr:g} dB PSNR",
        markup=False,
    )
    totals = {"files": 0, "before": 0, "after": 0, "refused": 0, "worst": float("inf")}
    backlog: dict[str, Any] = {}

    def report(message: dict[str, Any]) -> None:
        event = message.get("event")
        if event == "swapped":
            console.print(describe_swap(message), markup=False)
            totals["files"] += 1
            totals["before"] += message["bytes_before"]
            totals["after"] += message["bytes_after"]
            totals["worst"] = min(totals["worst"], message["min_psnr"])
        elif event == "refused":
            totals["refused"] += 1
            console.print(
                f"not compressed: {message['file']} ({message['reason']}); the original stays", markup=False
            )
        elif event == "error":
            console.print(f"warning: {message['error']}", markup=False)
        elif "state" in message:
            backlog.update(message)

    controls = Controls(final=True)
    previous = signal.signal(signal.SIGINT, lambda *_: controls.stop.set())
    try:
        Compressor(root, settings, report, controls).run()
        stopped = False
    except Stopped:
        stopped = True
    finally:
        signal.signal(signal.SIGINT, previous)
    saved = (
        f"{totals['before'] / MB:.1f} MB -> {totals['after'] / MB:.1f} MB"
        if totals["files"]
        else "nothing to do"
    )
    worst = f", worst frame {totals['worst']:.1f} dB" if totals["files"] else ""
    console.print(f"{totals['files']} file(s) compressed: {saved}{worst}", markup=False)
    if stopped:
        console.print(
            f"stopped: {backlog.get('waiting_episodes', '?')} episode(s) still wait; run it again to go on",
            markup=False,
        )
        return 130
    return 1 if totals["refused"] else 0
