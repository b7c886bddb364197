"""A simulated SO-101-like arm with rendered cameras, selected by `--robot.type=sim`.

It exists so the whole recording pipeline (capture thread, encoders, dataset writer) can run and be
tested without hardware, on data that behaves like the real thing: smooth joint trajectories, a
follower that lags its leader, and camera frames with texture, motion and per-pixel sensor noise
(`--robot.noise`, on by default), so video encoders see realistic bitrates and work instead of
clean renders.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from operating_platform.robots.base import Robot, RobotConfig

CAMERA_NAMES = ("image_top", "image_wrist", "image_side")
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")

MAX_WIDTH = 3840
MAX_HEIGHT = 2160
# A loop of prerendered scenes longer than 10 s at 30 fps only costs memory (about 2.5 GB at
# 3 x 1280x720 for 300 ticks).
MAX_PRERENDER = 300

# The leader's trajectory is a function of the tick index; this converts ticks to seconds so the
# frequencies below read as Hz at the recorder's nominal 30 fps.
_TICK_HZ = 30.0

# (centre, amplitude) of each joint's scripted motion, in degrees (gripper: percent open). The
# amplitude is the bound on the summed sinusoids, chosen to stay inside SO-101 joint limits and to
# keep the arm in every camera's field of view.
_JOINT_MOTION = np.array(
    [
        [0.0, 60.0],  # shoulder_pan
        [0.0, 35.0],  # shoulder_lift
        [0.0, 40.0],  # elbow_flex
        [0.0, 45.0],  # wrist_flex
        [0.0, 90.0],  # wrist_roll
        [50.0, 48.0],  # gripper
    ]
)
_N_WAVES = 3
_FOLLOWER_GAIN = 0.5  # fraction of the remaining error the follower closes per tick
_FOLLOWER_NOISE_DEG = 0.08  # encoder noise on observation.state
# Texture stays in [0, _TEX_MAX] and noise in [0, _NOISE_SPAN), so a plain uint8 add cannot wrap.
_TEX_MAX = 240
_NOISE_SPAN = 12
_NOISE_PAD = 32  # the noise image is this much larger than a frame; per-tick offsets pick a window

# Link lengths of the arm in mm (shoulder to elbow, elbow to wrist, wrist to jaw base, jaw).
_L_UPPER, _L_FORE, _L_WRIST, _L_JAW = 116.0, 135.0, 60.0, 45.0
_SHOULDER_HEIGHT = 100.0

# RGB colours of the arm parts, kept below _TEX_MAX so the noise add cannot overflow.
_COLORS = {
    "base": (60, 60, 70),
    "upper": (225, 200, 40),
    "fore": (230, 120, 30),
    "wrist": (200, 200, 205),
    "jaw": (40, 40, 45),
}


@RobotConfig.register_subclass("sim")
@dataclasses.dataclass
class SimRobotConfig(RobotConfig):
    """Settings of the simulated arm.

    Everything the robot produces is a function of `seed` and the number of captures since
    `connect()`, so two runs with the same settings record byte-identical data.
    """

    # Number of cameras, 0..3: image_top, image_wrist, image_side, in that order.
    num_cameras: int = 2
    # Camera frame width in pixels; even, because the videos are encoded as yuv420p.
    camera_width: int = 640
    # Camera frame height in pixels; even, because the videos are encoded as yuv420p.
    camera_height: int = 480
    # Seeds the trajectory, the scene textures and all noise.
    seed: int = 0
    # Per-pixel sensor noise on every camera frame, different from one tick to the next, as a
    # real sensor gives an encoder; false gives the clean renders (the joints are the same).
    noise: bool = True
    # Draw the cameras' scenes for this many ticks once, at connect, and replay them in a loop
    # (with fresh sensor noise every tick). A tick then costs what a camera driver's ready frame
    # costs, as on real hardware, instead of drawing every scene on the capture thread (about
    # 10 ms a tick for three 1280x720 cameras on one core). 0 draws every tick; the joints are
    # the same either way, but past the loop the images no longer show them.
    prerender: int = 0

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.num_cameras <= len(CAMERA_NAMES):
            raise ValueError(
                f"--robot.num_cameras must be between 0 and {len(CAMERA_NAMES)} (got {self.num_cameras})"
            )
        for flag, value, limit in (
            ("camera_width", self.camera_width, MAX_WIDTH),
            ("camera_height", self.camera_height, MAX_HEIGHT),
        ):
            if value <= 0 or value % 2:
                raise ValueError(f"--robot.{flag} must be a positive even number (got {value})")
            if value > limit:
                raise ValueError(f"--robot.{flag} must be at most {limit} (got {value})")
        if self.seed < 0:
            raise ValueError(f"--robot.seed must be non-negative (got {self.seed})")
        if not 0 <= self.prerender <= MAX_PRERENDER:
            raise ValueError(
                f"--robot.prerender must be between 0 and {MAX_PRERENDER} ticks (got {self.prerender})"
            )


class SimRobot(Robot):
    """A deterministic simulated SO-101 arm with a scripted leader and up to three cameras.

    Promises:
    - `capture()` returns `action` (leader) and `observation.state` (follower), float32 arrays of
      shape (6,) in degrees (gripper in percent), and one RGB uint8 C-contiguous frame of shape
      (camera_height, camera_width, 3) per camera under `observation.images.<name>`.
    - Every returned array is newly allocated; the robot never writes to it again.
    - The output depends only on the config and the number of `capture()` calls since `connect()`,
      never on wall-clock time.
    - The leader moves smoothly; the follower tracks it with a first-order lag plus small noise.
    """

    config_class = SimRobotConfig

    def __init__(self, config: RobotConfig) -> None:
        if not isinstance(config, SimRobotConfig):
            raise TypeError(f"SimRobot needs a SimRobotConfig, got {type(config).__name__}")
        super().__init__(config)
        self.config: SimRobotConfig = config
        self._connected = False
        self._views: list[_CameraView] = []
        self._noise: np.ndarray | None = None
        self._drawn: list[list[np.ndarray]] = []  # per tick of the prerendered loop, per camera

    @property
    def robot_type(self) -> str:
        return "so101_sim"

    @property
    def joint_names(self) -> list[str]:
        return [f"{j}.pos" for j in JOINTS]

    @property
    def camera_names(self) -> list[str]:
        return list(CAMERA_NAMES[: self.config.num_cameras])

    @property
    def camera_shapes(self) -> dict[str, tuple[int, int, int]]:
        shape = (self.config.camera_height, self.config.camera_width, 3)
        return {name: shape for name in self.camera_names}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Build the scene and reset to tick 0; connecting again restarts the same sequence."""
        cfg = self.config
        cfg.validate()
        # Independent streams, so e.g. the texture of one camera never shifts another's noise.
        traj_ss, tick_ss, noise_ss, *view_ss = np.random.SeedSequence(cfg.seed).spawn(3 + len(CAMERA_NAMES))

        traj_rng = np.random.default_rng(traj_ss)
        n = len(JOINTS)
        self._freqs = traj_rng.uniform(0.05, 0.35, size=(n, _N_WAVES))  # Hz
        self._phases = traj_rng.uniform(0.0, 2 * math.pi, size=(n, _N_WAVES))
        weights = traj_rng.uniform(0.3, 1.0, size=(n, _N_WAVES))
        # Weights summing to one per joint keep the leader inside centre +- amplitude with no clipping
        # (clipping would put kinks into an otherwise smooth path).
        self._amps = weights / weights.sum(axis=1, keepdims=True) * _JOINT_MOTION[:, 1:2]

        self._tick_rng = np.random.default_rng(tick_ss)
        h, w = cfg.camera_height, cfg.camera_width
        self._noise = _sensor_noise(np.random.default_rng(noise_ss), h, w) if cfg.noise else None

        self._views = [
            _VIEW_CLASSES[name](np.random.default_rng(ss), h, w)
            for name, ss in zip(self.camera_names, view_ss, strict=False)
        ]

        self._tick = 0
        self._pos = self._leader(0)
        self._prev_action = self._pos.copy()
        self._drawn = []
        if cfg.prerender:
            self._drawn = self._draw_loop(cfg.prerender)
        self._connected = True

    def _draw_loop(self, ticks: int) -> list[list[np.ndarray]]:
        """The clean scenes of the first `ticks` ticks, drawn by stepping the arm on a copy of its state."""
        pos, prev, drawn = self._pos.copy(), self._prev_action.copy(), []
        for t in range(ticks):
            if t > 0:
                pos = _follow(pos, prev)
            prev = self._leader(t)
            pose = _forward_kinematics(pos)
            drawn.append([view.render(pose) for view in self._views])
        return drawn

    def disconnect(self) -> None:
        self._connected = False
        self._views = []
        self._noise = None
        self._drawn = []

    def capture(self) -> dict[str, np.ndarray]:
        if not self._connected:
            raise RuntimeError("SimRobot.capture() called before connect() (or after disconnect())")
        t = self._tick
        action = self._leader(t)
        if t > 0:
            self._pos = _follow(self._pos, self._prev_action)
        self._prev_action = action
        state = self._pos + self._tick_rng.normal(0.0, _FOLLOWER_NOISE_DEG, size=len(JOINTS))

        out: dict[str, np.ndarray] = {
            "action": action.astype(np.float32),
            "observation.state": state.astype(np.float32),
        }
        if self._views:
            # Cameras see the real (follower) arm, not the command.
            pose = _forward_kinematics(self._pos)
            h, w = self.config.camera_height, self.config.camera_width
            # Drawn whether or not noise is on, so the joints never depend on it.
            offsets = self._tick_rng.integers(0, _NOISE_PAD + 1, size=(len(self._views), 2))
            drawn = self._drawn[t % len(self._drawn)] if self._drawn else None
            for i, (view, (ny, nx)) in enumerate(zip(self._views, offsets, strict=True)):
                frame = view.render(pose) if drawn is None else drawn[i].copy()
                if self._noise is not None:
                    np.add(frame, self._noise[ny : ny + h, nx : nx + w], out=frame)
                out[f"observation.images.{view.name}"] = frame
        self._tick += 1
        return out

    def _leader(self, tick: int) -> np.ndarray:
        """Leader joint positions at `tick`, a closed-form function so it never drifts."""
        t = tick / _TICK_HZ
        waves = self._amps * np.sin(2 * math.pi * self._freqs * t + self._phases)
        return _JOINT_MOTION[:, 0] + waves.sum(axis=1)


