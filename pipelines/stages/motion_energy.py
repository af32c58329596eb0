"""Model-free per-joint motion heat: movement above the pose estimator's noise.

Used as the heat when no MMN checkpoint is given (clips, pictures, the app, the labels JSON's
``per_part_mean`` and ``hottest_joints``, ``summary.csv``) and summed for the timeline curve.
Three steps (measurements behind each in docs/motion-heat.md):

1. :func:`displacement`: how far each joint travels over a short horizon,
   ``|x(t+h) − x(t−h)|`` with h = 1/15 s. Jitter reverses direction frame to frame, so it
   adds up in a sum of speeds but not in a net displacement.
2. :func:`step_noise`: each joint's noise level σ, the median size of the third difference
   of its (smoothed) track per 10-s block, measured h frames apart (the displacement's step);
   only ``max(0, D − 2σ)`` counts. A quadratic smoother leaves little third difference of a
   real movement: what remains is noise. A joint outside the frame (when its size is given)
   moves by 0: the pose model places joints it cannot see there (:func:`in_frame`).
3. :func:`corroborate`: a joint's movement counts only as far as a joint one bone away also
   moved. Bones are rigid: a joint moving alone while its neighbours stay put stretches all
   its bones, the signature of an estimator error (the fingertips of clasped hands that the
   hand model lets wander, a knee on a foreshortened thigh), not of a movement.

Units: torso lengths (neck to hip centre, the subject's median) per second.
"""
from __future__ import annotations

import warnings

import numpy as np

from core.layouts import MA52_44, SkeletonLayout
from pose.keypoint_tables import FILLED, MISSING

__all__ = ["DEFAULT_NOISE", "HORIZON_S", "NOISE_FLOORS", "NOISE_K", "NOISE_WINDOW_S", "body_scale", "coherent_noise",
           "corroborate", "displacement", "in_frame", "joint_noise", "motion_energy", "normalise_heat", "step_noise"]

HORIZON_S = 1 / 15      # h: half the displacement span (2 frames at 30 fps)
NOISE_K = 2.0           # the floor, in units of each joint's noise level σ
NOISE_WINDOW_S = 10.0   # σ is measured per block of this many seconds
NOISE_FLOORS = ("joint", "step", "coherent")  # how σ is measured: joint_noise, step_noise, coherent_noise
DEFAULT_NOISE = "step"


def body_scale(keypoints: np.ndarray, layout: SkeletonLayout = MA52_44) -> float:
    """Median torso length in pixels (neck to hip centre; else the median vertical extent of
    the skeleton). ``keypoints`` (N, V, 2) with NaN where missing."""
    names = layout.joint_names
    if "neck" in names and "hip_centre" in names:
        d = keypoints[:, names.index("neck")] - keypoints[:, names.index("hip_centre")]
        lengths = np.linalg.norm(d, axis=-1)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lengths = np.nanmax(keypoints[..., 1], axis=1) - np.nanmin(keypoints[..., 1], axis=1)
    lengths = lengths[np.isfinite(lengths) & (lengths > 0)]
    return float(np.median(lengths)) if lengths.size else 1.0


def displacement(keypoints: np.ndarray, h: int) -> np.ndarray:
    """(N, V, 2) px → (N, V) float64 px: ``|x(t+h) − x(t−h)|``. Near the ends the span is cut
    to the frames there are and scaled up to 2h; 0 where a joint is missing at either end."""
    kp = np.asarray(keypoints, np.float64)
    n = kp.shape[0]
    if n < 2:
        return np.zeros(kp.shape[:2])
    t = np.arange(n)
    a, b = np.clip(t - h, 0, n - 1), np.clip(t + h, 0, n - 1)
    d = np.linalg.norm(kp[b] - kp[a], axis=-1) * (2 * h / np.maximum(b - a, 1))[:, None]
    return np.nan_to_num(d, nan=0.0)


