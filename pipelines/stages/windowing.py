"""Cut a long skeleton track into overlapping windows and merge window labels into segments.

MA-52 clips are trimmed (about 1.5–2.5 s); interviews are minutes long. A video of N frames is
covered by windows of ``window_s`` seconds every ``stride_s`` seconds; the last window is
aligned to the end of the video so that every frame lies in at least one window. Each window
is classified as one MMN clip (resampled to 64 frames by the model's own preprocessing).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["STRIDE_S", "WINDOW_S", "Segment", "Window", "WindowOptions", "make_windows", "merge_segments",
           "windows_to_frames"]

WINDOW_S = 2.0  # default window, seconds: ≈ an MA-52 clip
STRIDE_S = 0.5  # default stride, seconds


@dataclass(frozen=True)
class WindowOptions:
    """How a track is cut into windows (``--window``, ``--stride``), in seconds; the folder job,
    the dataset builder and the app share the defaults defined here."""

    window: float = WINDOW_S
    stride: float = STRIDE_S

    def __post_init__(self) -> None:
        if not self.window > 0:
            raise ValueError(f"window must be positive (seconds), got {self.window}")
        if not self.stride > 0:
            raise ValueError(f"stride must be positive (seconds), got {self.stride}")

    def cut(self, num_frames: int, fps: float) -> list[Window]:
        """:func:`make_windows` with these sizes."""
        return make_windows(num_frames, fps, self.window, self.stride)


@dataclass(frozen=True)
class Window:
    """Frames ``[start, end)`` of the video (0-based, end exclusive)."""

    index: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def seconds(self, fps: float) -> tuple[float, float]:
        return self.start / fps, self.end / fps


def make_windows(num_frames: int, fps: float, window_s: float = WINDOW_S, stride_s: float = STRIDE_S) -> list[Window]:
    """Windows covering ``num_frames`` frames at ``fps``: ``window_s`` long every ``stride_s``.

    A video shorter than one window gives one window over all of it. The last window ends at
    the last frame. Raises ``ValueError`` for non-positive sizes.
    """
    if num_frames <= 0:
        return []
    if fps <= 0 or window_s <= 0 or stride_s <= 0:
        raise ValueError(f"fps, window and stride must be positive (got {fps}, {window_s}, {stride_s})")
    size = max(1, int(round(window_s * fps)))
    step = max(1, int(round(stride_s * fps)))
    if num_frames <= size:
        return [Window(0, 0, num_frames)]
    starts = list(range(0, num_frames - size + 1, step))
    if starts[-1] + size < num_frames:
        starts.append(num_frames - size)
    return [Window(i, s, s + size) for i, s in enumerate(starts)]


@dataclass(frozen=True)
class Segment:
    """Consecutive windows that share the same top-1 class above the confidence threshold."""

    class_index: int
    start: int          # first frame
    end: int            # end frame (exclusive)
    windows: tuple[int, ...]
    mean_prob: float


def merge_segments(windows: Sequence[Window], top1: Sequence[int], top1_prob: Sequence[float],
                   threshold: float = 0.5) -> list[Segment]:
    """Merge consecutive windows with the same top-1 class whose probability ≥ ``threshold``.

    A window below the threshold breaks a segment. A segment spans from its first window's
    start to its last window's end (overlapping windows make segments overlap by design)."""
    segments: list[Segment] = []
    run: list[int] = []

    def close() -> None:
        if run:
            probs = [float(top1_prob[i]) for i in run]
            segments.append(Segment(int(top1[run[0]]), windows[run[0]].start, windows[run[-1]].end,
                                    tuple(windows[i].index for i in run), float(np.mean(probs))))
            run.clear()

    for i in range(len(windows)):
        if top1_prob[i] < threshold:
            close()
            continue
        if run and top1[i] != top1[run[-1]]:
            close()
        run.append(i)
    close()
    return segments


def windows_to_frames(windows: Sequence[Window], frame_inds: np.ndarray, values: np.ndarray,
                      num_frames: int) -> np.ndarray:
    """Spread per-window, per-sampled-frame values back onto the video's frames.

    ``frame_inds`` (W, T) are indices *within* each window of the T sampled frames, ``values``
    (W, T, V). Returns (num_frames, V) float32: each frame gets the mean of every value sampled
    at it; frames no window sampled take the nearest sampled frame's value."""
    v = values.shape[-1]
    total = np.zeros((num_frames, v), np.float64)
    count = np.zeros(num_frames, np.int64)
    for w, inds, vals in zip(windows, frame_inds, values):
        frames = w.start + np.asarray(inds)
        np.add.at(total, frames, vals)
        np.add.at(count, frames, 1)
    hit = np.flatnonzero(count)
    if hit.size == 0:
        return np.zeros((num_frames, v), np.float32)
    out = total[hit] / count[hit, None]
    nearest = hit[np.clip(np.searchsorted(hit, np.arange(num_frames)), 0, hit.size - 1)]
    # choose the closer of the neighbours on each side
    left = hit[np.clip(np.searchsorted(hit, np.arange(num_frames)) - 1, 0, hit.size - 1)]
    use_left = np.abs(np.arange(num_frames) - left) < np.abs(nearest - np.arange(num_frames))
    src = np.where(use_left, left, nearest)
    lookup = np.empty(num_frames, np.int64)
    lookup[hit] = np.arange(hit.size)
    return out[lookup[src]].astype(np.float32)
