"""A simulated camera node: on every tick, one image with its frame number stamped into it.

Settings (environment, set in dataflow.yml): CAMERA (its name, which picks its scene), WIDTH,
HEIGHT, ENCODING (bgr8 as DoRobot's OpenCV camera node sends, rgb8, or jpeg/png).
"""

import os

import numpy as np
import pyarrow as pa
from dora import Node
from sim_frames import render

CAMERA = os.environ.get("CAMERA", "top")
WIDTH = int(os.environ.get("WIDTH", "640"))
HEIGHT = int(os.environ.get("HEIGHT", "480"))
ENCODING = os.environ.get("ENCODING", "bgr8")


def payload(rgb: np.ndarray) -> np.ndarray:
    if ENCODING == "rgb8":
        return rgb.ravel()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if ENCODING == "bgr8":
        return bgr.ravel()
    import cv2

    ok, encoded = cv2.imencode(f".{ENCODING}", bgr)
    if not ok:
        raise RuntimeError(f"OpenCV cannot encode {ENCODING}")
    return encoded.ravel()


def main() -> None:
    node = Node()
    counter = 0
    for event in node:
        if event["type"] == "STOP":
            break
        if event["type"] == "INPUT" and event["id"] == "tick":
            image = render(CAMERA, counter, HEIGHT, WIDTH)
            meta = {"encoding": ENCODING, "width": WIDTH, "height": HEIGHT, "frame": counter}
            node.send_output("image", pa.array(payload(image)), meta)
            counter += 1


if __name__ == "__main__":
    main()
