"""An optional live view in Rerun (`--record.display=rerun`): the cameras, downscaled, and the
joints as plots, streamed to a Rerun viewer while recording.

Like the OpenCV preview it runs on its own thread and reads `record.latest_frame`, the frame the
capture thread handed over by reference, so nothing is copied or sent on the capture thread. It
sends at most `max_hz` frames a second and always the newest: frames that arrive in between are
skipped, never queued, so a slow viewer or network can only make the view choppy, never delay a
tick.

The helpers below (addresses, entity paths, opening a stream) are shared with `dorobot view`.
rerun-sdk is optional: it is imported only when a view is opened.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import rerun as rr

    from operating_platform.core.record import Record

log = logging.getLogger("operating_platform.rerun")

APPLICATION_ID = "dorobot"
VIEWER_PORT = 9876  # where a spawned local viewer listens (Rerun's own default)
MAX_WIDTH = 320
MAX_HZ = 10.0
CONNECT_TIMEOUT_S = 2.0
VIEWER_START_TIMEOUT_S = 15.0
VIEWER_SETTLE_S = 1.0  # a viewer that fails to open its window does so well within it
CAMERA_PREFIX = "observation.images."
INSTALL_HINT = "pip install 'operating_platform[rerun]'"
# The columns every dataset has; they are indices, not signals worth plotting.
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


class RerunSinkError(RuntimeError):
    """Nothing can receive the stream: no viewer could be reached or started, or the .rrd file
    cannot be written. The message is one line saying which and what to do."""


def parse_addr(addr: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets) as (host, port); `ValueError` with one line if not."""
    host, sep, port = addr.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{addr!r} is not HOST:PORT (e.g. 127.0.0.1:9876)")
    return host, int(port)


def grpc_url(host: str, port: int) -> str:
    """The URL the Rerun SDK connects to for a viewer (or `rerun --serve-grpc`) at host:port."""
    shown = f"[{host}]" if ":" in host else host
    return f"rerun+http://{shown}:{port}/proxy"


def camera_entity(key: str) -> str:
    """Where a camera's images go: `cameras/<name>` for `observation.images.<name>`."""
    return f"cameras/{key.removeprefix(CAMERA_PREFIX)}"


def joint_entity(key: str) -> str:
    """Where a vector feature's values go (one plot with one line per element)."""
    return f"joints/{key}"


