"""JSON Lines, as LeRobot's v2.1 metadata files hold them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def jsonl_line(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of `path` as an object; [] if it does not exist."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
