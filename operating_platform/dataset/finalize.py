"""Saving one closed journal start to end, in the calling thread: encode, publish, retire.

The asynchronous saver runs the same three steps with encoding in another process; this is
the path of `use_async_save=false` and of recovery.
"""

from __future__ import annotations

from pathlib import Path

from operating_platform.dataset.encode import encode_episode
from operating_platform.dataset.journal_store import retire_journal, staging_dir
from operating_platform.dataset.metadata import DoRobotDatasetMetadata
from operating_platform.dataset.publish import commit_episode
from operating_platform.dataset.video import VideoSettings


def finalize_journal(journal_dir: Path, meta: DoRobotDatasetMetadata, video: VideoSettings) -> int:
    """Encode and commit one closed journal, then retire it; returns the episode index."""
    encoded = encode_episode(journal_dir, staging_dir(journal_dir), video)
    episode_index = commit_episode(journal_dir, encoded, meta)
    retire_journal(journal_dir)
    return episode_index
