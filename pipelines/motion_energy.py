"""Model-free per-joint motion energy: how much each joint moves, frame by frame.

Used as the heatmap when no MMN checkpoint is given, and drawn as the timeline curve. Speeds
are divided by the subject's torso length so that the numbers do not depend on how large
the person appears in the frame.
"""
from __future__ import annotations

import numpy as np

from core.layouts import MA52_44, SkeletonLayout


def body_scale(keypoints: np.ndarray, layout: SkeletonLayout = MA52_44) -> float:
    """Median torso length in pixels (neck to hip centre for MA-52; else the median extent of
    the skeleton). ``keypoints`` (N, V, 2) with NaN where missing."""
    names = layout.joint_names
    if "neck" in names and "hip_centre" in names:
        d = keypoints[:, names.index("neck")] - keypoints[:, names.index("hip_centre")]
        lengths = np.linalg.norm(d, axis=-1)
    else:
        lengths = np.nanmax(keypoints[..., 1], axis=1) - np.nanmin(keypoints[..., 1], axis=1)
    lengths = lengths[np.isfinite(lengths) & (lengths > 0)]
    return float(np.median(lengths)) if lengths.size else 1.0


def joint_speed(keypoints: np.ndarray, layout: SkeletonLayout = MA52_44) -> np.ndarray:
    """(N, V, 2) pixels → (N, V) float32 speed in torso lengths per frame (central
    differences; 0 where a joint or its neighbour frame is missing)."""
    kp = np.asarray(keypoints, np.float64)
    n = kp.shape[0]
    if n < 2:
        return np.zeros(kp.shape[:2], np.float32)
    vel = np.gradient(kp, axis=0)
    speed = np.linalg.norm(vel, axis=-1) / body_scale(kp, layout)
    return np.nan_to_num(speed, nan=0.0).astype(np.float32)


def motion_energy(keypoints: np.ndarray, layout: SkeletonLayout = MA52_44, smooth_frames: int = 5) -> np.ndarray:
    """(N, V) float32 per-joint motion energy: speed averaged over a centred
    ``smooth_frames`` window (a short box filter, so a twitch of one frame stays visible)."""
    speed = joint_speed(keypoints, layout)
    if smooth_frames <= 1 or speed.shape[0] < 2:
        return speed
    k = np.ones(smooth_frames) / smooth_frames
    padded = np.pad(speed, ((smooth_frames // 2, smooth_frames - 1 - smooth_frames // 2), (0, 0)), mode="edge")
    columns = [np.convolve(padded[:, j], k, mode="valid") for j in range(speed.shape[1])]
    return np.stack(columns, axis=1).astype(np.float32)


def normalise_heat(heat: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Scale a heat array to [0, 1] by its ``percentile`` (robust to a few outliers)."""
    h = np.nan_to_num(np.asarray(heat, np.float32))
    top = float(np.percentile(h, percentile)) if h.size else 0.0
    lo = float(h.min()) if h.size else 0.0
    if top - lo <= 1e-12:
        return np.zeros_like(h)
    return np.clip((h - lo) / (top - lo), 0.0, 1.0)