def joint_noise(keypoints: np.ndarray, flags: np.ndarray | None = None, fps: float = 30.0,
                window_s: float | None = NOISE_WINDOW_S) -> np.ndarray:
    """Per-joint noise level σ, (N, V) float64 px: the median of ``|Δ³x|`` (2-D norm) of each
    joint's track in blocks of ``window_s`` seconds, interpolated between block centres.

    The median is a robust scale: a movement shorter than half a block barely moves it, where
    a root mean square would let a fast real movement raise its own floor. Samples touching a
    MISSING or FILLED frame are left out; a joint with none left gets the median σ of the
    others."""
    kp = np.asarray(keypoints, np.float64)
    n, v = kp.shape[:2]
    if n < 4:
        return np.zeros((n, v))
    d3 = np.linalg.norm(np.diff(kp, 3, axis=0), axis=-1)  # (N-3, V): sample k spans frames k..k+3
    if flags is not None:
        bad = (np.asarray(flags) & (MISSING | FILLED)).astype(bool)
        d3[bad[:-3] | bad[1:-2] | bad[2:-1] | bad[3:]] = np.nan
    m = n - 3
    w = m if window_s is None else max(8, int(round(window_s * fps)))
    nb = max(1, int(round(m / w)))
    edges = np.linspace(0, m, nb + 1).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        blocks = np.stack([np.nanmedian(d3[a:b], axis=0) for a, b in zip(edges[:-1], edges[1:])])
        if not np.isfinite(blocks).all():
            blocks = np.where(np.isfinite(blocks), blocks, np.nanmedian(blocks, axis=0, keepdims=True))
            blocks = np.where(np.isfinite(blocks), blocks, np.nan_to_num(np.nanmedian(blocks), nan=0.0))
    if nb == 1:
        return np.broadcast_to(blocks[0], (n, v)).copy()
    centres = (edges[:-1] + edges[1:]) / 2 + 1.5
    t = np.arange(n)
    return np.stack([np.interp(t, centres, blocks[:, j]) for j in range(v)], axis=1)


def step_noise(keypoints: np.ndarray, flags: np.ndarray | None = None, fps: float = 30.0, step: int = 1,
               window_s: float | None = NOISE_WINDOW_S) -> np.ndarray:
    """:func:`joint_noise` measured on the track sampled every ``step`` frames (each of the
    ``step`` phases on its own; frame t gets its phase's σ), (N, V) px.

    With ``step`` = h, the noise is measured at the time step of the displacement
    ``|x(t+h) − x(t−h)|`` it is subtracted from. One frame apart, the smoother (and, when the
    pose was estimated every other frame, the interpolation between estimates) makes
    neighbouring samples share their error, so the third difference sees less of the noise
    that reaches the displacement."""
    kp = np.asarray(keypoints, np.float64)
    step = max(1, int(step))
    if step == 1:
        return joint_noise(kp, flags, fps, window_s)
    out = np.zeros(kp.shape[:2])
    for phase in range(min(step, kp.shape[0])):
        out[phase::step] = joint_noise(kp[phase::step], None if flags is None else np.asarray(flags)[phase::step],
                                       fps / step, window_s)
    return out


def coherent_noise(keypoints: np.ndarray, flags: np.ndarray | None = None, fps: float = 30.0,
                   layout: SkeletonLayout = MA52_44, window_s: float | None = NOISE_WINDOW_S) -> np.ndarray:
    """Per-joint noise level σ that a movement of the whole body part does not raise, (N, V) px.

    The smaller of :func:`joint_noise` of the joint's own track and of its track relative to
    the rest of its part (``layout.parts``; per frame, the median of the part's other joints).
    Estimator noise is independent from joint to joint, so it stays in the relative track; a
    fast movement that the part's joints share (a head shake moves every face point together)
    cancels there. On a clip shorter than a noise block such a movement fills most of the block
    and would otherwise become its own floor. Leaving the joint out of its reference keeps
    joints derived from it (a hand root that is the wrist) from cancelling its noise. Joints
    in no part, or alone in theirs, keep their own σ."""
    kp = np.asarray(keypoints, np.float64)
    own = joint_noise(kp, flags, fps, window_s)
    if kp.shape[0] < 4:
        return own
    rel = kp.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames where the other joints are all missing
        for _, joints in layout.parts:
            for j in joints:
                others = [k for k in joints if k != j]
                if others:
                    rel[:, j] -= np.nan_to_num(np.nanmedian(kp[:, others], axis=1))
    return np.minimum(own, joint_noise(rel, flags, fps, window_s))


