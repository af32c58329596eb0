"""Post-processing of a subject's 44-joint track as small composable steps.

Every step takes arrays ``keypoints`` (N, V, 2) float32 pixels (NaN where MISSING),
``scores`` (N, V) float32 and ``flags`` (N, V) uint8 (bits of :mod:`pose.keypoint_tables`)
and returns new arrays; the docstring of each says what it reads and what it writes.
:class:`StreamPostprocessor` runs the default chain on a stream, frame by frame with a bounded
look-ahead (the gap-filling limit plus the smoothing half-window: 12 frames, 0.4 s, at 30 fps
with the defaults); :func:`postprocess` runs it on a whole track in one block, so a file and a
live stream get the same output from the same code. It returns the parameters it used, for
the skeleton file's metadata.

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

__all__ = [
    "GapConfig", "SmoothingConfig", "SMOOTHING_METHODS", "drop_low_confidence", "fill_gaps",
    "correlate_zero_padded", "savgol_smooth", "OneEuroFilter", "one_euro_smooth", "smooth",
    "TrackBlock", "StreamPostprocessor", "postprocess",
]

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
              fill_score_factor: float = 0.5, hold_edges: bool = True, *,
              lead_edge: bool = True, tail_edge: bool = True) -> Arrays:
    """Interpolate short gaps of each joint; leave long ones MISSING.

    A gap is a run of frames where a joint is MISSING. Runs of at most ``max_gap`` frames
    between two present frames are filled linearly in time (frame index); with
    ``hold_edges``, such short runs at the start or end of the video take the nearest present
    value. Longer runs, and joints never present, are left as they are.

    ``lead_edge`` / ``tail_edge`` say whether the arrays' first / last frame is the start / end
    of the track (the default) or a cut through a longer track (a slab of a stream): a run
    touching a cut is left as it is, since its length is unknown there. For the frames at least
    ``max_gap`` frames away from every cut, the result is then that of the whole track.

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
            if b - a > max_gap or (a == 0 and not lead_edge) or (b == n and not tail_edge):
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
    padded = np.zeros((x.shape[0] + 2 * h,) + x.shape[1:], x.dtype)
    padded[h:h + x.shape[0]] = x
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


class OneEuroFilter:
    """The One Euro filter's state for ``num_joints`` joints, carried from one block of frames
    to the next, so that a track filtered in pieces equals the track filtered whole.

    See :func:`one_euro_smooth` for the filter; :meth:`run` filters the next frames.
    """

    def __init__(self, num_joints: int, min_cutoff: float = 0.5, beta: float = 0.2,
                 d_cutoff: float = 1.0, confidence_weighted: bool = True) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.confidence_weighted = confidence_weighted
        self.x_prev = np.zeros((num_joints, 2))
        self.dx_prev = np.zeros((num_joints, 2))
        self.live = np.zeros(num_joints, dtype=bool)
        self.t_prev: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / dt)

    def run(self, keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray,
            timestamps: np.ndarray) -> np.ndarray:
        """Filter the next frames: keypoints (n, V, 2) px, scores and flags (n, V), timestamps
        (n,) s. Returns the filtered keypoints (n, V, 2) float32."""
        _check(keypoints, scores, flags)
        out = keypoints.astype(np.float64).copy()
        present = ~(flags & MISSING).astype(bool) & np.isfinite(keypoints).all(-1)
        x_prev, dx_prev = self.x_prev, self.dx_prev
        for i in range(len(scores)):
            dt = (timestamps[i] - self.t_prev) if self.t_prev is not None else 0.0
            dt = dt if dt > 0 else 1.0 / 30
            self.t_prev = timestamps[i]
            p = present[i]
            x = out[i]
            start = p & ~self.live
            x_prev[start], dx_prev[start] = x[start], 0.0
            cont = p & self.live
            if cont.any():
                dx = (x[cont] - x_prev[cont]) / dt
                dx_hat = dx_prev[cont] + self._alpha(self.d_cutoff, dt) * (dx - dx_prev[cont])
                cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
                a = self._alpha(cutoff, dt)
                if self.confidence_weighted:
                    a = a * np.clip(scores[i, cont], 0.0, 1.0)[:, None]
                x_hat = x_prev[cont] + a * (x[cont] - x_prev[cont])
                out[i, cont] = x_hat
                x_prev[cont], dx_prev[cont] = x_hat, dx_hat
            self.live = p
        return out.astype(np.float32)


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
    return OneEuroFilter(scores.shape[1], min_cutoff, beta, d_cutoff, confidence_weighted).run(
        keypoints, scores, flags, timestamps)


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