def plotted_features(features: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The vector features worth plotting (`action`, `observation.state`, ...), each with the
    names of its elements (their info.json names, else `key[i]`)."""
    plotted = {}
    for key, ft in features.items():
        shape = ft.get("shape") or []
        if ft.get("dtype") in ("video", "image") or key in INDEX_FEATURES or len(shape) != 1:
            continue
        names = ft.get("names")
        if isinstance(names, dict):  # some LeRobot datasets group names, e.g. {"motors": [...]}
            names = next(iter(names.values()), None) if len(names) == 1 else None
        if not (isinstance(names, list) and len(names) == shape[0]):
            names = [f"{key}[{i}]" for i in range(shape[0])]
        plotted[key] = [str(n) for n in names]
    return plotted


def downscale(image: np.ndarray, max_width: int) -> np.ndarray:
    """Every n-th pixel in both directions, the smallest n that fits `max_width` (a view, no copy)."""
    step = -(-image.shape[1] // max_width)
    return image[::step, ::step] if step > 1 else image


def rerun_missing(what: str) -> str | None:
    """One line saying rerun-sdk must be installed for `what`, or None when it is installed."""
    try:
        import rerun  # noqa: F401
    except ImportError:
        return f"{what} needs rerun-sdk: {INSTALL_HINT}"
    return None


def _viewer_executable() -> str | None:
    """The `rerun` viewer binary of this environment (the one rerun-sdk ships, else on PATH)."""
    try:
        import rerun_cli

        shipped = Path(rerun_cli.__file__).parent / "rerun"
        if shipped.is_file():
            return str(shipped)
    except ImportError:
        pass
    beside = Path(sys.executable).parent / "rerun"  # a venv's, when the venv is not on PATH
    return str(beside) if beside.is_file() else shutil.which("rerun")


def _reachable(host: str, port: int, timeout_s: float) -> OSError | None:
    """None if something accepts TCP connections at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc


def _check_reachable(host: str, port: int) -> None:
    # The SDK connects in the background and only complains when it disconnects; a plain TCP
    # connect first turns a wrong address into one clear message now.
    failure = _reachable(host, port, CONNECT_TIMEOUT_S)
    if failure is not None:
        reason = failure.strerror or type(failure).__name__
        raise RerunSinkError(
            f"no Rerun viewer at {host}:{port} ({reason}); start one there with `rerun --port {port}`"
        )


def _start_local_viewer() -> None:
    """Make sure a viewer listens on 127.0.0.1:VIEWER_PORT, starting one if none does.

    Started here rather than by `rr.spawn`, which lets the viewer print onto the operator's
    console and connects even to a viewer that failed to start (no display, say).
    """
    if _reachable("127.0.0.1", VIEWER_PORT, 0.5) is None:
        return  # a viewer already runs: it takes this recording too
    executable = _viewer_executable()
    if executable is None:
        raise RerunSinkError(f"the Rerun viewer (`rerun`) is not installed: {INSTALL_HINT}")
    with tempfile.TemporaryFile() as output:
        # A session of its own: the operator's Ctrl-C ends the recording, not the viewer.
        viewer = subprocess.Popen(
            [executable, "--port", str(VIEWER_PORT), "--expect-data-soon"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        deadline = time.monotonic() + VIEWER_START_TIMEOUT_S
        while _reachable("127.0.0.1", VIEWER_PORT, 0.2) is not None:
            _check_alive(viewer, output)
            if time.monotonic() > deadline:
                viewer.terminate()
                raise RerunSinkError(
                    f"the Rerun viewer did not start listening on port {VIEWER_PORT} "
                    f"within {VIEWER_START_TIMEOUT_S:g} s"
                )
            time.sleep(0.1)
        # It may listen before it opens its window, and fail on that (no display): only a viewer
        # still there a moment later has started.
        settled = time.monotonic() + VIEWER_SETTLE_S
        while time.monotonic() < settled:
            _check_alive(viewer, output)
            time.sleep(0.05)


def _check_alive(viewer: subprocess.Popen, output: IO[bytes]) -> None:
    if viewer.poll() is None:
        return
    output.seek(0)
    said = [line.strip() for line in output.read().decode(errors="replace").splitlines()]
    last = next((line for line in reversed(said) if line), f"exit status {viewer.returncode}")
    # Its last words end with the cause ("...: Failed to open connection to X server").
    raise RerunSinkError(f"the Rerun viewer did not start: {_shorten(last.rsplit(': ', 1)[-1])}")


def _shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_stream(name: str, addr: str = "", save: Path | None = None) -> rr.RecordingStream:
    """A recording stream of its own (never the global one) sending to one place.

    To the file `save` if given; else to the viewer at `addr` (`HOST:PORT`); else to a local
    viewer, started unless one already listens on Rerun's default port. Raises
    `RerunSinkError` when the file cannot be written or the viewer neither reached nor started.
    """
    import rerun as rr

    stream = rr.RecordingStream(APPLICATION_ID, recording_id=uuid.uuid4())
    if save is not None:
        try:
            stream.save(save)
        except Exception as exc:  # the SDK reports a file it cannot create as a RuntimeError
            raise RerunSinkError(
                f"cannot write {save} ({_shorten(str(exc))}); "
                "choose a file in a folder that exists and is writable"
            ) from None
    elif addr:
        host, port = parse_addr(addr)
        _check_reachable(host, port)
        stream.connect_grpc(grpc_url(host, port))
    else:
        _start_local_viewer()
        stream.connect_grpc(grpc_url("127.0.0.1", VIEWER_PORT))
    stream.send_recording_name(name)
    return stream


def close_stream(stream: rr.RecordingStream, timeout_s: float = 5.0) -> None:
    """Send what is still buffered (waiting at most `timeout_s`), then let go of the sink."""
    with contextlib.suppress(Exception):
        stream.flush(timeout_sec=timeout_s)
    with contextlib.suppress(Exception):
        stream.disconnect()


class RerunView:
    """Streams the recording to a Rerun viewer until `stop()`.

    Promises:
    - Never runs anything on the capture thread: it reads `record.latest_frame` (a reference)
      from its own thread, so a slow or vanished viewer cannot delay or stop a recording.
    - Sends at most `max_hz` frames a second, each one the newest captured and each new frame
      at most once; every camera at most `max_width` pixels wide, on the `time` timeline
      (wall-clock); joints as one plot per vector feature, a line per element.
    - If the viewer cannot be reached or started, or fails while streaming, it logs one warning
      line and the recording goes on without the view.
    """

    def __init__(
        self, record: Record, addr: str = "", max_width: int = MAX_WIDTH, max_hz: float = MAX_HZ
    ) -> None:
        self.record = record
        self.addr = addr
        self.max_width = max_width
        self.period_s = 1.0 / max_hz
        features = record.dataset.features
        self._cameras = {k for k, ft in features.items() if ft.get("dtype") in ("video", "image")}
        self._joints = plotted_features(features)
        self._stream: rr.RecordingStream | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rerun-view", daemon=True)

    def start(self) -> RerunView:
        where = f"the Rerun viewer at {self.addr}" if self.addr else "a local Rerun viewer"
        try:
            self._stream = open_stream(f"dorobot record {self.record.dataset.root}", self.addr)
            self._send_layout()
        except (RerunSinkError, ValueError) as exc:
            log.warning(f"Live view off: {exc}; recording goes on without it")
            return self
        except Exception as exc:
            log.warning(f"Live view off: cannot stream to {where} ({exc}); recording goes on without it")
            return self
        log.info(f"Live view: streaming to {where}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._stream is not None:
            close_stream(self._stream)
            self._stream = None

    def _send_layout(self) -> None:
        import rerun as rr

        assert self._stream is not None
        for key, names in self._joints.items():
            self._stream.log(joint_entity(key), rr.SeriesLines(names=names), static=True)

    def _run(self) -> None:
        import rerun as rr

        stream = self._stream
        assert stream is not None
        last: dict[str, np.ndarray] | None = None
        # Waiting a whole period after each send (not until a fixed next tick) keeps sends at
        # least a period apart however long a send took.
        while not self._stop.wait(self.period_s):
            frame = self.record.latest_frame
            if frame is None or frame is last:
                continue  # nothing new since the last send (between episodes, say)
            last = frame
            try:
                stream.set_time("time", timestamp=time.time())
                for key, value in frame.items():
                    if key in self._cameras:
                        stream.log(camera_entity(key), rr.Image(downscale(value, self.max_width)))
                    elif key in self._joints:
                        stream.log(joint_entity(key), rr.Scalars(np.asarray(value, dtype=np.float64)))
            except Exception as exc:
                log.warning(f"Live view off: streaming to Rerun failed ({exc}); recording goes on without it")
                return