def _follow(pos: np.ndarray, commanded: np.ndarray) -> np.ndarray:
    """The follower's next position: it closes part of the gap to the action commanded a tick ago."""
    return pos + _FOLLOWER_GAIN * (commanded - pos)


def _sensor_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A noise image a little larger than a frame; each tick adds a window of it at random."""
    # Triangular-ish distribution in [0, _NOISE_SPAN): looks more like sensor noise than uniform.
    half = _NOISE_SPAN // 2
    shape = (h + _NOISE_PAD, w + _NOISE_PAD, 3)
    return rng.integers(0, half, size=shape, dtype=np.uint8) + rng.integers(
        0, _NOISE_SPAN - half, size=shape, dtype=np.uint8
    )


# --- kinematics -------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Pose:
    """Arm geometry in mm for rendering: joint points in 3D and the gripper state."""

    points: np.ndarray  # (4, 3): shoulder, elbow, wrist, jaw base; x forward, y left, z up
    pan: float  # radians
    pitch: float  # radians, direction of the wrist link in its vertical plane
    roll: float  # radians
    opening: float  # 0 closed .. 1 fully open


def _forward_kinematics(q: np.ndarray) -> _Pose:
    pan = math.radians(q[0])
    # Angle offsets put the zero pose in a "reaching forward and down" posture that keeps the whole
    # arm inside the cameras' fields of view over the scripted range.
    a1 = math.radians(60.0 - 0.7 * q[1])
    a2 = a1 - math.radians(90.0 + 0.7 * q[2])
    a3 = a2 - math.radians(0.6 * q[3])
    r, z = 0.0, _SHOULDER_HEIGHT
    planar = [(r, z)]
    for length, a in ((_L_UPPER, a1), (_L_FORE, a2), (_L_WRIST, a3)):
        r += length * math.cos(a)
        z += length * math.sin(a)
        planar.append((r, z))
    cp, sp = math.cos(pan), math.sin(pan)
    points = np.array([(pr * cp, pr * sp, pz) for pr, pz in planar])
    opening = min(max(q[5] / 100.0, 0.0), 1.0)
    return _Pose(points=points, pan=pan, pitch=a3, roll=math.radians(q[4]), opening=opening)


def _jaw_tips(pose: _Pose) -> tuple[np.ndarray, np.ndarray]:
    """World positions of the two jaw tips, splayed by the gripper opening across the roll axis."""
    base = pose.points[-1]
    cp, sp = math.cos(pose.pan), math.sin(pose.pan)
    forward = np.array([math.cos(pose.pitch) * cp, math.cos(pose.pitch) * sp, math.sin(pose.pitch)])
    # The opening direction is perpendicular to the wrist link, rotated by wrist_roll.
    side = np.array([-sp, cp, 0.0])
    up = np.cross(forward, side)
    across = math.cos(pose.roll) * side + math.sin(pose.roll) * up
    spread = (0.15 + 0.6 * pose.opening) * _L_JAW
    tip = base + forward * _L_JAW
    return tip + across * spread, tip - across * spread


# --- drawing ----------------------------------------------------------------------------------------


def _stroke(frame: np.ndarray, p0, p1, r0: float, r1: float, color) -> None:
    """Paint a shaded, tapered capsule from p0 (radius r0) to p1 (radius r1), in pixel coordinates.

    Works on the capsule's bounding box only, which is what keeps a frame within a few milliseconds
    without cv2. Shading falls off across the stroke so links read as cylinders lit from one side.
    """
    h, w = frame.shape[:2]
    rmax = max(r0, r1)
    x0 = max(math.floor(min(p0[0], p1[0]) - rmax), 0)
    x1 = min(math.ceil(max(p0[0], p1[0]) + rmax) + 1, w)
    y0 = max(math.floor(min(p0[1], p1[1]) - rmax), 0)
    y1 = min(math.ceil(max(p0[1], p1[1]) + rmax) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(p0[0])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(p0[1])
    dx, dy = float(p1[0] - p0[0]), float(p1[1] - p0[1])
    length2 = dx * dx + dy * dy
    if length2 > 1e-9:
        t = np.clip((xs * np.float32(dx / length2)) + (ys * np.float32(dy / length2)), 0.0, 1.0)
    else:
        t = np.zeros((y1 - y0, x1 - x0), np.float32)
    ex = xs - t * np.float32(dx)
    ey = ys - t * np.float32(dy)
    radius = np.float32(r0) + t * np.float32(r1 - r0)
    rel2 = (ex * ex + ey * ey) / (radius * radius)
    inside = rel2 <= 1.0
    if not inside.any():
        return
    # Which side of the axis a pixel is on decides whether it faces the light.
    length = math.sqrt(length2) if length2 > 1e-9 else 1.0
    side = (ex * np.float32(-dy / length) + ey * np.float32(dx / length)) / radius
    shade = 0.5 + 0.45 * np.sqrt(np.maximum(1.0 - rel2, 0.0)) - 0.12 * side
    rgb = np.asarray(color, np.float32)
    pix = shade[inside][:, None] * rgb
    frame[y0:y1, x0:x1][inside] = np.clip(pix, 0, _TEX_MAX).astype(np.uint8)


# --- scene textures ---------------------------------------------------------------------------------


def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """(n, cells + 1) matrix that smoothly upsamples a grid of cells + 1 samples to n pixels."""
    pos = (np.arange(n) + 0.5) * cells / n
    i0 = np.minimum(pos.astype(np.int64), cells - 1)
    f = pos - i0
    f = f * f * (3 - 2 * f)  # smoothstep hides the grid lines of plain bilinear interpolation
    m = np.zeros((n, cells + 1), np.float32)
    m[np.arange(n), i0] = 1 - f
    m[np.arange(n), i0 + 1] = f
    return m


def _value_noise(rng: np.random.Generator, h: int, w: int, cell_px: float, octaves: int = 4) -> np.ndarray:
    """Fractal value noise in about [0, 1] (float32), with features of roughly `cell_px` pixels."""
    acc = np.zeros((h, w), np.float32)
    total = 0.0
    for k in range(octaves):
        # Cells below a few pixels add nothing the static grit does not, and on extreme aspect
        # ratios they would make the interpolation matrices huge.
        size = max(cell_px / (2**k), 4.0)
        cy, cx = max(1, round(h / size)), max(1, round(w / size))
        grid = rng.random((cy + 1, cx + 1), dtype=np.float32)
        amp = 0.5**k
        layer = _interp_matrix(h, cy) @ (grid @ _interp_matrix(w, cx).T)
        layer *= np.float32(amp)
        acc += layer
        total += amp
    acc *= np.float32(1.0 / total)
    return acc


def _make_texture(
    rng: np.random.Generator, h: int, w: int, feature_px: float, palette: np.ndarray, n_objects: int
) -> np.ndarray:
    """A scene image in [0, _TEX_MAX]: mottled surface, grain, scattered objects and static grit."""
    # Float32, single-channel intermediates: at 4K with pan margins a float64 RGB working image
    # alone would take about half a gigabyte.
    mix = _value_noise(rng, h, w, feature_px)
    detail = _value_noise(rng, h, w, feature_px / 3)
    yy = np.arange(h, dtype=np.float32)[:, None] / np.float32(feature_px / 6)
    # Wood-like grain: stripes bent by the noise field.
    grain = np.sin(np.float32(2 * math.pi) * (yy + 4 * mix))
    mix *= np.float32(0.55)
    mix += np.float32(0.25) * detail
    del detail
    mix += np.float32(0.1) * grain + np.float32(0.1)
    del grain

    img = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        # Static surface grit, so flat areas are not flat.
        channel = rng.integers(-8, 9, size=(h, w), dtype=np.int16).astype(np.float32)
        channel += np.float32(palette[0][c]) + np.float32(palette[1][c] - palette[0][c]) * mix
        np.clip(channel, 0, _TEX_MAX, out=channel)
        img[..., c] = channel
    del mix

    scale = min(h, w)
    edge = max(1, scale // 160)
    for _ in range(n_objects):
        oh, ow = (rng.uniform(0.06, 0.2, size=2) * scale).astype(int) + 2 * edge + 1
        y0, x0 = rng.integers(0, max(h - oh, 1)), rng.integers(0, max(w - ow, 1))
        color = rng.uniform(20, 200, size=3)
        box = img[y0 : y0 + oh, x0 : x0 + ow]
        bh, bw = box.shape[:2]
        # A soft diagonal gradient (lighting) plus grit on the face; a darker rim as outline/shadow.
        shade = 0.85 + 0.3 * np.linspace(0, 1, bh)[:, None] * np.linspace(1, 0.6, bw)[None, :]
        shade[:edge], shade[-edge:], shade[:, :edge], shade[:, -edge:] = 0.55, 0.55, 0.55, 0.55
        face = color * shade[..., None] + rng.integers(-6, 7, size=(bh, bw, 3))
        box[...] = np.clip(face, 0, _TEX_MAX).astype(np.uint8)
    return img


class _CameraView:
    """One camera: a precomputed scene larger than the frame, panned and overdrawn with the arm."""

    name = ""
    margin_frac = 0.05  # how far (fraction of the frame) the background may pan each way
    feature_frac = 0.25  # texture feature size as a fraction of the frame's short side
    n_objects = 10
    palette = ((70, 55, 40), (200, 165, 120))

    def __init__(self, rng: np.random.Generator, h: int, w: int) -> None:
        self.h, self.w = h, w
        self.my = max(2, round(h * self.margin_frac))
        self.mx = max(2, round(w * self.margin_frac))
        palette = np.asarray(self.palette, np.float64) * rng.uniform(0.85, 1.15, size=(2, 3))
        self.texture = _make_texture(
            rng,
            h + 2 * self.my,
            w + 2 * self.mx,
            feature_px=self.feature_frac * min(h, w),
            palette=palette,
            n_objects=self.n_objects,
        )
        # Pixels per mm of arm geometry: the whole reach fits the frame at any resolution.
        self.s = min(h, w) / 420.0

    def render(self, pose: _Pose) -> np.ndarray:
        """A new C-contiguous frame (without sensor noise) showing `pose`."""
        u, v = self.pan(pose)
        oy = self.my + round(max(-1.0, min(1.0, v)) * self.my)
        ox = self.mx + round(max(-1.0, min(1.0, u)) * self.mx)
        frame = np.empty((self.h, self.w, 3), np.uint8)
        frame[...] = self.texture[oy : oy + self.h, ox : ox + self.w]
        self.draw(frame, pose)
        return frame

    def pan(self, pose: _Pose) -> tuple[float, float]:
        """Background shift in [-1, 1] (fractions of the margin) for x and y."""
        return 0.0, 0.0

    def draw(self, frame: np.ndarray, pose: _Pose) -> None:
        raise NotImplementedError

    def _draw_arm(self, frame: np.ndarray, pose: _Pose, project, radius_at) -> None:
        """Draw base, links and jaws using `project` (world -> pixel) and `radius_at` (world, mm -> px)."""
        pts = list(pose.points)
        jaw_a, jaw_b = _jaw_tips(pose)
        base = np.array([0.0, 0.0, 0.0])
        parts = [
            (base, pts[0], 34.0, 28.0, _COLORS["base"]),
            (pts[0], pts[1], 22.0, 18.0, _COLORS["upper"]),
            (pts[1], pts[2], 18.0, 14.0, _COLORS["fore"]),
            (pts[2], pts[3], 15.0, 13.0, _COLORS["wrist"]),
            (pts[3], jaw_a, 7.0, 4.0, _COLORS["jaw"]),
            (pts[3], jaw_b, 7.0, 4.0, _COLORS["jaw"]),
        ]
        # Painter's order: far parts first, so links nearer the camera cover the others.
        parts.sort(key=lambda p: self.depth(p[0] + p[1]))
        for a, b, ra, rb, color in parts:
            _stroke(frame, project(a), project(b), radius_at(a, ra), radius_at(b, rb), color)

    def depth(self, p: np.ndarray) -> float:
        """Larger is nearer the camera."""
        return 0.0


class _TopView(_CameraView):
    """Looking down at the table from above the base; the arm reaches up the image."""

    name = "image_top"

    def pan(self, pose: _Pose) -> tuple[float, float]:
        # A little mount sway that follows the base rotation.
        return pose.pan / 2.0, 0.0

    def depth(self, p: np.ndarray) -> float:
        return float(p[2])

    def draw(self, frame: np.ndarray, pose: _Pose) -> None:
        s, cx, cy = self.s, self.w / 2, self.h * 0.88

        def project(p: np.ndarray) -> tuple[float, float]:
            # Mild perspective: things higher up (nearer the camera) spread out from the centre.
            k = s * (1.0 + p[2] / 700.0)
            return cx - k * p[1], cy - k * p[0]

        def radius_at(p: np.ndarray, r_mm: float) -> float:
            return r_mm * s * (1.0 + p[2] / 700.0)

        self._draw_arm(frame, pose, project, radius_at)


class _SideView(_CameraView):
    """Looking at the arm from its side; the table is the lower part of the scene."""

    name = "image_side"
    palette = ((40, 60, 80), (150, 175, 190))

    def pan(self, pose: _Pose) -> tuple[float, float]:
        return 0.0, -pose.pan / 3.0

    def depth(self, p: np.ndarray) -> float:
        return float(-p[1])

    def draw(self, frame: np.ndarray, pose: _Pose) -> None:
        s, cx, cy = self.s, self.w * 0.3, self.h * 0.85

        def project(p: np.ndarray) -> tuple[float, float]:
            k = s * (1.0 - p[1] / 900.0)
            return cx + k * p[0], cy - k * p[2]

        def radius_at(p: np.ndarray, r_mm: float) -> float:
            return r_mm * s * (1.0 - p[1] / 900.0)

        self._draw_arm(frame, pose, project, radius_at)


class _WristView(_CameraView):
    """Camera on the wrist: a close-up of the table that swings with the hand, jaws in the foreground."""

    name = "image_wrist"
    margin_frac = 0.25
    feature_frac = 0.6
    n_objects = 6
    palette = ((60, 50, 45), (215, 190, 150))

    def pan(self, pose: _Pose) -> tuple[float, float]:
        tip = pose.points[-1]
        # The hand's position over the table and its roll move the close-up view a lot.
        u = tip[1] / 150.0 + 0.3 * math.sin(pose.roll)
        v = (tip[0] - 180.0) / 120.0 + 0.3 * math.sin(pose.pitch + 1.0)
        return u, v

    def draw(self, frame: np.ndarray, pose: _Pose) -> None:
        h, w = self.h, self.w
        unit = min(h, w)
        # Jaws rise from the bottom edge towards the centre, tilted with the roll and spread by the
        # opening; drawn as tapered strokes, bigger near the lens.
        tilt = 0.25 * math.sin(pose.roll)
        spread = (0.06 + 0.22 * pose.opening) * w
        for side in (-1.0, 1.0):
            bx = w / 2 + side * (spread + 0.12 * w)
            tx = w / 2 + side * spread * 0.8
            base = (bx + tilt * unit * 0.5, h + 0.05 * unit)
            tip = (tx + tilt * unit * 0.2, h * 0.55)
            _stroke(frame, base, tip, 0.11 * unit, 0.05 * unit, _COLORS["jaw"])
        # The wrist housing across the bottom of the view.
        _stroke(
            frame,
            (w * 0.25, h + 0.08 * unit),
            (w * 0.75, h + 0.08 * unit),
            0.12 * unit,
            0.12 * unit,
            _COLORS["wrist"],
        )


_VIEW_CLASSES: dict[str, type[_CameraView]] = {v.name: v for v in (_TopView, _WristView, _SideView)}
