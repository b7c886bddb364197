"""`dorobot find-cameras`: the cameras OpenCV can open here, what each gives, and a still of each.

    dorobot find-cameras [PATHS...] [--output-dir DIR]

Without PATHS it looks at /dev/video* on Linux, camera indices 0 to 9 elsewhere. It prints, for
each camera, its size, fps and pixel format, saves a PNG still (to tell the cameras apart), and
ends with the `--robot.cameras` value that records them all.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from operating_platform.cameras.opencv import fourcc_of, import_cv2, is_device, missing, open_capture

SCAN_INDICES = range(10)
# A USB camera's first frames are often dark while its exposure settles: keep reading this long.
WARMUP_S = 0.5


@dataclass(frozen=True)
class FoundCamera:
    """A camera that opened and gave a frame: what it gives by default, and where its still is."""

    source: int | str
    width: int
    height: int
    fps: float
    fourcc: str
    frame_count: int  # of a video file; 0 for a device or a live stream
    still: Path

    def describe(self) -> str:
        fps = f"{self.fps:g} fps" if self.fps else "fps unknown"
        fourcc = f", {self.fourcc}" if self.fourcc else ""
        frames = f" (a video of {self.frame_count} frames)" if self.frame_count else ""
        return f"{self.source}: {self.width}x{self.height}, {fps}{fourcc}{frames} -> {self.still}"

    def settings(self) -> str:
        """This camera's entry in a `--robot.cameras` value."""
        parts = [
            f"index_or_path: {_yaml_scalar(self.source)}",
            f"width: {self.width}",
            f"height: {self.height}",
        ]
        if self.fps:
            parts.append(f"fps: {self.fps:g}")
        if self.fourcc and is_device(self.source):  # a file's fourcc names its codec, nothing to ask for
            parts.append(f"fourcc: {self.fourcc}")
        return "{" + ", ".join(parts) + "}"


def _yaml_scalar(source: int | str) -> str:
    text = str(source)
    # A JSON string is a YAML one: quotes keep a URL's colons or a path's spaces one value.
    return text if re.fullmatch(r"[\w./-]+", text) else json.dumps(text)


def candidates(paths: Sequence[str]) -> tuple[list[int | str], str]:
    """What to look at, and how to say where that was."""
    if paths:
        return [int(p) if p.isdigit() else p for p in paths], ", ".join(paths)
    if sys.platform.startswith("linux"):
        number = re.compile(r"(\d+)$")

        def order(path: str) -> tuple[str, int]:
            found = number.search(path)
            return path.rstrip("0123456789"), int(found.group(1)) if found else -1

        return sorted(glob.glob("/dev/video*"), key=order), "/dev/video*"
    return list(SCAN_INDICES), f"camera indices {SCAN_INDICES.start} to {SCAN_INDICES.stop - 1}"


def probe(cv2: Any, source: int | str, still: Path) -> FoundCamera | str:
    """Open `source`, read a frame and save it as `still`; what it gives, or why it could not."""
    why = missing(source)
    if why:
        return why
    capture = open_capture(cv2, source)
    try:
        if not capture.isOpened():
            if is_device(source):  # a USB camera has a second node, for metadata, that is no camera
                return "not a camera OpenCV can open (a camera's metadata node, or in use by another program)"
            return "OpenCV cannot open it"
        image = _first_image(capture, warm_up=is_device(source))
        if image is None:
            return "opened, but gave no frame (in use by another program?)"
        still.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(still), image):
            return f"cannot write {still}"
        frames = 0 if is_device(source) else max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        height, width = image.shape[:2]
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        return FoundCamera(source, width, height, fps, fourcc_of(cv2, capture), frames, still)
    finally:
        capture.release()


def _first_image(capture: Any, warm_up: bool) -> Any:
    ok, image = capture.read()
    if not ok:
        return None
    deadline = time.monotonic() + WARMUP_S
    while warm_up and time.monotonic() < deadline:
        ok, newer = capture.read()
        if not ok:
            break
        image = newer
    return image


def still_path(output_dir: Path, source: int | str, taken: set[Path]) -> Path:
    """A PNG name telling which camera it shows: video0.png, camera3.png, front.png."""
    stem = f"camera{source}" if isinstance(source, int) else Path(source.rstrip("/")).stem
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._") or "camera"
    path, n = output_dir / f"{stem}.png", 1
    while path in taken:
        n += 1
        path = output_dir / f"{stem}_{n}.png"
    taken.add(path)
    return path


def find_cameras(
    paths: Sequence[str], output_dir: Path, say: Callable[[str], None] = print
) -> list[FoundCamera]:
    """Probe every candidate, saying what each gives; the cameras that gave a frame."""
    cv2 = import_cv2()
    sources, _ = candidates(paths)
    found: list[FoundCamera] = []
    taken: set[Path] = set()
    for source in sources:
        result = probe(cv2, source, still_path(output_dir, source, taken))
        if isinstance(result, FoundCamera):
            found.append(result)
            say(result.describe())
        elif paths or not isinstance(source, int):  # a scan of indices finds gaps, not news
            say(f"{source}: {result}")
    return found


def find_cameras_main(argv: Sequence[str]) -> int:
    """`dorobot find-cameras`: 0 if a camera was found, 1 if none (one `error:` line)."""
    parser = argparse.ArgumentParser(
        prog="dorobot find-cameras",
        description="List the cameras OpenCV can open, with their size, fps and pixel format; save a "
        "still of each and print the --robot.cameras value that records them.",
    )
    parser.add_argument(
        "paths", nargs="*", help="devices, indices, video files or URLs (default: /dev/video*, else 0-9)"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("cameras"), help="where the stills go (default: ./cameras)"
    )
    args = parser.parse_args(argv)
    try:
        found = find_cameras(args.paths, args.output_dir)
    except ImportError as exc:
        return _error(f"find-cameras: {exc}")
    except OSError as exc:
        return _error(f"cannot save the stills in {args.output_dir}: {exc.strerror or exc}")
    if not found:
        sources, where = candidates(args.paths)
        looked = f"there is no {where} device" if not sources else f"none of {where} gave a frame"
        return _error(f"no camera found: {looked}; is a camera plugged in, and readable by this user?")
    names = [f"cam{i}" for i in range(len(found))]
    entries = ", ".join(f"{name}: {camera.settings()}" for name, camera in zip(names, found, strict=True))
    print(
        f"\n{len(found)} camera(s); their stills are in {args.output_dir}. Give them names, then record with:"
    )
    print("  --robot.cameras=" + shlex.quote("{" + entries + "}"))
    return 0


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1
