"""Make real H.264 test video with PyAV's bundled libx264 (demo, tests and benchmarks).

`make_h264`: a moving gradient with a frame counter burnt in, so every frame differs and a clip's
first and last frames can be identified after a round trip.

`make_street_h264`: a still street (a brick wall with windows above a pavement, sensor noise) that
a drawn person walks across now and then: the demo's simulated camera on a machine without the
team's real footage. The figure is drawn, not filmed: a side view with head, hair, neck, jacket,
trousers, shoes and hands, the far arm and leg darker, a walking cycle (legs and arms swinging
in opposition, the knee bending in the swing, the head bobbing), light from the upper left, a
shadow at the feet, drawn 3x larger and scaled down so its edges are smooth. It is sized and
contrasted so that the built-in HOG people detector finds it on every frame where it is whole in
the picture, and the scene gives the detector nothing when nobody walks (tests/test_demo_fresh.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def encode_h264(
    frames: Iterable[np.ndarray],
    path: Path,
    fps: int,
    width: int,
    height: int,
    gop: int,
    bitrate: int | None = None,
    preset: str = "veryfast",
    crf: int = 28,
) -> Path:
    """Encode BGR frames as H.264 in an MP4: a keyframe every `gop` frames, no B-frames (like cameras)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        options = {"preset": preset, "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "0"}
        if bitrate:
            stream.bit_rate = bitrate
        else:
            options["crf"] = str(crf)
        stream.codec_context.options = options
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_h264(
    path: Path,
    seconds: float = 20.0,
    fps: int = 15,
    width: int = 640,
    height: int = 360,
    gop: int | None = None,
    bitrate: int | None = None,
    preset: str = "veryfast",
) -> Path:
    """Write an H.264 MP4 with a keyframe every `gop` frames (default: every second)."""
    ys, xs = np.mgrid[0:height, 0:width]

    def frames() -> Iterator[np.ndarray]:
        for i in range(round(seconds * fps)):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (xs + 4 * i) % 256
            img[..., 1] = (ys + 2 * i) % 256
            img[..., 2] = (xs + ys + 8 * i) % 256
            cv2.putText(img, f"{i:06d}", (20, height // 2), cv2.FONT_HERSHEY_SIMPLEX, height / 200, (255, 255, 255), 3)
            yield img

    return encode_h264(frames(), path, fps, width, height, gop or fps, bitrate, preset)


BGR = tuple[int, int, int]
_SUPERSAMPLE = 3  # the figure is drawn 3x larger and scaled down: smooth edges, as through a lens
_POSES = 16  # drawn poses per gait cycle (two steps); each is drawn once per walk and reused
_ASPECT = 0.6  # a pose's width (room for the swinging limbs) / the figure's height
_STRIDE = 0.78  # ground covered per gait cycle / the figure's height (the feet do not slide)
_FEET = 0.88  # the feet's line, share of the frame height
_SKIN: BGR = (110, 140, 185)
_HAIR: BGR = (28, 28, 34)
_SHOES: BGR = (32, 32, 36)


@dataclass(frozen=True)
class Walk:
    """One pass of the walking figure across the picture, from edge to edge."""

    start: float  # s from the start of the clip: the figure begins to step in at one edge
    seconds: float  # until it has left at the other edge
    left_to_right: bool
    height: float  # the figure's height, share of the frame height
    top: BGR = (70, 60, 55)  # jacket (BGR)
    legs: BGR = (95, 60, 40)  # trousers (BGR)

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def figure_size(self, frame_height: int) -> tuple[int, int]:
        """(width, height) of the figure's poses, in pixels."""
        fig_h = round(self.height * frame_height)
        return int(fig_h * _ASPECT), fig_h

    def left(self, t: float, width: int, height: int) -> float:
        """x of the pose's left edge at time t (partly outside the picture while entering and leaving)."""
        fig_w = self.figure_size(height)[0]
        travelled = (t - self.start) / self.seconds * (width + fig_w)
        return travelled - fig_w if self.left_to_right else width - travelled

    def whole_in_view(self, width: int, height: int) -> tuple[float, float]:
        """(from, until): the seconds of the clip in which the whole figure is inside the picture."""
        fig_w = self.figure_size(height)[0]
        step = self.seconds / (width + fig_w)
        return self.start + fig_w * step, self.start + width * step


# The demo's minute: four people, one at a time, 7 s of empty street between them (longer than an
# event's end_after_seconds, 5 s, so each pass is its own event; also across the loop).
DEMO_WALKS = (
    Walk(4.0, 8.0, True, 0.42),
    Walk(19.0, 8.0, False, 0.39, top=(40, 40, 150), legs=(70, 70, 70)),
    Walk(34.0, 8.0, True, 0.44, top=(110, 150, 160), legs=(40, 40, 40)),
    Walk(49.0, 8.0, False, 0.40, top=(200, 200, 200), legs=(120, 90, 60)),
)


def make_street_h264(
    path: Path,
    seconds: float = 60.0,
    fps: int = 15,
    width: int = 1280,
    height: int = 720,
    gop: int | None = None,
    walks: Sequence[Walk] = DEMO_WALKS,
    bitrate: int | None = None,
    preset: str = "veryfast",
) -> Path:
    """Write an H.264 MP4 of a street that `walks` cross (default: the demo's minute).

    60 s of 1280x720 at 15 fps take ~15 s on one x86 core, nearly all of it H.264 encoding."""
    frames = street_frames(width, height, fps, seconds, walks)
    return encode_h264(frames, path, fps, width, height, gop or fps, bitrate, preset)


def street_frames(width: int, height: int, fps: int, seconds: float, walks: Sequence[Walk]) -> Iterator[np.ndarray]:
    """BGR frames of the street scene with the walks drawn in."""
    scene = street_scene(width, height)
    rng = np.random.default_rng(1)
    # Sensor noise: a few noisy copies of the scene in turn (a fresh draw per frame costs more than encoding).
    scenes = [np.clip(scene + rng.normal(0, 2.5, (height, width, 1)), 0, 255).astype(np.uint8) for _ in range(4)]
    poses: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    feet = round(height * _FEET)
    for i in range(round(seconds * fps)):
        t = i / fps
        frame = scenes[i % len(scenes)].copy()
        for n, walk in enumerate(walks):
            if not walk.start <= t < walk.end:
                continue
            fig_w, fig_h = walk.figure_size(height)
            x = walk.left(t, width, height)
            travelled = x + fig_w if walk.left_to_right else width - x
            pose = int(travelled / (_STRIDE * fig_h) * _POSES) % _POSES
            if (n, pose) not in poses:
                img, alpha = walker_sprite(fig_h, pose / _POSES, walk.top, walk.legs)
                if not walk.left_to_right:
                    img, alpha = cv2.flip(img, 1), cv2.flip(alpha, 1)
                poses[n, pose] = img, alpha
            img, alpha = poses[n, pose]
            shadow = (round(0.16 * fig_h), round(0.025 * fig_h))
            cv2.ellipse(frame, (round(x + fig_w / 2), feet), shadow, 0, 0, 360, (95, 98, 100), -1)
            _paste(frame, img, alpha, round(x), feet + 2 - img.shape[0])
        yield frame


def street_scene(width: int, height: int, seed: int = 7) -> np.ndarray:
    """A still street: a brick wall with two windows above a pavement, lit from above."""
    rng = np.random.default_rng(seed)
    ground = int(height * 0.62)
    wall = np.empty((ground, width, 3), np.float32)
    wall[:] = (150, 165, 185)
    brick_h = max(6, height // 40)
    brick_w = 3 * brick_h
    for row, y in enumerate(range(0, ground, brick_h)):
        offset = (row % 2) * brick_w // 2
        for x in range(-offset, width, brick_w):
            wall[y : y + brick_h, max(x, 0) : x + brick_w] += rng.normal(0, 6)
            if x > 0:
                wall[y : y + brick_h, x] -= 14  # mortar between bricks
        wall[y] -= 18  # mortar between rows
    wall *= np.linspace(0.9, 1.05, ground, dtype=np.float32)[:, None, None]
    img = np.empty((height, width, 3), np.uint8)
    img[:ground] = np.clip(wall, 0, 255)
    win_w, win_h, win_y = int(width * 0.16), int(ground * 0.45), int(ground * 0.18)
    for x0 in (int(width * 0.12), int(width * 0.62)):
        cv2.rectangle(img, (x0 - 6, win_y - 6), (x0 + win_w + 6, win_y + win_h + 6), (90, 95, 100), -1)
        glass = np.linspace(60, 100, win_h, dtype=np.float32)[:, None]
        img[win_y : win_y + win_h, x0 : x0 + win_w] = np.stack([glass + 20, glass + 10, glass], -1).astype(np.uint8)
        cv2.line(img, (x0 + win_w // 2, win_y), (x0 + win_w // 2, win_y + win_h), (90, 95, 100), 4)
    paving = np.empty((height - ground, width, 3), np.float32)
    paving[:] = (128, 132, 135)
    paving *= np.linspace(0.85, 1.1, height - ground, dtype=np.float32)[:, None, None]
    paving += rng.normal(0, 7, (height - ground, width, 1)).astype(np.float32)
    img[ground:] = np.clip(paving, 0, 255)
    cv2.line(img, (0, ground), (width, ground), (80, 85, 90), 3)  # the foot of the wall
    slab = max(20, height // 12)
    for x in range(0, width + slab, 2 * slab):
        cv2.line(img, (x, ground), (x - slab, height), (105, 108, 110), 1)
    blurred = cv2.GaussianBlur(img, (3, 3), 0)
    return np.clip(blurred + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def walker_sprite(height: int, phase: float, top: BGR, legs: BGR) -> tuple[np.ndarray, np.ndarray]:
    """A person walking to the right, `height` px tall, at `phase` (0..1) of the gait cycle:
    (BGR image, alpha 0..1), `_ASPECT * height` px wide, the feet at the bottom."""
    h = height * _SUPERSAMPLE
    w = int(h * _ASPECT)
    img = np.zeros((h + h // 40, w, 3), np.uint8)
    cx = w / 2
    angle = 2 * math.pi * phase
    top_y = 0.012 * h * (1 - abs(math.cos(angle)))  # highest as the legs pass each other
    head_r = 0.062 * h
    shoulder_y = top_y + 0.18 * h
    hip_y = top_y + 0.52 * h

    def leg(a: float, color: BGR) -> None:
        swing = math.radians(24) * math.sin(a)  # the thigh from vertical, + forward
        bend = math.radians(8) + math.radians(35) * max(0.0, math.cos(a)) ** 2  # the knee bends in the swing
        hip = (cx, hip_y)
        knee = (hip[0] + 0.245 * h * math.sin(swing), hip[1] + 0.245 * h * math.cos(swing))
        ankle = (knee[0] + 0.235 * h * math.sin(swing - bend), knee[1] + 0.235 * h * math.cos(swing - bend))
        toe = (ankle[0] + 0.075 * h, ankle[1] + 0.01 * h)
        _limb(img, hip, knee, 0.055 * h, 0.042 * h, color)
        _limb(img, knee, ankle, 0.042 * h, 0.03 * h, color)
        _limb(img, (ankle[0] - 0.01 * h, ankle[1]), toe, 0.025 * h, 0.02 * h, _SHOES)

    def arm(a: float, color: BGR) -> None:
        swing = math.radians(22) * math.sin(a)
        bend = swing + math.radians(12) + math.radians(18) * max(0.0, math.sin(a))  # the elbow bends forward
        shoulder = (cx + 0.01 * h, shoulder_y + 0.02 * h)
        elbow = (shoulder[0] + 0.17 * h * math.sin(swing), shoulder[1] + 0.17 * h * math.cos(swing))
        wrist = (elbow[0] + 0.16 * h * math.sin(bend), elbow[1] + 0.16 * h * math.cos(bend))
        _limb(img, shoulder, elbow, 0.035 * h, 0.03 * h, color)
        _limb(img, elbow, wrist, 0.03 * h, 0.024 * h, color)
        cv2.circle(img, (round(wrist[0]), round(wrist[1])), round(0.026 * h), _SKIN, -1)

    # Back to front: the far leg and arm (in shadow), the near leg, the body, the near arm.
    leg(angle + math.pi, _shade(legs, 0.75))
    arm(angle, _shade(top, 0.75))
    leg(angle, legs)
    torso = [(cx - 0.12 * h, shoulder_y + 0.02 * h), (cx - 0.05 * h, shoulder_y - 0.01 * h)]
    torso += [(cx + 0.06 * h, shoulder_y - 0.01 * h), (cx + 0.12 * h, shoulder_y + 0.03 * h)]
    torso += [(cx + 0.095 * h, hip_y + 0.03 * h), (cx - 0.095 * h, hip_y + 0.03 * h)]
    cv2.fillPoly(img, [np.array(torso, np.int32)], top)
    _limb(img, (cx + 0.01 * h, top_y + 1.9 * head_r), (cx + 0.01 * h, shoulder_y), 0.028 * h, 0.03 * h, _SKIN)
    head = (round(cx + 0.012 * h), round(top_y + head_r))
    cv2.ellipse(img, head, (round(0.85 * head_r), round(head_r)), 0, 0, 360, _SKIN, -1)
    crown = (round(cx), round(top_y + 0.8 * head_r))
    cv2.ellipse(img, crown, (round(0.9 * head_r), round(0.85 * head_r)), 0, 180, 360, _HAIR, -1)
    back = (round(cx - 0.02 * h), round(top_y + 0.95 * head_r))
    cv2.ellipse(img, back, (round(0.6 * head_r), round(0.7 * head_r)), 0, 0, 360, _HAIR, -1)
    arm(angle + math.pi, top)
    mask = np.where(img.any(axis=2), np.uint8(255), np.uint8(0))  # every colour above is non-zero
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float32)
    light = 1.15 - 0.35 * xs / w - 0.1 * ys / h  # from the upper left
    lit = np.clip(img * light[..., None], 0, 255).astype(np.uint8)
    size = (w // _SUPERSAMPLE, img.shape[0] // _SUPERSAMPLE)
    alpha = cv2.resize(mask, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return cv2.resize(lit, size, interpolation=cv2.INTER_AREA), alpha


def _limb(img: np.ndarray, p: tuple[float, float], q: tuple[float, float], r0: float, r1: float, color: BGR) -> None:
    """A tapered limb from p (radius r0) to q (radius r1), with rounded ends."""
    (x0, y0), (x1, y1) = p, q
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    nx, ny = (y0 - y1) / length, (x1 - x0) / length
    outline = [(x0 + nx * r0, y0 + ny * r0), (x1 + nx * r1, y1 + ny * r1)]
    outline += [(x1 - nx * r1, y1 - ny * r1), (x0 - nx * r0, y0 - ny * r0)]
    cv2.fillPoly(img, [np.array(outline, np.int32)], color)
    cv2.circle(img, (round(x0), round(y0)), round(r0), color, -1)
    cv2.circle(img, (round(x1), round(y1)), round(r1), color, -1)


def _shade(color: BGR, factor: float) -> BGR:
    return (round(color[0] * factor), round(color[1] * factor), round(color[2] * factor))


def _paste(frame: np.ndarray, img: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Blend `img` into `frame` with its top left at (x, y), clipped to the frame."""
    h, w = alpha.shape
    fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    a = alpha[fy0 - y : fy1 - y, fx0 - x : fx1 - x, None]
    roi = frame[fy0:fy1, fx0:fx1]
    roi[:] = roi * (1 - a) + img[fy0 - y : fy1 - y, fx0 - x : fx1 - x] * a
