"""Post-processing of a subject's 44-joint track as small composable steps.

Every step takes arrays ``keypoints`` (N, V, 2) float32 pixels (NaN where MISSING),
``scores`` (N, V) float32 and ``flags`` (N, V) uint8 (bits of :mod:`pose.keypoint_tables`)
and returns new arrays; the docstring of each says what it reads and what it writes.
:func:`postprocess` runs the default chain and returns the parameters it used, for the
skeleton file's metadata.

1. :func:`drop_low_confidence`: joints scored below ``min_score`` become MISSING.
2. :func:`fill_gaps`: runs of MISSING frames no longer than ``max_gap`` frames are
   interpolated (FILLED); longer runs stay MISSING (marked, not invented).
3. :func:`smooth`: temporal smoothing of present joints, confidence-weighted Savitzky–Golay
   (zero lag, the default) or a One Euro filter (causal), never across a MISSING run.

Default smoothing, chosen by measurement on the three MA-52 sample clips (numbers in
docs/skeleton-file.md; re-run with ``python benchmarks/bench_pose.py --smoothing``):
confidence-weighted Savitzky–Golay, quadratic, 0.3 s window (9 frames at 30 fps), with
MediaPipe's own landmark filter turned off. It halves the jitter of still joints while the
nod keeps its amplitude, with no lag.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .keypoint_tables import ESTIMATED, FILLED, MISSING

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class GapConfig:
    """Missing-data handling.

    Attributes:
        min_score: joints scored below this are treated as absent (MISSING) before filling.
        max_gap_s: longest gap (seconds) that is interpolated; longer gaps stay MISSING.
        fill_score_factor: a filled joint's score is this times the smaller of the scores at
            the two ends of the gap.
        hold_edges: also fill gaps at the start or end of the video, no longer than
            ``max_gap_s``, by holding the nearest value.
    """

    min_score: float = 0.05
    max_gap_s: float = 0.25
    fill_score_factor: float = 0.5
    hold_edges: bool = True

    def max_gap_frames(self, fps: float) -> int:
        return max(0, int(round(self.max_gap_s * fps)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SMOOTHING_METHODS = ("savgol", "one_euro", "none")


@dataclass(frozen=True)
class SmoothingConfig:
    """Temporal smoothing.

    Attributes:
        method: ``"savgol"`` (confidence-weighted Savitzky–Golay: a local polynomial fit,
            zero lag), ``"one_euro"`` (One Euro filter, causal, lags) or ``"none"``.
        window_s: Savitzky–Golay window length in seconds (rounded to an odd frame count).
        polyorder: Savitzky–Golay polynomial order.
        confidence_weighted: weight each frame by its score in the fit (Savitzky–Golay) or
            scale the filter's step by it (One Euro), so uncertain points move the track less.
        min_cutoff, beta, d_cutoff: One Euro parameters (Hz, s/px, Hz).
    """

    method: str = "savgol"
    window_s: float = 0.3
    polyorder: int = 2
    confidence_weighted: bool = True
    min_cutoff: float = 0.5
    beta: float = 0.2
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in SMOOTHING_METHODS:
            raise ValueError(f"smoothing method must be one of {', '.join(SMOOTHING_METHODS)}, got "
                             f"{self.method!r}")
        if self.method == "savgol" and (self.window_s <= 0 or self.polyorder < 0):
            raise ValueError("savgol needs window_s > 0 and polyorder >= 0")

    def window_frames(self, fps: float) -> int:
        w = max(1, int(round(self.window_s * fps)))
        return w if w % 2 else w + 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.method == "savgol":
            for k in ("min_cutoff", "beta", "d_cutoff"):
                d.pop(k)
        elif self.method == "one_euro":
            for k in ("window_s", "polyorder"):
                d.pop(k)
        else:
            d = {"method": "none"}
        return d

    @classmethod
    def from_any(cls, value: SmoothingConfig | dict | str | None) -> SmoothingConfig:
        """Accept a config, a dict of its fields, a method name, or None (no smoothing)."""
        if value is None or value is False:
            return cls(method="none")
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls() if value == "default" else cls(method=value)
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"smoothing must be a SmoothingConfig, dict, method name or None, "
                        f"got {type(value).__name__}")


def _check(keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray) -> None:
    n, v = scores.shape
    if keypoints.shape != (n, v, 2) or flags.shape != (n, v):
        raise ValueError(f"expected keypoints (N, V, 2), scores (N, V), flags (N, V); got "
                         f"{keypoints.shape}, {scores.shape}, {flags.shape}")


def drop_low_confidence(keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray,
                        min_score: float) -> Arrays:
    """Mark joints whose score is below ``min_score`` as MISSING.

    Reads: scores, flags. Writes: for those joints keypoints = NaN, score = 0, flags = MISSING
    (other bits cleared). Joints without a finite position are made MISSING too.
    """
    _check(keypoints, scores, flags)
    drop = (scores < min_score) | ~np.isfinite(keypoints).all(-1) | (flags & MISSING).astype(bool)
    kp = np.where(drop[..., None], np.nan, keypoints).astype(np.float32)
    sc = np.where(drop, 0.0, scores).astype(np.float32)
    fl = np.where(drop, MISSING, flags).astype(np.uint8)
    return kp, sc, fl


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[start, stop)`` runs where the 1-D boolean ``mask`` is True."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def fill_gaps(keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray, max_gap: int,
              fill_score_factor: float = 0.5, hold_edges: bool = True) -> Arrays:
    """Interpolate short gaps of each joint; leave long ones MISSING.

    A gap is a run of frames where a joint is MISSING. Runs of at most ``max_gap`` frames
    between two present frames are filled linearly in time (frame index); with
    ``hold_edges``, such short runs at the start or end of the video take the nearest present
    value. Longer runs, and joints never present, are left as they are.

    Reads: keypoints, scores, flags (MISSING bit). Writes, for the filled joints: keypoints,
    score = ``fill_score_factor * min(score at both ends)``, flags = FILLED (plus ESTIMATED
    when an end was estimated).
    """
    _check(keypoints, scores, flags)
    kp, sc, fl = keypoints.copy(), scores.copy(), flags.copy()
    n, v = sc.shape
    if max_gap <= 0 or n == 0:
        return kp, sc, fl
    missing = (fl & MISSING).astype(bool)
    for j in np.flatnonzero(missing.any(0) & ~missing.all(0)):
        for a, b in _runs(missing[:, j]):
            if b - a > max_gap:
                continue
            left, right = a - 1, b  # present neighbours (if inside the video)
            if left >= 0 and right < n:
                t = (np.arange(a, b) - left) / (right - left)
                kp[a:b, j] = (1 - t)[:, None] * kp[left, j] + t[:, None] * kp[right, j]
                ends = (left, right)
            elif hold_edges and (left >= 0 or right < n):
                src = left if left >= 0 else right
                kp[a:b, j] = kp[src, j]
                ends = (src,)
            else:
                continue
            sc[a:b, j] = fill_score_factor * min(sc[e, j] for e in ends)
            est = any(fl[e, j] & ESTIMATED for e in ends)
            fl[a:b, j] = FILLED | (ESTIMATED if est else 0)
    return kp, sc, fl


def correlate_zero_padded(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Correlate each column of ``x`` (N, ...) with the centred odd-length ``weights`` along
    axis 0, zeros beyond the ends: ``out[i] = Σ_k weights[k] · x[i + k − h]``."""
    h = len(weights) // 2
    padded = np.pad(x, [(h, h)] + [(0, 0)] * (x.ndim - 1))
    out = np.zeros(x.shape, np.result_type(x, weights, np.float64))
    for k, wk in enumerate(weights):
        out += wk * padded[k:k + x.shape[0]]
    return out


