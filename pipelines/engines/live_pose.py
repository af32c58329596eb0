"""The pose stage of live mode, frame by frame: frames in, the subject's raw 44-joint pose out.

The per-frame part of :func:`pose.extract.extract_skeleton` on a stream: the estimator's own
stream (:meth:`pose.estimators.base.Estimator.stream`, so a backend that estimates every k-th
frame and interpolates does so live too), the keypoint table, subject tracking
(:class:`pose.subject.SubjectTracker`) and the per-part pixel motion
(:class:`pose.region_motion.RegionMotionEnergy`). What differs from a file: the subject is
chosen as the stream goes (:data:`LIVE_SUBJECT_RULE`) instead of after the whole video, and
shot cuts are measured for the record only (a file's tracks are split at them).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pose.estimators.base import Estimator, boxes_from_keypoints
from pose.keypoint_tables import table_for
from pose.region_motion import UNIT, RegionMotionEnergy
from pose.shot_cuts import cuts_record
from pose.sources import Frame
from pose.subject import SubjectTracker

__all__ = ["LIVE_SUBJECT_RULE", "PosedFrame", "StreamPose", "warm_up"]

LIVE_SUBJECT_RULE = ("live: in each frame, the person whose track has the largest score so far (sum over its "
                     "frames of sqrt(box area fraction) x centrality x mean joint score); decided frame by frame, "
                     "never revised")


@dataclass(frozen=True)
class PosedFrame:
    """One frame after pose estimation: the source's ``index``, ``timestamp`` (s) and
    ``arrival`` (``time.monotonic()``), the subject's raw joints ``keypoints`` (V, 2) px,
    ``scores`` (V,), ``flags`` (V,) uint8, or all None when no subject was found
    (``present`` False); ``region`` (P,) float32 per-part pixel motion (NaN where not
    measured); ``image``: the frame (BGR) when kept for drawing, else None."""

    index: int
    timestamp: float
    arrival: float
    present: bool
    keypoints: np.ndarray | None
    scores: np.ndarray | None
    flags: np.ndarray | None
    region: np.ndarray
    image: np.ndarray | None = None


class StreamPose:
    """Run an estimator over :class:`pose.sources.Frame` s (``width`` × ``height`` px); see the
    module doc. ``keep_images``: hand each frame's image on with its pose (for an overlay)."""

    def __init__(self, estimator: Estimator, width: int, height: int, *, keep_images: bool = False) -> None:
        if not estimator.needs_pixels:
            raise ValueError(f"the {estimator.name} pose backend reads precomputed results; live mode needs a "
                             "backend that estimates from pixels (mediapipe, mmpose)")
        self.est = estimator
        self.table = table_for(estimator.keypoint_format)
        self.layout = self.table.layout
        self.tracker = SubjectTracker(width, height, multi_person=estimator.multi_person)
        self.mea = RegionMotionEnergy(self.layout)
        self.keep_images = keep_images
        self.frames_with_subject = 0
        self._pending: dict[int, tuple[float, np.ndarray | None]] = {}  # index -> (arrival, image) in flight
        self._timestamps: list[float] = []
        self._indices: list[int] = []

    def _inputs(self, frames: Iterable[Frame]) -> Iterator[tuple[int, float, np.ndarray]]:
        for f in frames:
            self._pending[f.index] = (f.arrival, f.image if self.keep_images else None)
            self.mea.push_frame(f.index, f.image)
            yield f.index, f.timestamp, f.image

    def run(self, frames: Iterable[Frame]) -> Iterator[PosedFrame]:
        """One :class:`PosedFrame` per frame, in order (the estimator may hold a frame or two).
        The estimator is used as it is: new, reset, or warmed up (:func:`warm_up`)."""
        for fp in self.est.stream(self._inputs(frames)):
            yield self._posed(fp.index, fp.timestamp, fp.keypoints, fp.scores)

    def _posed(self, index: int, timestamp: float, native_kp: np.ndarray, native_sc: np.ndarray) -> PosedFrame:
        arrival, image = self._pending.pop(index)
        kp, sc, fl = self.table.map(native_kp, native_sc)
        self.mea.add_pose(index, kp)
        ids = self.tracker.update(index, boxes_from_keypoints(kp, sc), sc.mean(1) if sc.size else np.zeros(0))
        self._timestamps.append(timestamp)
        self._indices.append(index)
        scored = [(self.tracker.tracks[t].score, d) for d, t in enumerate(ids) if t >= 0]
        region = np.full(len(self.mea.regions), np.nan, np.float32)
        if not scored:
            return PosedFrame(index, timestamp, arrival, False, None, None, None, region, image)
        person = max(scored)[1]
        row = _region_row(self.mea, index)
        if person < len(row):
            region = row[person].astype(np.float32)
        self.frames_with_subject += 1
        return PosedFrame(index, timestamp, arrival, True, kp[person], sc[person], fl[person], region, image)

    def meta(self, frames: int) -> dict[str, Any]:
        """The skeleton file's ``backend``, ``subject``, ``shot_cuts`` (frames: the received
        frames' order) and ``region_motion`` metadata, for the first ``frames`` frames posed."""
        est = self.est
        indices = np.asarray(self._indices[:frames], np.int64)
        received = self.mea.frame_difference()[indices] if len(indices) else np.zeros(0, np.float32)
        _, subject = self.tracker.choose(None)
        subject.update(rule=LIVE_SUBJECT_RULE, frames_with_subject=self.frames_with_subject)
        for key in ("subject_tracks", "subject_track_scores", "joined_at_cuts", "best_other_track_score"):
            subject.pop(key, None)
        return {"backend": {"name": est.name, "version": est.version(), "keypoint_format": est.keypoint_format,
                            "options": est.options()},
                "layout": self.layout.name, "subject": subject,
                "shot_cuts": cuts_record(received, self._timestamps[:len(received)]) if len(received) else None,
                "region_motion": {"regions": self.mea.names, "unit": UNIT, "scale": self.mea.scale,
                                  "pad_torso_lengths": self.mea.pad}}


def warm_up(estimator: Estimator, width: int = 640, height: int = 480) -> float:
    """Load the estimator's models before a live source starts (MediaPipe: about 1.5 s, during
    which a camera's frames would be dropped): one grey ``width`` × ``height`` frame is
    estimated. The first real frame then is not estimated twice, as a file's is
    (``warmup_first_frame``). Returns the seconds it took."""
    import time

    t0 = time.perf_counter()
    estimator.process(np.full((height, width, 3), 128, np.uint8), 0, 0.0)
    return time.perf_counter() - t0


def _region_row(mea: RegionMotionEnergy, index: int) -> np.ndarray:
    """(P, R) the per-part pixel motion of every candidate person in frame ``index``.

    ``RegionMotionEnergy`` offers only the whole video's array (:meth:`result`, O(frames)); the
    live engine needs one frame's row, which it keeps as ``_rows[index]``. (Hook wanted:
    ``RegionMotionEnergy.row(index)``.)"""
    rows = mea._rows  # noqa: SLF001 - see the docstring
    return rows[index] if index < len(rows) else np.zeros((0, len(mea.regions)), np.float32)
