"""Shot cuts (camera changes) from the frame difference the pose pass already measures.

Interviews are often filmed with two cameras and edited, so the subject appears at another
position and scale after each cut. A cut is found from one number per frame, the mean absolute
grey-level difference between the frame and the one before it over the whole (downscaled)
image: :class:`pose.region_motion.RegionMotionEnergy` has that difference's integral image
anyway, so the number costs one lookup (:meth:`~pose.region_motion.RegionMotionEnergy.frame_difference`).

Within a shot the difference is small (a seated person moving, fixed camera: 0.1-0.7 grey
levels per pixel on the MA-52 clips at 1/4 scale); at a hard cut most pixels change at once
(17-36 between those clips, even filmed in the same room from the same place).
Frame ``t`` starts a new shot when its difference is

- at least ``ratio`` times the median of the ``window`` frames on each side (a spike far above
  the local level, so steady fast motion or camera noise does not count),
- at least ``min_difference`` grey levels per pixel, and
- the largest within ``min_shot`` frames (one cut per spike).

Gradual transitions (fades, dissolves) are not detected. The cuts go into the skeleton file's
``meta["shot_cuts"]`` (:func:`cuts_record`), feed the subject choice
(:meth:`pose.subject.SubjectTracker.choose`) and are listed in the labels JSON (``cuts``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["METHOD", "CutConfig", "cut_frames_of", "cuts_record", "detect_cuts"]

METHOD = ("frame t starts a shot when the mean absolute grey-level difference to frame t-1 (whole frame, "
          "downscaled) is >= ratio x the median of the window frames on each side, >= min_difference grey "
          "levels, and the largest within min_shot frames")


@dataclass(frozen=True)
class CutConfig:
    """Thresholds of :func:`detect_cuts` (frames and grey levels 0-255 per pixel)."""

    window: int = 15
    ratio: float = 4.0
    min_difference: float = 8.0
    min_shot: int = 5

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_shot < 1 or self.ratio <= 1 or self.min_difference < 0:
            raise ValueError(f"CutConfig needs window >= 1, min_shot >= 1, ratio > 1, min_difference >= 0: {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _local_median(d: np.ndarray, w: int) -> np.ndarray:
    """(N,) median of the finite values among the ``w`` frames before and the ``w`` after each
    frame (the frame itself left out); NaN where there are none."""
    n = len(d)
    padded = np.concatenate([np.full(w, np.nan), d, np.full(w, np.nan)])
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1)       # (N, 2w+1)
    around = np.delete(view, w, axis=1)
    out = np.full(n, np.nan)
    has = np.isfinite(around).any(axis=1)
    if has.any():
        out[has] = np.nanmedian(around[has], axis=1)
    return out


def detect_cuts(difference: np.ndarray, config: CutConfig | None = None) -> list[int]:
    """Frames that start a new shot, ascending.

    ``difference`` (N,): mean absolute grey-level difference between frame t and t-1 (0-255
    per pixel), NaN where not measured (frame 0, frames not decoded).
    """
    cfg = config or CutConfig()
    d = np.asarray(difference, np.float64).reshape(-1)
    if len(d) < 2:
        return []
    med = _local_median(d, cfg.window)
    finite = np.isfinite(d)
    level = np.where(np.isfinite(med), med, 0.0)
    spike = finite & (d >= cfg.min_difference) & (d >= cfg.ratio * level)
    cuts: list[int] = []
    for t in np.flatnonzero(spike):
        lo, hi = max(0, t - cfg.min_shot), min(len(d), t + cfg.min_shot + 1)
        neighbourhood = np.where(np.isfinite(d[lo:hi]), d[lo:hi], -np.inf)
        if d[t] >= neighbourhood.max() and (not cuts or t - cuts[-1] > cfg.min_shot):
            cuts.append(int(t))
    return cuts


def cuts_record(difference: np.ndarray, timestamps: Sequence[float], config: CutConfig | None = None,
                ) -> dict[str, Any]:
    """The skeleton file's ``meta["shot_cuts"]``: the cuts as frames and times (s, the decoded
    frames' timestamps), each cut's difference and local median (grey levels), and how."""
    cfg = config or CutConfig()
    d = np.asarray(difference, np.float64).reshape(-1)
    frames = detect_cuts(d, cfg)
    med = _local_median(d, cfg.window)
    ts = np.asarray(timestamps, np.float64)
    return {"method": METHOD, "config": cfg.to_dict(), "frames": frames,
            "times_s": [round(float(ts[f]), 4) if f < len(ts) else None for f in frames],
            "difference": [round(float(d[f]), 3) for f in frames],
            "local_median": [round(float(med[f]), 3) if np.isfinite(med[f]) else None for f in frames],
            "median_difference": round(float(np.nanmedian(d)), 3) if np.isfinite(d).any() else None}


def cut_frames_of(meta: Mapping[str, Any]) -> list[int] | None:
    """The cut frames recorded in a skeleton's ``meta`` (None where cuts were not measured:
    no pixels decoded, or a file made before cuts were detected)."""
    rec = meta.get("shot_cuts")
    if not isinstance(rec, Mapping) or not isinstance(rec.get("frames"), list):
        return None
    return [int(f) for f in rec["frames"]]
