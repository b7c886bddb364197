"""An optional camera preview (`--record.display=opencv`): a window with every camera, and the
same keys as the terminal.

It shows the last frame the capture thread handed over (a reference, no copy) at about 15 Hz
from its own thread, so a slow window can never delay capture.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from operating_platform.core.record import Record

WINDOW = "dorobot"
# What cv2.waitKeyEx returns for the keys we use (GTK and Qt builds on Linux).
SPECIAL_KEYS = {13: "enter", 10: "enter", 27: "esc", 32: "space", 65363: "right", 65361: "left"}


class CameraPreview:
    """Shows the cameras side by side until `stop()`; `poll_key()` gives the keys pressed in it."""

    def __init__(self, record: Record) -> None:
        import cv2  # checked by RecordConfig.validate; imported here because it is optional

        self._cv2 = cv2
        self.record = record
        self._keys: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="preview", daemon=True)

    def start(self) -> CameraPreview:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def poll_key(self) -> str | None:
        try:
            return self._keys.get_nowait()
        except queue.Empty:
            return None

    def _run(self) -> None:
        cv2 = self._cv2
        while not self._stop.is_set():
            frame = self.record.latest_frame
            images = [v for k, v in (frame or {}).items() if k.startswith("observation.images.")]
            if images:
                height = min(img.shape[0] for img in images)
                row = np.hstack([img[:height] for img in images])
                cv2.imshow(WINDOW, row[:, :, ::-1])  # OpenCV wants BGR
            code = cv2.waitKeyEx(66)
            if code >= 0:
                key = SPECIAL_KEYS.get(code) or (
                    chr(code).lower() if 0 < code < 128 and chr(code).isalpha() else None
                )
                if key:
                    self._keys.put(key)
        cv2.destroyAllWindows()
