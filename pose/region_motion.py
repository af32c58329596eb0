"""Pixel motion energy per body region (MEA, as in Ramseyer & Tschacher), in the pose pass.

MEA of a region in frame t = mean absolute grey-level difference between frames t-1 and t
over the pixels of the region's box (units: grey levels 0-255 per pixel). The boxes are the
extents of the region's joints in frame t, padded by ``pad`` torso lengths on every side
(a limb held straight, or the face joints, would otherwise give a box of no width or one that
misses the head around the face points).

Regions are the layout's body parts (``layout.parts``: for MA-52 left arm, right arm, left leg,
right leg, face, torso), so that a region's MEA compares one-to-one with a skeleton heat's
``per_part_mean``. The face box, padded by 0.1 torso lengths (23-29 px on these clips), covers
the head; the torso box runs from the head top (a torso joint in MA-52) to the hips, so it
overlaps the head and the arms — regions are not a partition of the image.

:class:`RegionMotionEnergy` runs inside the pose pass, one frame at a time: the frame is
converted to grey and downscaled (``scale``, INTER_AREA), differenced with the previous one
(cv2.absdiff) and integrated (cv2.integral), so each box mean costs O(1). It keeps only the
previous small grey frame and, per frame, one float32 per candidate person and region.
Grey first, then halving twice with INTER_AREA (OpenCV's fast 2x2 path): about 0.45 ms for a
1080x1296 frame here, where one INTER_AREA resize straight to 1/4 takes 0.86 ms and
resizing the BGR frame first 1.6 ms.

Boxes come from the raw per-frame pose of every candidate person (the subject is only chosen
after the pass); they differ from boxes on the final smoothed skeleton by 1-2 % per frame,
with the same rankings. See docs/motion-heat.md for the measurements.
"""
from __future__ import annotations

import warnings
from array import array
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from core.layouts import MA52_44, SkeletonLayout

__all__ = ["DEFAULT_PAD", "DEFAULT_SCALE", "RegionMotionEnergy", "UNIT", "grey_small", "layout_regions",
           "region_boxes"]

UNIT = "mean absolute grey-level difference between consecutive frames, 0-255 per pixel"
DEFAULT_PAD = 0.1   # box padding, torso lengths
DEFAULT_SCALE = 4   # downscale factor of the streamed grey frames


def layout_regions(layout: SkeletonLayout = MA52_44) -> list[tuple[str, tuple[int, ...]]]:
    """The regions: the layout's parts, as ``(name, joint ids)``."""
    return [(name, tuple(js)) for name, js in layout.parts]


def torso_length(keypoints: np.ndarray, layout: SkeletonLayout = MA52_44) -> np.ndarray:
    """(..., V, 2) → (...) neck-to-hip-centre distance in pixels (NaN where missing). For
    layouts without those joints: the vertical extent of the present joints / 3."""
    names = layout.joint_names
    if "neck" in names and "hip_centre" in names:
        d = keypoints[..., names.index("neck"), :] - keypoints[..., names.index("hip_centre"), :]
        return np.linalg.norm(d, axis=-1)
    with np.errstate(all="ignore"):
        y = keypoints[..., 1]
        return (np.nanmax(y, axis=-1) - np.nanmin(y, axis=-1)) / 3.0


def region_boxes(keypoints: np.ndarray, regions: Sequence[tuple[str, Sequence[int]]],
                 pad_px: np.ndarray | float) -> np.ndarray:
    """Boxes ``x0, y0, x1, y1`` (..., R, 4) float64 around each region's present joints,
    widened by ``pad_px`` (scalar or broadcastable to ``keypoints.shape[:-2]``) on every side;
    NaN where a region has no present joint. ``keypoints`` (..., V, 2) px, NaN where missing."""
    kp = np.asarray(keypoints, np.float64)
    pad = np.asarray(pad_px, np.float64)[..., None]
    out = []
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _, js in regions:
            pts = kp[..., list(js), :]
            lo = np.nanmin(pts, axis=-2) - pad
            hi = np.nanmax(pts, axis=-2) + pad
            out.append(np.concatenate([lo, hi], axis=-1))
    return np.stack(out, axis=-2)