def _local_poly_fit(y: np.ndarray, w: np.ndarray, half: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares polynomial fit around every sample, evaluated at the sample.

    y, w: (N, M) columns (weights 0 where a sample is absent). Returns the fitted values and a
    mask of where the fit was possible (at least ``order + 1`` weighted samples in the window).
    """
    u = np.arange(-half, half + 1, dtype=np.float64)
    yw = np.where(w > 0, y, 0.0) * w
    s = np.stack([correlate_zero_padded(w, u ** k) for k in range(2 * order + 1)], -1)
    t = np.stack([correlate_zero_padded(yw, u ** k) for k in range(order + 1)], -1)
    count = correlate_zero_padded((w > 0).astype(np.float64), np.ones_like(u))
    idx = np.add.outer(np.arange(order + 1), np.arange(order + 1))
    mat = s[..., idx]  # (N, M, p+1, p+1) Hankel matrices of weighted moments
    ok = (count >= order + 1) & (w > 0)
    out = y.copy()
    if ok.any():
        m, r = mat[ok], t[ok]
        # Scale the normal equations (columns by h^k) for conditioning.
        scale = float(max(half, 1)) ** np.arange(order + 1)
        m = m / np.outer(scale, scale)
        r = r / scale
        try:
            c = np.linalg.solve(m, r[..., None])[..., 0]
            out[ok] = c[:, 0]
        except np.linalg.LinAlgError:
            good = np.abs(np.linalg.det(m)) > 1e-12
            c = np.linalg.solve(m[good], r[good][..., None])[..., 0]
            flat = out[ok]
            flat[good] = c[:, 0]
            out[ok] = flat
    return out, ok


def savgol_smooth(keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray, window: int,
                  polyorder: int = 2, confidence_weighted: bool = True) -> np.ndarray:
    """Confidence-weighted Savitzky–Golay smoothing of each joint coordinate.

    Each present sample is replaced by the value at its own time of a polynomial of degree
    ``polyorder`` fitted by weighted least squares to the samples within ``window`` frames
    (odd) centred on it; the weights are the scores (or 1) and MISSING samples weigh 0, so
    the fit neither crosses nor invents gaps, and the window shrinks at edges. With equal
    weights this is exactly the Savitzky–Golay filter: zero lag, polynomial motion of that
    degree passes unchanged.

    Reads: keypoints, scores, flags (MISSING). Writes: keypoints of present joints.
    """
    _check(keypoints, scores, flags)
    n, v = scores.shape
    half = window // 2
    if n == 0 or half == 0:
        return keypoints.copy()
    present = ~(flags & MISSING).astype(bool) & np.isfinite(keypoints).all(-1)
    w = np.where(present, np.maximum(scores, 1e-3) if confidence_weighted else 1.0, 0.0)
    y = keypoints.reshape(n, v * 2).astype(np.float64)
    ww = np.repeat(w, 2, axis=1)
    out, _ = _local_poly_fit(np.nan_to_num(y), ww, half, polyorder)
    out = np.where(ww > 0, out, y)
    return out.reshape(n, v, 2).astype(np.float32)


def one_euro_smooth(keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray,
                    timestamps: np.ndarray, min_cutoff: float = 0.5, beta: float = 0.2,
                    d_cutoff: float = 1.0, confidence_weighted: bool = True) -> np.ndarray:
    """One Euro filter (Casiez et al., CHI 2012) run forward in time on each joint coordinate.

    The cutoff frequency is ``min_cutoff + beta * |speed|`` (Hz, speed in px/s): still joints
    are smoothed hard, fast ones follow quickly. With ``confidence_weighted`` the smoothing
    factor is multiplied by the sample's score. The filter restarts after a MISSING run.
    Causal, so it lags (measured in docs/skeleton-file.md).

    Reads: keypoints, scores, flags (MISSING), timestamps. Writes: keypoints of present joints.
    """
    _check(keypoints, scores, flags)
    n, v = scores.shape
    out = keypoints.astype(np.float64).copy()
    present = ~(flags & MISSING).astype(bool) & np.isfinite(keypoints).all(-1)
    x_prev = np.zeros((v, 2))
    dx_prev = np.zeros((v, 2))
    live = np.zeros(v, dtype=bool)

    def alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / dt)

    t_prev = None
    for i in range(n):
        dt = (timestamps[i] - t_prev) if t_prev is not None else 0.0
        dt = dt if dt > 0 else 1.0 / 30
        t_prev = timestamps[i]
        p = present[i]
        x = out[i]
        start = p & ~live
        x_prev[start], dx_prev[start] = x[start], 0.0
        cont = p & live
        if cont.any():
            dx = (x[cont] - x_prev[cont]) / dt
            dx_hat = dx_prev[cont] + alpha(d_cutoff, dt) * (dx - dx_prev[cont])
            cutoff = min_cutoff + beta * np.abs(dx_hat)
            a = alpha(cutoff, dt)
            if confidence_weighted:
                a = a * np.clip(scores[i, cont], 0.0, 1.0)[:, None]
            x_hat = x_prev[cont] + a * (x[cont] - x_prev[cont])
            out[i, cont] = x_hat
            x_prev[cont], dx_prev[cont] = x_hat, dx_hat
        live = p
    return out.astype(np.float32)


def smooth(keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray, timestamps: np.ndarray,
           config: SmoothingConfig, fps: float) -> np.ndarray:
    """Apply ``config`` (see :class:`SmoothingConfig`). Reads and writes as the chosen method."""
    if config.method == "none":
        return keypoints.copy()
    if config.method == "savgol":
        return savgol_smooth(keypoints, scores, flags, config.window_frames(fps), config.polyorder,
                             config.confidence_weighted)
    return one_euro_smooth(keypoints, scores, flags, timestamps, config.min_cutoff, config.beta,
                           config.d_cutoff, config.confidence_weighted)


def postprocess(keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray,
                timestamps: np.ndarray, fps: float, gap: GapConfig | None = None,
                smoothing: SmoothingConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The default chain: drop low confidence → fill short gaps → smooth.

    Returns keypoints, scores, flags and a dict of the parameters used (for metadata).
    """
    gap = gap or GapConfig()
    smoothing = smoothing or SmoothingConfig()
    kp, sc, fl = drop_low_confidence(keypoints, scores, flags, gap.min_score)
    max_gap = gap.max_gap_frames(fps)
    kp, sc, fl = fill_gaps(kp, sc, fl, max_gap, gap.fill_score_factor, gap.hold_edges)
    kp = smooth(kp, sc, fl, timestamps, smoothing, fps)
    params = {
        "steps": ["drop_low_confidence", "fill_gaps", "smooth"],
        "gap": {**gap.to_dict(), "max_gap_frames": max_gap},
        "smoothing": {**smoothing.to_dict(),
                      **({"window_frames": smoothing.window_frames(fps)}
                         if smoothing.method == "savgol" else {})},
    }
    return kp, sc, fl, params
