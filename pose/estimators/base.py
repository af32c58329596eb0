"""The estimator interface: frames in, per-frame native keypoints with scores out, streamed.

An estimator turns one BGR frame into the people it sees, each as native keypoints of its
``keypoint_format`` (a key of :data:`pose.keypoint_tables.TABLES`). :meth:`Estimator.stream`
consumes an iterator of ``(index, timestamp_s, frame)`` (as :func:`pose.video.iter_frames`
yields) and yields one :class:`FramePoses` per frame, so a video is never held in memory.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FramePoses:
    """The people found in one frame, in the estimator's native format.

    Attributes:
        index: frame index in the video (0-based).
        timestamp: presentation time in seconds.
        keypoints: (P, K, 2) float32 pixel coordinates (x right, y down), NaN where absent.
        scores: (P, K) float32 confidences in [0, 1], 0 where absent.
        boxes: (P, 4) float32 person boxes ``x1, y1, x2, y2`` in pixels: the detector's box,
            the crop the backend estimated in, or the keypoints' extent (for information;
            subject tracking uses the extent of the mapped joints).
        box_scores: (P,) float32 detector scores (1 when there was no detector).
        extra: backend-specific details (MediaPipe: which parts its models found).
    """

    index: int
    timestamp: float
    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_people(self) -> int:
        return int(self.keypoints.shape[0])

    @classmethod
    def empty(cls, index: int, timestamp: float, num_keypoints: int) -> FramePoses:
        return cls(index, timestamp, np.zeros((0, num_keypoints, 2), np.float32),
                   np.zeros((0, num_keypoints), np.float32), np.zeros((0, 4), np.float32),
                   np.zeros((0,), np.float32))


def boxes_from_keypoints(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.0,
                         ) -> np.ndarray:
    """Tight ``x1, y1, x2, y2`` boxes (P, 4) around each person's present keypoints.

    A person with no present keypoint gets a NaN box.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    ok = np.isfinite(keypoints).all(-1) & (np.asarray(scores) > min_score)
    boxes = np.full((keypoints.shape[0], 4), np.nan, np.float32)
    for p in range(keypoints.shape[0]):
        pts = keypoints[p][ok[p]]
        if len(pts):
            boxes[p] = (*pts.min(0), *pts.max(0))
    return boxes


class Estimator(ABC):
    """Base class of the pose backends.

    Subclasses set ``name``, ``keypoint_format`` and ``num_keypoints`` and implement
    :meth:`process`. ``needs_pixels`` is False for backends that read precomputed results (the
    video is then only demuxed, not decoded). ``multi_person`` is True for a backend that
    reports every person it sees in a frame (so one person reported means one was there), False
    for one that follows one person (:mod:`pose.subject` uses it). Estimators are context managers.
    """

    name: str = "estimator"
    keypoint_format: str = ""
    num_keypoints: int = 0
    needs_pixels: bool = True
    multi_person: bool = False

    @abstractmethod
    def process(self, frame: np.ndarray | None, index: int, timestamp: float) -> FramePoses:
        """Estimate the people in one BGR (H, W, 3) uint8 frame."""

    def stream(self, frames: Iterable[tuple[int, float, np.ndarray | None]]) -> Iterator[FramePoses]:
        """Yield one :class:`FramePoses` per ``(index, timestamp_s, frame)``, in order."""
        for index, timestamp, frame in frames:
            yield self.process(frame, index, timestamp)

    def reset(self) -> None:
        """Forget any state carried between frames (call between videos)."""

    def version(self) -> str:
        """Backend name and version of the underlying library, for the skeleton file."""
        return "unknown"

    def options(self) -> dict[str, Any]:
        """The settings that affect the output (stored in the skeleton file's metadata)."""
        return {}

    def close(self) -> None:
        """Release models and threads."""

    def __enter__(self) -> Estimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
