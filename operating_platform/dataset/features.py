"""Feature descriptions in LeRobot v2.1 notation, and the checks every captured frame passes.

A feature is `{"dtype", "shape", "names"}` as in info.json. From them this module derives the
parquet's Arrow schema and its `huggingface` metadata, and validates frames before they reach
the journal, so that a bad frame is refused with the feature's name while everything recorded
before it stays untouched.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

VISUAL_DTYPES = ("video", "image")


class FrameError(ValueError):
    """A captured frame does not match the dataset's features; the message names the feature."""


def with_default_features(user_features: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """User features first, then the five default ones, as info.json orders them."""
    for name in user_features:
        if "/" in name:
            raise ValueError(f"feature name {name!r} contains '/', which LeRobot cannot store")
        if name in DEFAULT_FEATURES:
            raise ValueError(f"feature name {name!r} is reserved for the dataset's own columns")
    feats = {k: _copy_feature(v) for k, v in user_features.items()}
    feats.update({k: _copy_feature(v) for k, v in DEFAULT_FEATURES.items()})
    return feats


def _copy_feature(ft: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(ft))


def video_keys(features: dict[str, dict[str, Any]]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] in VISUAL_DTYPES]


def vector_keys(features: dict[str, dict[str, Any]]) -> list[str]:
    """User features stored as parquet columns (everything but cameras and the default columns)."""
    return [k for k, ft in features.items() if ft["dtype"] not in VISUAL_DTYPES and k not in DEFAULT_FEATURES]


def parquet_keys(features: dict[str, dict[str, Any]]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] not in VISUAL_DTYPES]


def _arrow_type(ft: dict[str, Any]) -> pa.DataType:
    scalar = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    if ft["shape"] == [1] and ft["names"] is None:
        return scalar
    if len(ft["shape"]) != 1:
        raise ValueError(f"only vector features are supported in parquet, got shape {ft['shape']}")
    # The child is named "element", as in the parquet files LeRobot writes.
    return pa.list_(pa.field("element", scalar), ft["shape"][0])


def _hf_feature(ft: dict[str, Any], list_type: str) -> dict[str, Any]:
    value = {"dtype": ft["dtype"], "_type": "Value"}
    if ft["shape"] == [1] and ft["names"] is None:
        return value
    return {"feature": value, "length": ft["shape"][0], "_type": list_type}


def arrow_schema(features: dict[str, dict[str, Any]], list_type: str = "Sequence") -> pa.Schema:
    """The episode parquet schema, with the `huggingface` metadata the LeRobot loader reads.

    `list_type` names vector features as the `datasets` release of the layout's LeRobot does:
    "Sequence" (v2.1, datasets 3) or "List" (v3.0, datasets 4).
    """
    keys = parquet_keys(features)
    hf = {"info": {"features": {k: _hf_feature(features[k], list_type) for k in keys}}}
    fields = [pa.field(k, _arrow_type(features[k])) for k in keys]
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf)})


def validate_frame(frame: dict[str, Any], features: dict[str, dict[str, Any]]) -> None:
    """Raise `FrameError` unless `frame` holds exactly the user features, right shape and dtype, finite."""
    expected = [k for k in features if k not in DEFAULT_FEATURES]
    missing = [k for k in expected if k not in frame]
    extra = [k for k in frame if k not in features or k in DEFAULT_FEATURES]
    if missing:
        raise FrameError(f"frame is missing feature(s) {', '.join(missing)}")
    if extra:
        raise FrameError(f"frame has unknown feature(s) {', '.join(extra)}")
    for key in expected:
        ft = features[key]
        value = frame[key]
        if not isinstance(value, np.ndarray):
            raise FrameError(f"feature '{key}': expected a numpy array, got {type(value).__name__}")
        if ft["dtype"] in VISUAL_DTYPES:
            _check_image(key, value, ft)
        else:
            _check_vector(key, value, ft)


def _check_image(key: str, value: np.ndarray, ft: dict[str, Any]) -> None:
    if value.dtype != np.uint8:
        raise FrameError(f"feature '{key}': expected uint8 RGB pixels, got dtype {value.dtype}")
    if list(value.shape) != list(ft["shape"]):
        raise FrameError(f"feature '{key}': expected shape {tuple(ft['shape'])}, got {value.shape}")


def _check_vector(key: str, value: np.ndarray, ft: dict[str, Any]) -> None:
    if value.dtype != np.dtype(ft["dtype"]):
        raise FrameError(f"feature '{key}': expected dtype {ft['dtype']}, got {value.dtype}")
    if list(value.shape) != list(ft["shape"]):
        raise FrameError(f"feature '{key}': expected shape {tuple(ft['shape'])}, got {value.shape}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        bad = [str(n) for n, ok in zip(_element_names(ft), np.isfinite(value), strict=False) if not ok]
        raise FrameError(f"feature '{key}': non-finite value (NaN or inf) in {', '.join(bad)}")


def _element_names(ft: dict[str, Any]) -> list[str]:
    names = ft.get("names")
    if isinstance(names, list) and len(names) == ft["shape"][0]:
        return [str(n) for n in names]
    return [f"[{i}]" for i in range(ft["shape"][0])]
