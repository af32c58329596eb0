"""Annotated clips: skeleton, per-joint heat, current top-3 actions and a timeline strip.

Drawing is OpenCV on BGR frames; encoding is PyAV's libx264 (H.264 High, yuv420p,
``+faststart``) because OpenCV's wheels cannot encode H.264 and browsers do not play ``mp4v``.
The output keeps the source's frame count and frame rate, and its frame size (or half of it,
``size="half"``); the timeline strip is drawn over the bottom of the frame, not appended to it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core.atomic import temp_path_beside
from core.layouts import MA52_44, SkeletonLayout

# One BGR colour per MA-52 body level (A body … G leg-hand); also used by the app's timeline.
BODY_LEVEL_COLOURS_BGR: tuple[tuple[int, int, int], ...] = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
    (189, 103, 148), (75, 86, 140), (194, 119, 227),
)
NO_LABEL_BGR = (90, 90, 90)
# x264 presets offered for the annotated clips: ultrafast encodes ~2x faster, files ~2.6x larger
CLIP_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
# output sizes offered for the annotated clips: the divisor of the source's width and height
# (half: a quarter of the pixels to draw and encode; benchmarks/bench_pictures.py measures it)
CLIP_SIZES = {"full": 1, "half": 2}


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """(V,) heat in [0, 1] → (V, 3) uint8 BGR colours (OpenCV's turbo map: blue cold, red hot)."""
    h = np.clip(np.nan_to_num(np.asarray(heat, np.float32)), 0, 1)
    return cv2.applyColorMap((h * 255).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, :]


@dataclass(frozen=True)
class FrameAnnotation:
    """What to write on one frame: up to three (text, probability, body-level index) lines and
    the timeline colour of that frame. ``lines`` is empty when there are no labels."""

    lines: tuple[tuple[str, float, int], ...] = ()


def draw_skeleton(frame: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, heat: np.ndarray | None,
                  layout: SkeletonLayout = MA52_44, min_score: float = 0.05) -> None:
    """Draw bones and joints in place. ``keypoints`` (V, 2) pixels, ``scores`` (V,),
    ``heat`` (V,) in [0, 1] colours the joints (None: white). Joints with NaN coordinates or
    a score below ``min_score`` are skipped; low-confidence joints are drawn hollow."""
    h = frame.shape[0]
    thick = max(1, h // 400)
    radius = max(2, h // 220)
    ok = np.isfinite(keypoints).all(axis=1) & (scores >= min_score)
    pts = np.nan_to_num(keypoints).round().astype(np.int32)
    for a, b in layout.bones:
        if ok[a] and ok[b]:
            cv2.line(frame, tuple(pts[a]), tuple(pts[b]), (235, 235, 235), thick, cv2.LINE_AA)
    colours = heat_colours(heat) if heat is not None else np.full((len(pts), 3), 255, np.uint8)
    for j in np.flatnonzero(ok):
        colour = tuple(int(c) for c in colours[j])
        r = radius + (int(round(radius * float(heat[j]))) if heat is not None else 0)  # hot joints grow
        filled = -1 if scores[j] >= 0.3 else thick
        cv2.circle(frame, tuple(pts[j]), r + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(frame, tuple(pts[j]), r, colour, filled, cv2.LINE_AA)


def draw_text_panel(frame: np.ndarray, annotation: FrameAnnotation, banner: str | None) -> None:
    """Top-left panel: the current top-3 actions with probabilities (coloured by body level),
    or ``banner`` when there are no labels."""
    h, w = frame.shape[:2]
    scale = max(0.4, h / 1400)
    thick = max(1, int(round(scale * 2)))
    line_h = int(32 * scale) + 6
    palette = BODY_LEVEL_COLOURS_BGR
    rows = [(f"{text}  {prob:.0%}", palette[body % len(palette)]) for text, prob, body in annotation.lines]
    if not rows and banner:
        rows = [(banner, (255, 255, 255))]
    if not rows:
        return
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] for t, _ in rows) + 24
    panel = frame[0:line_h * len(rows) + 12, 0:min(w, width)]
    panel[:] = (panel * 0.35).astype(np.uint8)
    for i, (text, colour) in enumerate(rows):
        y = 6 + line_h * (i + 1) - 8
        cv2.rectangle(frame, (4, y - line_h + 12), (10, y), colour, -1)
        cv2.putText(frame, text, (16, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def timeline_image(colours: np.ndarray, energy: np.ndarray | None, width: int, height: int) -> np.ndarray:
    """A (height, width, 3) strip: per-frame colours (N, 3) BGR stretched over the width, with the
    normalised motion energy (N,) drawn as a white curve when given."""
    n = len(colours)
    cols = np.clip((np.arange(width) * n) // max(width, 1), 0, max(n - 1, 0))
    strip = np.repeat(colours[cols][None].astype(np.uint8), height, axis=0)
    if energy is not None and n > 1:
        e = np.asarray(energy, np.float32)
        e = (e - e.min()) / (np.ptp(e) + 1e-9)
        ys = (height - 3 - e[cols] * (height - 6)).astype(np.int32)
        pts = np.stack([np.arange(width), ys], axis=1).astype(np.int32)
        cv2.polylines(strip, [pts], False, (255, 255, 255), 1, cv2.LINE_AA)
    return strip


def draw_timeline(frame: np.ndarray, strip: np.ndarray, frame_index: int, num_frames: int) -> None:
    """Blend ``strip`` over the bottom of ``frame`` and draw the playhead at ``frame_index``."""
    h, w = frame.shape[:2]
    sh = strip.shape[0]
    region = frame[h - sh:h, :]
    region[:] = (0.25 * region + 0.75 * strip[:, :w]).astype(np.uint8)
    x = int(round((frame_index + 0.5) * w / max(num_frames, 1)))
    cv2.line(frame, (x, h - sh - 4), (x, h - 1), (255, 255, 255), max(2, h // 360))


class H264Writer:
    """Write BGR frames to an H.264 mp4 atomically (:func:`core.atomic.temp_path_beside`):
    frames go to a temporary file in the target folder, renamed onto ``path`` by
    :meth:`close`; :meth:`abort` (or an exception inside a ``with`` block) removes it. Odd
    frame sizes are padded by one pixel (yuv420p needs even)."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float,
                 crf: int = 23, preset: str = "veryfast") -> None:
        import av  # imported here: only clip export needs it

        self.path = Path(path)
        self.tmp = temp_path_beside(self.path)
        self.width, self.height = width, height
        self._container = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate,
                                                  options={"preset": preset, "crf": str(crf)})
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._av = av
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        if frame_bgr.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {frame_bgr.shape[:2]} differs from the writer's {(self.height, self.width)}")
        if self.width % 2 or self.height % 2:
            frame_bgr = cv2.copyMakeBorder(frame_bgr, 0, self.height % 2, 0, self.width % 2, cv2.BORDER_REPLICATE)
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._container.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> H264Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def render_annotated_clip(frames: Iterable[np.ndarray], out_path: str | os.PathLike, *, fps: float,
                          keypoints: np.ndarray, scores: np.ndarray, heat: np.ndarray,
                          annotations: Sequence[FrameAnnotation], timeline_colours: np.ndarray,
                          energy: np.ndarray | None = None, banner: str | None = None,
                          layout: SkeletonLayout = MA52_44, preset: str = "veryfast", size: str = "full",
                          progress: Callable[[int], None] | None = None) -> Path:
    """Draw every frame and encode the clip (see module docstring).

    ``frames``: BGR frames in order (N of them); ``keypoints`` (N, V, 2) px; ``scores`` (N, V);
    ``heat`` (N, V) in [0, 1]; ``annotations`` N per-frame text lines; ``timeline_colours``
    (N, 3) BGR; ``energy`` (N,) for the timeline curve; ``preset``: x264's speed/size trade-off
    (``ultrafast`` encodes about twice as fast as ``veryfast`` into a file about 2.6× larger);
    ``size``: a :data:`CLIP_SIZES` name, ``half`` draws and encodes each frame at half the
    width and height (INTER_AREA; the skeleton is scaled with it). Returns the written path."""
    if size not in CLIP_SIZES:
        raise ValueError(f"clip size must be one of {', '.join(CLIP_SIZES)}, got {size!r}")
    div = CLIP_SIZES[size]
    n = len(keypoints)
    writer: H264Writer | None = None
    strip = None
    try:
        for i, frame in enumerate(frames):
            if i >= n:
                raise ValueError(f"video has more frames than its skeleton ({n})")
            if div > 1:
                frame = cv2.resize(frame, (max(1, frame.shape[1] // div), max(1, frame.shape[0] // div)),
                                   interpolation=cv2.INTER_AREA)
            else:
                frame = frame.copy()
            if writer is None:
                h, w = frame.shape[:2]
                writer = H264Writer(out_path, w, h, fps, preset=preset)
                strip = timeline_image(timeline_colours, energy, w, max(24, h // 24))
            draw_skeleton(frame, keypoints[i] / div, scores[i], heat[i], layout)
            draw_text_panel(frame, annotations[i], banner)
            draw_timeline(frame, strip, i, n)
            writer.write(frame)
            if progress is not None:
                progress(1)
        if writer is None:
            raise ValueError("no frames to render")
        if writer.frames != n:
            raise ValueError(f"video gave {writer.frames} frames, skeleton has {n}")
        return writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