@dataclass(frozen=True)
class TrackBlock:
    """Consecutive post-processed frames ``start`` … ``stop - 1`` of a track (in push order).

    Attributes:
        start: index of the first frame (0 for the first frame pushed).
        keypoints: (k, V, 2) float32 pixels, NaN where MISSING.
        scores: (k, V) float32.
        flags: (k, V) uint8 bits of :mod:`pose.keypoint_tables`.
        timestamps: (k,) float64 seconds, as pushed.
    """

    start: int
    keypoints: np.ndarray
    scores: np.ndarray
    flags: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def stop(self) -> int:
        return self.start + len(self)

    @classmethod
    def concat(cls, blocks: list[TrackBlock], num_joints: int) -> TrackBlock:
        """Join consecutive blocks (each starting where the previous one stopped)."""
        for prev, nxt in zip(blocks, blocks[1:]):
            if nxt.start != prev.stop:
                raise ValueError(f"blocks are not consecutive: {prev.stop} then {nxt.start}")
        if not blocks:
            return _empty_block(0, num_joints)
        return cls(blocks[0].start, *(np.concatenate([getattr(b, f) for b in blocks])
                                      for f in ("keypoints", "scores", "flags", "timestamps")))


def _empty_block(start: int, v: int) -> TrackBlock:
    return TrackBlock(start, np.zeros((0, v, 2), np.float32), np.zeros((0, v), np.float32),
                      np.zeros((0, v), np.uint8), np.zeros(0, np.float64))


class _Frames:
    """Frames ``start`` … ``stop - 1`` of a track held as arrays (a sliding buffer)."""

    def __init__(self, v: int) -> None:
        block = _empty_block(0, v)
        self.start = 0
        self.arrays = [block.keypoints, block.scores, block.flags, block.timestamps]

    @property
    def stop(self) -> int:
        return self.start + len(self.arrays[3])

    def append(self, arrays: list[np.ndarray]) -> None:
        if len(arrays[3]):
            self.arrays = [np.concatenate([old, new]) for old, new in zip(self.arrays, arrays)]

    def get(self, a: int, b: int) -> list[np.ndarray]:
        if a < self.start or b > self.stop:
            raise AssertionError(f"frames {a}..{b} requested, {self.start}..{self.stop} held")
        return [x[a - self.start:b - self.start] for x in self.arrays]

    def drop_before(self, a: int) -> None:
        if a > self.start:
            self.arrays = [x[a - self.start:].copy() for x in self.arrays]
            self.start = a