def in_frame(keypoints: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(N, V, 2) px → (N, V) bool: the joint is present and inside the ``(width, height)``
    frame. A pose model places joints it cannot see (legs below a close-up) outside the
    frame; they move with its guesses, not with the person."""
    kp = np.asarray(keypoints, np.float64)
    w, h = frame_size
    with np.errstate(invalid="ignore"):
        return (kp[..., 0] >= 0) & (kp[..., 0] < w) & (kp[..., 1] >= 0) & (kp[..., 1] < h)


def _neighbours(layout: SkeletonLayout) -> list[list[int]]:
    nb: list[set[int]] = [set() for _ in range(layout.num_joints)]
    for a, b in layout.bones:
        nb[a].add(b)
        nb[b].add(a)
    return [sorted(s) for s in nb]


def corroborate(energy: np.ndarray, layout: SkeletonLayout = MA52_44) -> np.ndarray:
    """(N, V) → (N, V): ``min(E_j, max over the joints one bone away of E_i)`` per frame (a
    joint without bones keeps its value)."""
    e = np.asarray(energy, np.float64)
    out = e.copy()
    for j, ks in enumerate(_neighbours(layout)):
        if ks:
            out[:, j] = np.minimum(e[:, j], e[:, ks].max(axis=1))
    return out


def motion_energy(keypoints: np.ndarray, layout: SkeletonLayout = MA52_44, fps: float = 30.0,
                  flags: np.ndarray | None = None, *, noise: str = DEFAULT_NOISE,
                  frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """Per-joint movement above the estimator's noise, corroborated along the bones.

    ``keypoints`` (N, V, 2) px, NaN where missing (the stored, smoothed skeleton); ``flags``
    (N, V) the skeleton's flags (FILLED/MISSING samples stay out of the noise estimate);
    ``noise``: how σ is measured, ``"joint"`` (:func:`joint_noise`, one frame apart),
    ``"step"`` (:func:`step_noise`, h frames apart) or ``"coherent"`` (:func:`coherent_noise`);
    ``frame_size`` ``(width, height)``: when given, a joint outside the frame at either end of
    the span moves by 0 (:func:`in_frame`).
    Returns (N, V) float32 ≥ 0 in torso lengths per second."""
    if noise not in NOISE_FLOORS:
        raise ValueError(f"noise floor must be one of {NOISE_FLOORS}, got {noise!r}")
    kp = np.asarray(keypoints, np.float64)
    n = kp.shape[0]
    if n < 2:
        return np.zeros(kp.shape[:2], np.float32)
    h = max(1, int(round(HORIZON_S * fps)))
    moved = displacement(kp, h)
    if frame_size is not None:
        seen, t = in_frame(kp, frame_size), np.arange(n)
        moved = np.where(seen[np.clip(t - h, 0, n - 1)] & seen[np.clip(t + h, 0, n - 1)], moved, 0.0)
    sigma = (joint_noise(kp, flags, fps) if noise == "joint" else step_noise(kp, flags, fps, h) if noise == "step"
             else coherent_noise(kp, flags, fps, layout))
    above_noise = np.maximum(0.0, moved - NOISE_K * sigma)
    scale = body_scale(kp, layout) * (2 * h / fps)  # px per (torso length per second)
    return (corroborate(above_noise, layout) / scale).astype(np.float32)


def normalise_heat(heat: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Scale a heat array to [0, 1] by its ``percentile`` (robust to a few outliers)."""
    h = np.nan_to_num(np.asarray(heat, np.float32))
    top = float(np.percentile(h, percentile)) if h.size else 0.0
    lo = float(h.min()) if h.size else 0.0
    if top - lo <= 1e-12:
        return np.zeros_like(h)
    return np.clip((h - lo) / (top - lo), 0.0, 1.0)
