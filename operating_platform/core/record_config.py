"""`RecordConfig`: every `--record.*` flag, its default, and the checks it passes before any
hardware is touched."""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath

from operating_platform.compress.settings import CompressSettings
from operating_platform.dataset.metadata import FORMATS
from operating_platform.dataset.video import EncoderRefused, VideoSettings, check_encoder, probe_encoder

# `user/name`, as the Hugging Face hub names datasets and LeRobot's loader expects them.
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# File systems that show the kernel's state rather than store files: nothing can be recorded there.
PSEUDO_FILE_SYSTEMS = {
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs",
    "securityfs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "binfmt_misc",
}  # fmt: skip


class ConfigError(ValueError):
    """A flag or config value is wrong; the message is one line that names the flag."""


def dorobot_home() -> Path:
    """Base folder for datasets: `$DOROBOT_HOME`, else `~/DoRobot`."""
    return Path(os.environ.get("DOROBOT_HOME") or Path.home() / "DoRobot").expanduser()


@dataclass
class RecordConfig:
    """What to record and how; each field is the `--record.<field>` flag of the same name."""

    # Dataset name, `user/name` as on the Hugging Face hub. Required.
    repo_id: str = ""
    # The instruction the operator demonstrates, stored with every episode. Required.
    single_task: str = ""
    # Dataset folder. Default: $DOROBOT_HOME/dataset/<repo_id> ($DOROBOT_HOME defaults to ~/DoRobot).
    root: str | None = None
    # Capture rate in frames per second.
    fps: int = 30
    # Record the camera streams as videos. false: joints only, no camera streams.
    video: bool = True
    # Episodes to record in this session.
    num_episodes: int = 50
    # Length of an episode in seconds; 0: until the operator ends it (needs a terminal).
    episode_time_s: float = 60.0
    # Pause between episodes, for the operator to reset the scene, in seconds; 0: until the
    # operator goes on (on a terminal) or none at all (unattended).
    reset_time_s: float = 60.0
    # Append to the dataset at `root` if it exists (fps, robot and features must match). What an
    # interrupted session left unfinished is recovered first.
    resume: bool = False
    # On recovery, commit the intact frames of the episode being recorded when a session was
    # interrupted as an episode of its own (otherwise it is set aside whole in .dorobot/partial).
    salvage_partial: bool = False
    # Dataset layout: "v2.1" (LeRobot 0.3 and DoRobot) or "v3.0" (LeRobot 0.4 and later).
    # Default: v2.1 for a new dataset; a resumed dataset keeps its own.
    format: str | None = None
    # v3.0: the size a data file / a camera's video file grows to before the next one starts,
    # in MB (LeRobot's defaults: 100 and 200). Smaller files upload and download in finer steps.
    data_files_size_in_mb: float | None = None
    video_files_size_in_mb: float | None = None
    # Save episodes in the background so the operator never waits.
    use_async_save: bool = True
    # Episodes that may wait to be saved before `save()` waits for a free slot.
    async_save_queue_size: int = 10
    # Longest wait for pending saves when the session ends, in seconds.
    async_save_timeout_s: int = 300
    # Further attempts for an episode whose save failed, with backoff 2^n s.
    async_save_max_retries: int = 3
    # Video encoder (any FFmpeg encoder PyAV offers: libx264, libsvtav1, ...).
    vcodec: str = "libx264"
    # Constant rate factor: lower is better quality and bigger files.
    crf: int = 23
    # Keyframe interval in frames (LeRobot's loader seeks fastest with small values).
    g: int = 2
    # Encoder preset, as the codec names them; unset: its fastest ("ultrafast" for libx264 and
    # libx265, "12" for libsvtav1), so that it keeps up with capture.
    preset: str | None = None
    # Camera preview: "none", "opencv" for a window with the cameras (needs OpenCV and a display),
    # or "rerun" to stream the cameras and joints to a Rerun viewer (needs rerun-sdk).
    display: str = "none"
    # With --record.display=rerun: HOST:PORT of a running Rerun viewer to stream to; unset: start
    # a local viewer.
    rerun_addr: str | None = None
    # Upload each committed episode in the background, at low priority, to hf://datasets/USER/NAME,
    # s3://BUCKET/PREFIX, a folder (a mounted NAS) or another fsspec URL. Credentials come from
    # the environment: HF_TOKEN or `hf auth login`; AWS_* variables, AWS_PROFILE, AWS_ENDPOINT_URL.
    push_to: str | None = None
    # Longest wait for the upload at the end of the session, in seconds; what is left then is
    # finished by `dorobot push ROOT DEST`.
    push_timeout_s: float = 120.0
    # Re-encode committed episodes to a smaller codec in the background ("av1", "hevc", or an
    # encoder name), in a separate process on idle CPU time, paused while an episode is
    # recorded; each copy is checked against its original before it is swapped in. What is
    # left at the end of the session is finished after it, or by `dorobot compress ROOT`.
    compress: str | None = None
    # With --record.compress: the encoder's preset and crf (default for AV1: preset 10, crf 30),
    # the keyframe interval in frames, and the PSNR floor, in dB, every frame of a copy must clear.
    compress_preset: str | None = None
    compress_crf: int | None = None
    compress_g: int | None = None
    compress_min_psnr: float | None = None

    def validate(self) -> None:
        """Raise `ConfigError` for the first wrong value, naming its flag."""
        if not self.repo_id:
            raise ConfigError("--record.repo_id is required, e.g. --record.repo_id=my_lab/pick_cube")
        if ".." in self.repo_id.split("/") or not REPO_ID_RE.match(self.repo_id):
            raise ConfigError(
                f"--record.repo_id={self.repo_id} must look like 'user/name', e.g. my_lab/pick_cube "
                "(letters, digits, '_', '-', '.'; no '..')"
            )
        if not self.single_task.strip():
            raise ConfigError('--record.single_task is required, e.g. --record.single_task="Pick the cube"')
        if self.root is not None and (not self.root.strip() or ".." in PurePath(self.root).parts):
            raise ConfigError(f"--record.root={self.root!r} must be a folder path without '..'")
        self._check_root()
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"--record.format must be {' or '.join(FORMATS)} (got {self.format!r})")
        for name in ("data_files_size_in_mb", "video_files_size_in_mb"):
            value = getattr(self, name)
            if value is None:
                continue
            _positive(name, value)
            # A resumed dataset keeps its layout: opening it checks that it has these settings.
            if self.format != "v3.0" and not (self.resume and self.format is None):
                raise ConfigError(f"--record.{name} applies to v3.0 datasets: add --record.format=v3.0")
        _at_least("fps", self.fps, 1, upper=1000)
        _at_least("num_episodes", self.num_episodes, 1)
        _at_least("episode_time_s", self.episode_time_s, 0)
        _at_least("reset_time_s", self.reset_time_s, 0)
        _at_least("async_save_queue_size", self.async_save_queue_size, 1)
        _positive("async_save_timeout_s", self.async_save_timeout_s)
        _at_least("async_save_max_retries", self.async_save_max_retries, 0)
        _at_least("crf", self.crf, 0, upper=63)
        _at_least("g", self.g, 1)
        self._check_display()
        _at_least("push_timeout_s", self.push_timeout_s, 0)
        self._check_push_to()
        try:
            check_encoder(self.vcodec)
        except ValueError as exc:
            raise ConfigError(f"--record.vcodec: {exc}") from None
        if self.video:
            self._check_encoder_settings()
        self._check_compress()

    def _check_encoder_settings(self) -> None:
        # Every episode would otherwise fail to encode, be retried and set aside.
        settings = self.video_settings
        try:
            ignored = probe_encoder(settings)
        except EncoderRefused as exc:
            flag = f"--record.{exc.option}={getattr(self, exc.option)}" if exc.option else self._video_flags()
            raise ConfigError(f"{flag}: {self.vcodec} refuses it ({exc.reason})") from None
        # A default the encoder has no use for is harmless; a value the operator chose is not.
        defaults = RecordConfig()
        for option in sorted(ignored):
            value = getattr(self, option)
            if value != getattr(defaults, option):
                raise ConfigError(f"--record.{option}={value}: {self.vcodec} ignores it (it has no {option})")

    def _check_compress(self) -> None:
        flags = ("compress_preset", "compress_crf", "compress_g", "compress_min_psnr")
        if self.compress is None:
            if given := [name for name in flags if getattr(self, name) is not None]:
                raise ConfigError(
                    f"--record.{given[0]} applies to --record.compress, e.g. --record.compress=av1"
                )
            return
        if not self.video:
            raise ConfigError("--record.compress needs camera videos; --record.video=false records none")
        if self.compress_g is not None:
            _at_least("compress_g", self.compress_g, 1)
        if self.compress_crf is not None:
            _at_least("compress_crf", self.compress_crf, 0, upper=63)
        try:
            settings = self.compress_settings
            assert settings is not None
            probe_encoder(settings.video)
        except EncoderRefused as exc:
            option = {"preset": "compress_preset", "crf": "compress_crf", "g": "compress_g"}.get(
                exc.option or ""
            )
            flag = (
                f"--record.{option}={getattr(self, option)}"
                if option
                else f"--record.compress={self.compress}"
            )
            raise ConfigError(f"{flag}: {settings.encoder} refuses it ({exc.reason})") from None
        except ValueError as exc:
            raise ConfigError(f"--record.compress={self.compress}: {exc}") from None

    @property
    def compress_settings(self) -> CompressSettings | None:
        """The background compression asked for, or None."""
        if self.compress is None:
            return None
        return CompressSettings.parse(
            self.compress,
            preset=self.compress_preset,
            crf=self.compress_crf,
            g=self.compress_g,
            min_psnr=self.compress_min_psnr,
        )

    def _video_flags(self) -> str:
        flags = {"vcodec": self.vcodec, "crf": self.crf, "g": self.g, "preset": self.preset}
        return " ".join(f"--record.{name}={value}" for name, value in flags.items())

    def _root_flag(self) -> str:
        return f"--record.root={self.root if self.root is not None else self.dataset_root}"

    def _check_root(self) -> None:
        """Refuse a dataset folder that is a file, or lies where no file can be stored."""
        root = self.dataset_root
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{self._root_flag()} is a file, not a folder")
        place = _nearest_existing(root)
        if not place.is_dir():
            raise ConfigError(f"{self._root_flag()}: {place} is a file, not a folder")
        mount, fstype = _mount_of(place)
        if fstype in PSEUDO_FILE_SYSTEMS:
            raise ConfigError(
                f"{self._root_flag()} cannot hold a dataset: {mount} is the kernel's {fstype} file "
                "system (system information, not storage); choose a folder on a disk"
            )

    def check_root_writable(self) -> None:
        """Refuse a new dataset folder that cannot be created, naming the flag and why.

        It creates and removes an empty folder where the dataset would go, so it runs when the
        session starts, not while the flags are checked.
        """
        root = self.dataset_root
        if root.exists():
            return  # an existing dataset: opening it says what is wrong with it
        place = _nearest_existing(root)
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".dorobot-check-", dir=place))
        except OSError as exc:
            raise ConfigError(
                f"{self._root_flag()} cannot hold a dataset: cannot create a folder in {place} "
                f"({exc.strerror or exc})"
            ) from None

    def _check_push_to(self) -> None:
        if not self.push_to:
            return
        from operating_platform.upload.destination import (
            DestinationError,
            check_dependencies,
            parse_destination,
        )

        try:
            check_dependencies(parse_destination(self.push_to, self.dataset_root))
        except DestinationError as exc:
            raise ConfigError(f"--record.push_to={exc.shown}: {exc.reason}") from None

    def _check_display(self) -> None:
        if self.rerun_addr and self.display != "rerun":
            raise ConfigError(
                f"--record.rerun_addr={self.rerun_addr} is only used with --record.display=rerun"
            )
        if self.display == "none":
            return
        if self.display == "rerun":
            self._check_rerun()
            return
        if self.display != "opencv":
            raise ConfigError(f"--record.display must be none, opencv or rerun (got {self.display!r})")
        if importlib.util.find_spec("cv2") is None:
            raise ConfigError(
                "--record.display=opencv needs OpenCV: pip install 'operating_platform[opencv]'"
            )
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ConfigError(
                "--record.display=opencv needs a display ($DISPLAY is not set, e.g. over SSH); "
                "use --record.display=none"
            )

    def _check_rerun(self) -> None:
        from operating_platform.core.rerun_view import INSTALL_HINT, parse_addr

        if importlib.util.find_spec("rerun") is None:
            raise ConfigError(f"--record.display=rerun needs rerun-sdk: {INSTALL_HINT}")
        if self.rerun_addr:
            try:
                parse_addr(self.rerun_addr)
            except ValueError as exc:
                raise ConfigError(f"--record.rerun_addr: {exc}") from None
        elif not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ConfigError(
                "--record.display=rerun starts a viewer window, which needs a display ($DISPLAY is "
                "not set, e.g. over SSH); start `rerun` where you can see it and pass "
                "--record.rerun_addr=HOST:PORT"
            )

    @property
    def dataset_root(self) -> Path:
        if self.root is not None:
            return Path(self.root).expanduser()
        return dorobot_home() / "dataset" / self.repo_id

    @property
    def layout_options(self) -> dict[str, float]:
        """What the dataset layout is told beyond the defaults (see `DoRobotDatasetMetadata`)."""
        names = ("data_files_size_in_mb", "video_files_size_in_mb")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    @property
    def video_settings(self) -> VideoSettings:
        return VideoSettings(vcodec=self.vcodec, crf=self.crf, g=self.g, preset=self.preset)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def _mount_of(path: Path) -> tuple[str, str]:
    """The mount point holding `path` and its file system type ("", "" if unknown)."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return "", ""
    target = str(path.resolve())
    best = ("", "")
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[0]):
            best = (mount, fields[2])
    return best


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"--record.{name} must be greater than 0 (got {value})")


def _at_least(name: str, value: float, lower: float, upper: float | None = None) -> None:
    if value < lower or (upper is not None and value > upper):
        bounds = f"between {lower} and {upper}" if upper is not None else f"at least {lower}"
        raise ConfigError(f"--record.{name} must be {bounds} (got {value})")
