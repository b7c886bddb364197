"""Episode statistics equal a direct numpy computation by the rules of FORMAT.md section 6."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from operating_platform.dataset.dorobot_dataset import DoRobotDataset
from operating_platform.dataset.stats import sample_indices

H, W = 320, 400  # large enough that LeRobot's subsampling applies (stride int(400 / 150) = 2)


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1, 1), (20, 20), (100, 100), (150, 100), (1000, 177), (20000, 1681), (10**6, 10000)],
)
def test_sample_count_follows_lerobot(length: int, expected: int) -> None:
    indices = sample_indices(length)
    assert len(indices) == expected
    assert indices[0] == 0 and indices[-1] == length - 1
    assert indices == sorted(indices)


def test_stats_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    features = {
        "action": {"dtype": "float32", "shape": [4], "names": list("abcd")},
        "observation.images.cam": {
            "dtype": "video",
            "shape": [H, W, 3],
            "names": ["height", "width", "channels"],
        },
    }
    ds = DoRobotDataset.create("lab/stats", tmp_path / "ds", 30, None, features)
    length = 130  # more than 100 frames, so only 100 of them are sampled
    actions = rng.normal(size=(length, 4)).astype(np.float32)
    images = rng.integers(0, 256, size=(length, H, W, 3), dtype=np.uint8)
    for i in range(length):
        ds.add_frame({"action": actions[i], "observation.images.cam": images[i]}, "t")
    ds.save_episode()
    stats = json.loads((tmp_path / "ds/meta/episodes_stats.jsonl").read_text())["stats"]

    act = stats["action"]
    np.testing.assert_array_equal(act["min"], actions.min(0))
    np.testing.assert_array_equal(act["max"], actions.max(0))
    np.testing.assert_allclose(act["mean"], actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(act["std"], actions.std(0), rtol=1e-5)
    assert act["count"] == [length]

    sampled = (
        images[np.round(np.linspace(0, length - 1, 100)).astype(int)][:, ::2, ::2].astype(np.float64) / 255
    )
    cam = stats["observation.images.cam"]
    assert cam["count"] == [100]
    for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
        expected = fn(sampled, axis=(0, 1, 2)).reshape(3, 1, 1)
        np.testing.assert_allclose(np.array(cam[name]), expected, rtol=1e-9, err_msg=name)

    ts = stats["timestamp"]
    assert ts["min"] == [0.0] and ts["max"] == [(length - 1) / 30]  # float64, as LeRobot stores them
    assert stats["index"] == {
        "min": [0],
        "max": [length - 1],
        "mean": [(length - 1) / 2],
        "std": [float(np.std(np.arange(length)))],
        "count": [length],
    }
    assert stats["episode_index"]["max"] == [0] and stats["task_index"]["std"] == [0.0]