def grey_small(frame_bgr: np.ndarray, scale: int) -> np.ndarray:
    """BGR (H, W, 3) uint8 → grey downscaled by ``scale`` (INTER_AREA), uint8. A power of two
    is done by repeated halving (OpenCV's fast 2x2 area path)."""
    grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
    s = int(scale)
    while s > 1 and min(grey.shape) // s < 2:  # a tiny frame: downscale it less
        s //= 2
    if s > 1 and s & (s - 1) == 0:
        while s > 1:
            grey = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            s //= 2
    elif s > 1:
        h, w = grey.shape
        grey = cv2.resize(grey, (w // s, h // s), interpolation=cv2.INTER_AREA)
    return grey


def _box_means(ii: np.ndarray, boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Mean of the image whose integral is ``ii`` ((h+1, w+1)) over ``boxes`` (M, 4) given in
    that image's pixels (float, clipped; inclusive-exclusive after rounding). NaN where the box
    is NaN or empty after clipping."""
    out = np.full(len(boxes), np.nan)
    ok = np.isfinite(boxes).all(axis=1)
    if not ok.any():
        return out
    b = np.rint(boxes[ok]).astype(np.int64)
    x0 = np.clip(b[:, 0], 0, w); x1 = np.clip(b[:, 2] + 1, 0, w)
    y0 = np.clip(b[:, 1], 0, h); y1 = np.clip(b[:, 3] + 1, 0, h)
    area = (x1 - x0) * (y1 - y0)
    s = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
    vals = np.where(area > 0, s / np.maximum(area, 1), np.nan)
    out[np.flatnonzero(ok)] = vals
    return out


class RegionMotionEnergy:
    """Streaming per-region pixel motion energy, fed one frame at a time in the pose pass.

    Two halves, so that the pixel work can run where the frame is (e.g. in the decode /
    prefetch thread of ``pose.extract``, overlapping the estimator) and the boxes where the
    pose is:

    - :meth:`push_frame` (index, frame): grey, downscale, absdiff with the previous frame,
      integral image; kept until the pose of that frame arrives (at most the prefetch depth:
      8 x 350 KiB at 1/4 of 1080x1296).
    - :meth:`add_pose` (index, keypoints): box means for every candidate person.
    - :meth:`update` (frame, keypoints) does both for the next frame index.
    - :meth:`frame_difference`: the whole frame's mean difference per frame, for shot cuts.

    ``push_frame`` must be called in frame order, ``add_pose`` too (each after the
    ``push_frame`` of its frame); they may run in different threads.

    Args:
        layout: joint layout of the keypoints.
        regions: ``(name, joint ids)``; default the layout's parts.
        scale: integer downscale factor applied (INTER_AREA, after the grey conversion)
            before the difference; 4 turns 1080x1296 into 270x324.
        pad: box padding in torso lengths. The torso length is each person's neck-to-hip
            distance in that frame, else the running median of the last 301 seen.

    Memory: the previous small grey frame (W*H/scale^2 bytes) plus ``P*R`` float32 per frame
    and one float32 per frame for the whole frame's difference
    (P candidate people, R regions): 24 bytes per frame for one person and 6 regions, 2.6 MB
    per hour at 30 fps.
    """

    def __init__(self, layout: SkeletonLayout = MA52_44,
                 regions: Sequence[tuple[str, Sequence[int]]] | None = None,
                 scale: int = DEFAULT_SCALE, pad: float = DEFAULT_PAD) -> None:
        self.layout = layout
        self.regions = list(regions) if regions is not None else layout_regions(layout)
        self.names = [n for n, _ in self.regions]
        self.scale = int(scale)
        self.pad = float(pad)
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._prev_index = -2
        self._pending: dict[int, np.ndarray | None] = {}  # frame index -> integral image (or None)
        self._rows: list[np.ndarray] = []                # per frame (P, R) float32
        self._torso: list[float] = []                    # recent torso lengths (px, full res)
        self._difference = array("f")                   # per pushed frame: whole-frame mean |difference|

    def push_frame(self, index: int, frame_bgr: np.ndarray) -> None:
        """Pixel half for frame ``index``: (H, W, 3) uint8 BGR."""
        grey = grey_small(frame_bgr, self.scale)
        prev, prev_index = self._prev, self._prev_index
        self._prev, self._prev_index = grey, index
        if len(self._difference) > index:
            del self._difference[index:]
        self._difference.extend([np.nan] * (index + 1 - len(self._difference)))
        if prev is None or prev.shape != grey.shape or index != prev_index + 1:
            self._pending[index] = None
        else:
            ii = cv2.integral(cv2.absdiff(grey, prev))  # int32 (h+1, w+1)
            self._pending[index] = ii
            self._difference[index] = float(ii[-1, -1]) / (grey.shape[0] * grey.shape[1])

    def _pad_px(self, keypoints: np.ndarray) -> np.ndarray:
        t = torso_length(keypoints, self.layout)            # (P,)
        good = t[np.isfinite(t) & (t > 0)]
        self._torso.extend(float(x) for x in good)
        if len(self._torso) > 301:
            del self._torso[:-301]
        ref = float(np.median(self._torso)) if self._torso else np.nan
        t = np.where(np.isfinite(t) & (t > 0), t, ref)
        return self.pad * t

    def add_pose(self, index: int, keypoints: np.ndarray) -> None:
        """Box half for frame ``index``: ``keypoints`` (V, 2) or, for several candidate
        people, (P, V, 2) pixels of that frame, NaN where missing (raw per-frame pose, before
        smoothing). Frames never pushed, and the first frame, get NaN rows."""
        kp = np.asarray(keypoints, np.float64)
        if kp.ndim == 2:
            kp = kp[None]
        while len(self._rows) < index:                    # frames without a pose call
            self._rows.append(np.full((0, len(self.regions)), np.nan, np.float32))
        ii = self._pending.pop(index, None)
        p, r = kp.shape[0], len(self.regions)
        if ii is None or p == 0:
            self._rows.append(np.full((p, r), np.nan, np.float32))
            return
        boxes = region_boxes(kp, self.regions, self._pad_px(kp)) / self.scale  # (P, R, 4)
        h, w = ii.shape[0] - 1, ii.shape[1] - 1
        self._rows.append(_box_means(ii, boxes.reshape(-1, 4), w, h).reshape(p, r).astype(np.float32))

    def update(self, frame_bgr: np.ndarray, keypoints: np.ndarray) -> None:
        """Both halves for the next frame (index = number of frames added so far)."""
        index = len(self._rows)
        self.push_frame(index, frame_bgr)
        self.add_pose(index, keypoints)

    def frame_difference(self, num_frames: int | None = None) -> np.ndarray:
        """(N,) float32 mean absolute grey-level difference between each pushed frame and the
        one before it over the whole downscaled frame (0-255 per pixel; the integral image's
        last entry, so free): the signal of :func:`pose.shot_cuts.detect_cuts`. NaN in frame 0
        and where a frame was not pushed. ``num_frames`` default: frames seen so far."""
        n = num_frames if num_frames is not None else max(len(self._rows), len(self._difference))
        out = np.full(n, np.nan, np.float32)
        got = np.frombuffer(self._difference, np.float32)[:n]
        out[:len(got)] = got
        return out

    def result(self, pick: Mapping[int, int] | Sequence[int] | None = None) -> np.ndarray:
        """(N, R) float32 MEA per frame and region (grey levels 0-255 per pixel), NaN where the
        region (or the subject) is absent and in frame 0. ``pick``: the subject's person index
        per frame (as :meth:`pose.subject.SubjectTracker.choose` returns; frames it lacks are
        NaN), default person 0."""
        n, r = len(self._rows), len(self.regions)
        out = np.full((n, r), np.nan, np.float32)
        for f, row in enumerate(self._rows):
            if pick is None:
                p = 0
            elif isinstance(pick, Mapping):
                p = pick.get(f, -1)
            else:
                p = pick[f]
            if 0 <= p < row.shape[0]:
                out[f] = row[p]
        return out
