"""The recorder's side of DoRobot's ZeroMQ bridge: sockets, message parts, image payloads.

A DoRobot dataflow has one bridge node that binds two sockets, one for images and one for
joints, and sends every dora event it gets as a multipart message: `[event id, payload, JSON
metadata]` for an image, `[event id, float32 bytes]` for a joint reading. A `BridgeReceiver`
connects to one of those sockets and runs the one thread that reads it, keeping per event id
the newest message, decoded, with the time it arrived; a capture tick takes it from there and
never waits on a socket.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from operating_platform.streams import Latest

log = logging.getLogger("operating_platform.dorobot")

RAW_ENCODINGS = ("bgr8", "rgb8")
COMPRESSED_ENCODINGS = ("jpeg", "jpg", "jpe", "png", "bmp", "webp")
POLL_MS = 100  # how long a read waits before checking whether the receiver was stopped
RECEIVE_QUEUE = 16  # messages ZeroMQ may hold for us; beyond it the bridge drops, as DoRobot's does


class BridgeMessageError(ValueError):
    """A message the recorder cannot record: a wrong size, a broken image, an unknown encoding."""


def import_zmq() -> Any:
    try:
        import zmq
    except ImportError:
        raise ImportError(
            "--robot.type=dorobot needs pyzmq: pip install 'operating_platform[dorobot]'"
        ) from None
    return zmq


def decode_image(event_id: str, payload: memoryview, metadata: bytes) -> np.ndarray:
    """An image message's payload as an RGB (height, width, 3) uint8 array, never written again."""
    try:
        meta = json.loads(bytes(metadata)) if metadata else {}
    except ValueError as exc:
        raise BridgeMessageError(f"{event_id}: its metadata is not JSON ({exc})") from None
    encoding = str(meta.get("encoding", "bgr8")).lower()
    if encoding in RAW_ENCODINGS:
        try:
            width, height = int(meta["width"]), int(meta["height"])
        except (KeyError, TypeError, ValueError):
            raise BridgeMessageError(f"{event_id}: a {encoding} image without width and height") from None
        pixels = np.frombuffer(payload, np.uint8)
        if pixels.size != width * height * 3:
            raise BridgeMessageError(
                f"{event_id}: a {width}x{height} {encoding} image needs {width * height * 3} bytes, "
                f"the message holds {pixels.size}"
            )
        image = pixels.reshape(height, width, 3)
        # bgr8 is copied once, reversed; rgb8 is used as the message holds it.
        return np.ascontiguousarray(image[..., ::-1]) if encoding == "bgr8" else image
    if encoding in COMPRESSED_ENCODINGS:
        return _decode_compressed(event_id, encoding, payload)
    raise BridgeMessageError(
        f"{event_id}: unknown image encoding {encoding!r} (expected one of "
        f"{', '.join(RAW_ENCODINGS + COMPRESSED_ENCODINGS)})"
    )


def _decode_compressed(event_id: str, encoding: str, payload: memoryview) -> np.ndarray:
    try:
        import cv2
    except ImportError:
        raise BridgeMessageError(
            f"{event_id} sends {encoding} images; decoding them needs OpenCV: "
            "pip install 'operating_platform[dorobot]'"
        ) from None
    bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BridgeMessageError(f"{event_id}: a {encoding} image that does not decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_joints(event_id: str, payload: memoryview) -> np.ndarray:
    """A joint message's payload: float32 values in native (little-endian) byte order."""
    if len(payload) % 4:
        raise BridgeMessageError(f"{event_id}: {len(payload)} bytes is not a float32 array")
    return np.frombuffer(payload, np.float32).copy()


# Turns an event id and the message's parts after it into the value kept for that id; None for
# an event id nobody records.
Decoder = Callable[[str, list[memoryview]], Any]


class BridgeReceiver:
    """One socket of the bridge, read by a thread of its own.

    Promises: `get(event_id)` returns the newest decoded message of that event id with its
    arrival (`time.monotonic()` when it was read off the socket) without waiting; messages that
    queued up while the thread was busy are skipped for the newest, never decoded in a backlog.
    A message that cannot be decoded is not recorded; `failing(event_id)` says why once
    `FAILURES_IN_A_ROW` messages of that id in a row could not be (one broken JPEG is a repeated
    frame, a camera that changed its size is a fault).
    """

    FAILURES_IN_A_ROW = 3

    def __init__(self, context: Any, address: str, socket_type: str, decode: Decoder) -> None:
        zmq = import_zmq()
        self.address = address
        self._decode = decode
        self._latest: dict[str, Latest] = {}
        self._failures: dict[str, tuple[int, BridgeMessageError]] = {}
        self.seen: set[str] = set()
        self._stop = threading.Event()
        if socket_type == "sub":
            self._socket = context.socket(zmq.SUB)
            self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        else:
            self._socket = context.socket(zmq.PAIR)
        self._socket.setsockopt(zmq.RCVTIMEO, POLL_MS)
        self._socket.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(address)
        self._thread = threading.Thread(target=self._run, name=f"bridge {address}", daemon=True)
        self._thread.start()

    def get(self, event_id: str) -> Latest | None:
        return self._latest.get(event_id)

    def failing(self) -> list[BridgeMessageError]:
        """Why each event id whose last `FAILURES_IN_A_ROW` messages could not be decoded failed."""
        return [error for count, error in list(self._failures.values()) if count >= self.FAILURES_IN_A_ROW]

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the thread (it notices within `POLL_MS`) and close the socket."""
        self._stop.set()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._socket.close(linger=0)

    def _run(self) -> None:
        zmq = import_zmq()
        while not self._stop.is_set():
            newest: dict[str, tuple[list[memoryview], float]] = {}
            try:
                newest.update(self._receive(zmq, 0))
                while True:  # whatever else is already waiting: only the newest of each id counts
                    newest.update(self._receive(zmq, zmq.NOBLOCK))
            except zmq.Again:
                pass
            except zmq.ZMQError as exc:
                if not self._stop.is_set():
                    log.error(f"[DoRobot] {self.address}: {exc}; no more messages are read from it")
                return
            for event_id, (parts, arrived) in newest.items():
                self._keep(event_id, parts, arrived)

    def _receive(self, zmq: Any, flags: int) -> dict[str, tuple[list[memoryview], float]]:
        parts = self._socket.recv_multipart(flags, copy=False)
        arrived = time.monotonic()
        if len(parts) < 2:
            return {}  # not a bridge message
        event_id = bytes(parts[0].buffer).decode("utf-8", "replace")
        return {event_id: ([p.buffer for p in parts[1:]], arrived)}

    def _keep(self, event_id: str, parts: list[memoryview], arrived: float) -> None:
        self.seen.add(event_id)
        try:
            value = self._decode(event_id, parts)
        except BridgeMessageError as exc:
            count = self._failures.get(event_id, (0, exc))[0] + 1
            self._failures[event_id] = (count, exc)
            if count == 1:
                log.warning(f"[DoRobot] {exc}; the message is not recorded")
            return
        if value is not None:
            self._failures.pop(event_id, None)
            self._latest.setdefault(event_id, Latest()).put(value, arrived)
