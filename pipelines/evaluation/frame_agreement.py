"""Agreement over frames and over segments: Cohen's kappa, percent agreement, precision/recall/F1.

Frames are the instants ``(f + 0.5) / fps`` of each video; a span ``[start, end)`` covers the
frames whose instant lies in it. Two views of the same frames:

- one label per frame (:func:`frame_labels`): the class of the span covering it, ``-1``
  ("none") elsewhere; where spans overlap, the one painted last wins: predicted spans are
  painted by increasing score (the higher-scored wins), annotations by start (the span that
  started last wins);
- presence per class (:func:`presence`): whether any span of the class covers the frame, so
  overlapping spans all count.

:func:`cohen_kappa` is ``(p_o - p_e) / (1 - p_e)``; it is undefined (None) when ``p_e = 1``, i.e.
both sides give every frame the same single label.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.evaluation.detection_ap import ScoredSegment, match_class

__all__ = ["NONE", "Kappa", "PRF", "cohen_kappa", "frame_labels", "precision_recall_f1", "presence"]

NONE = -1  # the label of a frame no span covers


@dataclass(frozen=True)
class Kappa:
    """Cohen's ``kappa`` (None when undefined), ``percent`` agreement (0-100), ``frames`` compared."""

    kappa: float | None
    percent: float
    frames: int


@dataclass(frozen=True)
class PRF:
    """Detections matched to gold at one tIoU: counts and ratios (None where a count is 0)."""

    tp: int
    detections: int
    gold: int
    precision: float | None
    recall: float | None
    f1: float | None


def _frames(seg: ScoredSegment, fps: float, num_frames: int) -> slice:
    """Frames whose instant ``(f + 0.5) / fps`` lies in ``[start, end)``."""
    first = int(np.ceil(seg.start_s * fps - 0.5))
    stop = int(np.ceil(seg.end_s * fps - 0.5))
    return slice(max(0, first), min(num_frames, max(0, stop)))


def frame_labels(segments: Sequence[ScoredSegment], num_frames: int, fps: float, *, by_score: bool) -> np.ndarray:
    """(N,) int class per frame, :data:`NONE` where uncovered (module doc for overlaps):
    ``by_score`` for predictions (higher score wins), else by start (later start wins)."""
    out = np.full(num_frames, NONE, np.int64)
    order = sorted(range(len(segments)), key=(lambda i: (segments[i].score, segments[i].start_s, i)) if by_score
                   else (lambda i: (segments[i].start_s, i)))
    for i in order:
        out[_frames(segments[i], fps, num_frames)] = segments[i].label
    return out


def presence(segments: Sequence[ScoredSegment], num_frames: int, fps: float, num_classes: int) -> np.ndarray:
    """(N, K) bool: frame covered by a span of each class."""
    out = np.zeros((num_frames, num_classes), bool)
    for s in segments:
        out[_frames(s, fps, num_frames), s.label] = True
    return out


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> Kappa:
    """Cohen's kappa and percent agreement of two equal-length label sequences."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"label sequences differ in length: {a.shape} and {b.shape}")
    if a.size == 0:
        return Kappa(None, 0.0, 0)
    p_o = float(np.mean(a == b))
    values = np.union1d(a, b)
    p_e = float(sum(np.mean(a == v) * np.mean(b == v) for v in values))
    kappa = None if np.isclose(p_e, 1.0) else (p_o - p_e) / (1.0 - p_e)
    return Kappa(kappa, 100.0 * p_o, int(a.size))


def precision_recall_f1(gold: Sequence[ScoredSegment], detections: Sequence[ScoredSegment],
                        tiou: float = 0.5) -> PRF:
    """One class's detections matched to its gold at ``tiou`` as the challenge evaluator
    matches them (:func:`pipelines.evaluation.detection_ap.match_class`)."""
    m = match_class(gold, detections, np.array([tiou]))
    tp = int(m.tp.sum())
    precision = tp / len(detections) if detections else None
    recall = tp / len(gold) if gold else None
    f1 = (2 * precision * recall / (precision + recall) if precision is not None and recall is not None
          and precision + recall > 0 else (0.0 if precision is not None and recall is not None else None))
    return PRF(tp, len(detections), len(gold), precision, recall, f1)