class StreamPostprocessor:
    """The post-processing chain (drop low confidence → fill short gaps → smooth) on a stream.

    Frames go in one at a time (:meth:`push`) or in blocks (:meth:`push_many`); each comes out
    once the frames it depends on have arrived, and :meth:`flush` releases the rest at the end.
    The output, block after block, is exactly that of the whole track (:func:`postprocess`
    runs the same code on a whole track in one block).

    Look-ahead (:attr:`lookahead_frames`): a frame's output waits for ``max_gap`` later frames
    (is a gap of the joint short enough to fill?) plus, for Savitzky–Golay, the half window
    (its fit looks at the frames after it). With the defaults at 30 fps: 8 + 4 = 12 frames,
    0.4 s (at 25 fps: 6 + 4 = 10 frames; One Euro and no smoothing: 8 frames at 30 fps). After
    frame ``i`` is pushed, frames up to ``i - lookahead_frames`` have been emitted. Memory is
    bounded: about ``2 * max_gap + 2 * half`` frames are held.

    Frame numbers are push order: a frame the caller never pushes (dropped upstream) is not a
    gap, the frames around it are neighbours.
    """

    def __init__(self, fps: float, gap: GapConfig | None = None, smoothing: SmoothingConfig | None = None,
                 num_joints: int = 44) -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.fps = float(fps)
        self.gap = gap or GapConfig()
        self.smoothing = smoothing or SmoothingConfig()
        self.num_joints = num_joints
        self.max_gap = self.gap.max_gap_frames(fps)
        sm = self.smoothing
        self.half = sm.window_frames(fps) // 2 if sm.method == "savgol" else 0
        self._euro = (OneEuroFilter(num_joints, sm.min_cutoff, sm.beta, sm.d_cutoff, sm.confidence_weighted)
                      if sm.method == "one_euro" else None)
        self._raw = _Frames(num_joints)      # after drop_low_confidence; gap filling not final
        self._filled = _Frames(num_joints)   # gap filling final; smoothing not final
        self._emitted = 0
        self._ended = False
        self._last_t: float | None = None

    @property
    def lookahead_frames(self) -> int:
        """Frames after a frame that must arrive before it is emitted."""
        return self.max_gap + self.half

    @property
    def lookahead_s(self) -> float:
        """:attr:`lookahead_frames` in seconds at the stream's nominal ``fps``."""
        return self.lookahead_frames / self.fps

    @property
    def pushed(self) -> int:
        """Frames pushed so far."""
        return self._raw.stop

    @property
    def held_frames(self) -> int:
        """Frames held in memory (at most ``2 * lookahead_frames``)."""
        return (self._raw.stop - self._raw.start) + (self._filled.stop - self._filled.start)

    @property
    def emitted(self) -> int:
        """Frames emitted so far."""
        return self._emitted

    def params(self) -> dict[str, Any]:
        """The parameters used, for the skeleton file's metadata."""
        sm = self.smoothing
        return {
            "steps": ["drop_low_confidence", "fill_gaps", "smooth"],
            "gap": {**self.gap.to_dict(), "max_gap_frames": self.max_gap},
            "smoothing": {**sm.to_dict(),
                          **({"window_frames": sm.window_frames(self.fps)} if sm.method == "savgol" else {})},
        }

    def push(self, keypoints: np.ndarray | None, scores: np.ndarray | None, timestamp: float, *,
             flags: np.ndarray | None = None, present: bool = True) -> TrackBlock:
        """Add one frame: keypoints (V, 2) px, scores (V,), ``timestamp`` s (increasing), flags
        (V,) uint8 (default: no bits). ``present=False`` (or keypoints None) is a frame without
        the subject: every joint MISSING. Returns the frames now final (often 0 or 1)."""
        v = self.num_joints
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite, got {timestamp}")
        if self._last_t is not None and timestamp <= self._last_t:
            raise ValueError(f"timestamps must increase: {timestamp} after {self._last_t}")
        if not present or keypoints is None:
            kp, sc, fl = np.full((1, v, 2), np.nan, np.float32), np.zeros((1, v), np.float32), None
        else:
            kp, sc = np.asarray(keypoints)[None], np.asarray(scores)[None]
            fl = None if flags is None else np.asarray(flags)[None]
        if fl is None:
            fl = np.full((1, v), 0 if present and keypoints is not None else MISSING, np.uint8)
        return self.push_many(kp, sc, fl, np.array([timestamp], np.float64))

    def push_many(self, keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray,
                  timestamps: np.ndarray) -> TrackBlock:
        """Add frames: keypoints (n, V, 2) px, scores and flags (n, V), timestamps (n,) s.
        Returns the frames now final."""
        if self._ended:
            raise RuntimeError("frames pushed after flush()")
        _check(keypoints, scores, flags)
        if scores.shape[1] != self.num_joints or len(timestamps) != len(scores):
            raise ValueError(f"expected {self.num_joints} joints and one timestamp a frame; got "
                             f"{scores.shape[1]} joints, {len(scores)} frames, {len(timestamps)} timestamps")
        kp, sc, fl = drop_low_confidence(keypoints, scores, flags, self.gap.min_score)
        self._raw.append([kp, sc, fl, np.asarray(timestamps, np.float64)])
        if len(timestamps):
            self._last_t = float(timestamps[-1])
        return self._advance()

    def flush(self) -> TrackBlock:
        """End of the track: return every frame not yet emitted."""
        self._ended = True
        return self._advance()

    def _advance(self) -> TrackBlock:
        n, end, g = self.pushed, self._ended, self.gap
        # 1. gap filling, final for frames max_gap before the newest (all of them at the end)
        lo = self._filled.stop
        hi = n if end or self.max_gap <= 0 else max(lo, n - self.max_gap)
        if hi > lo:
            s = max(0, lo - self.max_gap)
            kp, sc, fl, ts = self._raw.get(s, n)
            kp, sc, fl = fill_gaps(kp, sc, fl, self.max_gap, g.fill_score_factor, g.hold_edges,
                                   lead_edge=s == 0, tail_edge=end)
            self._filled.append([x[lo - s:hi - s] for x in (kp, sc, fl, ts)])
            self._raw.drop_before(hi - self.max_gap)
        # 2. smoothing, final for frames half a window before the newest filled one
        f_hi = self._filled.stop
        lo = self._emitted
        hi = f_hi if end else max(lo, f_hi - self.half)
        if hi <= lo:
            return _empty_block(lo, self.num_joints)
        s = max(0, lo - self.half)
        kp, sc, fl, ts = self._filled.get(s, f_hi)
        if self.smoothing.method == "savgol":
            sm = self.smoothing
            kp = savgol_smooth(kp, sc, fl, sm.window_frames(self.fps), sm.polyorder, sm.confidence_weighted)
        elif self._euro is not None:
            kp = self._euro.run(kp, sc, fl, ts)
        else:
            kp = kp.copy()
        out = TrackBlock(lo, *(x[lo - s:hi - s] for x in (kp, sc, fl, ts)))
        self._emitted = hi
        self._filled.drop_before(hi - self.half)
        return out


def postprocess(keypoints: np.ndarray, scores: np.ndarray, flags: np.ndarray,
                timestamps: np.ndarray, fps: float, gap: GapConfig | None = None,
                smoothing: SmoothingConfig | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The default chain on a whole track: drop low confidence → fill short gaps → smooth.

    Runs :class:`StreamPostprocessor` on the track as one block. Returns keypoints (N, V, 2)
    float32, scores (N, V) float32, flags (N, V) uint8 and a dict of the parameters used (for
    metadata).
    """
    _check(keypoints, scores, flags)
    stream = StreamPostprocessor(fps, gap, smoothing, num_joints=scores.shape[1])
    blocks = [stream.push_many(keypoints, scores, flags, np.asarray(timestamps, np.float64)), stream.flush()]
    out = TrackBlock.concat(blocks, scores.shape[1])
    return out.keypoints, out.scores, out.flags, stream.params()
