"""A dataset's compression target: the codec its videos are re-encoded to in the background.

It lives in `.dorobot/compress/settings.json` (codec, encoder, preset, crf, g, min_psnr and
`waiting_codecs`, the codecs its files are recorded in). While a dataset has one, info.json
names the target codec for every camera, and a file still in one of the waiting codecs is an
episode not compressed yet, not a contradiction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from operating_platform.dataset.fsutil import PRIVATE_DIR, make_dirs_within, write_json_atomic

COMPRESS_DIR = f"{PRIVATE_DIR}/compress"
SETTINGS_FILE = "settings.json"


def compress_dir(root: Path) -> Path:
    return Path(root) / COMPRESS_DIR


def read_target(root: Path) -> dict[str, Any] | None:
    """The dataset's compression target, or None if it has none (or it cannot be read)."""
    try:
        target = json.loads((compress_dir(root) / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return target if isinstance(target, dict) and isinstance(target.get("codec"), str) else None


def write_target(root: Path, target: dict[str, Any]) -> None:
    """Set the target, keeping the waiting codecs an earlier target listed."""
    earlier = read_target(root) or {}
    # Files already in an earlier target's codec wait for the new one.
    waiting = {*earlier.get("waiting_codecs", []), *target.get("waiting_codecs", [])}
    if earlier:
        waiting.add(earlier["codec"])
    waiting = sorted(waiting - {target["codec"]})
    make_dirs_within(Path(root), compress_dir(root))
    write_json_atomic(compress_dir(root) / SETTINGS_FILE, {**target, "waiting_codecs": waiting})


def accepted_codecs(root: Path, info_codec: str | None) -> set[str]:
    """The codecs a camera's files may have besides info.json's: those waiting for compression."""
    target = read_target(root)
    return set() if target is None else {target["codec"], *target.get("waiting_codecs", [])} - {info_codec}
