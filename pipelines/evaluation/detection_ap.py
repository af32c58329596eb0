"""Per-class average precision of temporal detections, as the MMA-52 challenge computes it.

A reimplementation of the evaluator of the MMA-52 micro-action detection track
(``MMAD/PointTAD/datasets/evaluate.py`` in VUT-HFUT/MAC_2024_baseline), with its quirks, so that
the numbers compare with published ones. Per class (docs/agreement.md explains each point):

- the class's detections are ranked by score over all videos with ``argsort()[::-1]``: an
  ascending sort, reversed, so detections with equal scores come in reverse input order. The
  evaluator calls numpy's default sort, which does not promise an order for ties (numpy 2's
  vectorised sorts may differ by machine); here the sort is the stable one, which is what the
  default gives on the small arrays of older numpy and makes the result reproducible;
- each detection is matched only against the gold of its own video and class: the gold segments
  are visited in order of decreasing tIoU (again a stable ``argsort()[::-1]``); the visit stops, as a false
  positive, at the first one below the threshold; a gold segment already taken is passed over; a
  detection whose every candidate is taken is a false positive;
- a detection in a video without gold of its class is a false positive;
- ``tIoU = intersection / (union + 1e-4)`` (seconds);
- the thresholds are ``numpy.arange(0.1, 1.0, 0.1)``, with their float error (0.30000000000000004);
- AP is VOC-2011 interpolated (precision made monotone, summed over the recall steps);
- a class without gold gets NaN when it has detections (recall 0/0) and 0 when it has none.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["TIOU_THRESHOLDS", "UNION_EPS", "ClassMatch", "ScoredSegment", "class_ap", "detection_ap",
           "match_class", "segment_tiou", "voc_ap"]

TIOU_THRESHOLDS: np.ndarray = np.arange(0.1, 1.0, 0.1)  # nine floats, 0.1 … 0.9, float error included
UNION_EPS = 1e-4


@dataclass(frozen=True)
class ScoredSegment:
    """``label`` (a class index) on ``[start_s, end_s]`` seconds of ``video``; ``score`` ranks
    detections (gold segments leave it at 1)."""

    video: str
    start_s: float
    end_s: float
    label: int
    score: float = 1.0


@dataclass(frozen=True)
class ClassMatch:
    """The outcome of matching one class: ``tp`` and ``fp`` (T, D) 0/1 per threshold and
    detection in rank order, ``order`` (D,) the input index of each ranked detection, ``npos``
    the number of gold segments."""

    tp: np.ndarray
    fp: np.ndarray
    order: np.ndarray
    npos: int


def segment_tiou(segment: tuple[float, float], others: np.ndarray) -> np.ndarray:
    """(M,) tIoU of ``(start, end)`` with each row of ``others`` (M, 2): the intersection (at
    least 0) over the union plus :data:`UNION_EPS`."""
    others = np.asarray(others, np.float64).reshape(-1, 2)
    inter = (np.minimum(segment[1], others[:, 1]) - np.maximum(segment[0], others[:, 0])).clip(0)
    union = (others[:, 1] - others[:, 0]) + (segment[1] - segment[0]) - inter
    return inter / (union + UNION_EPS)


def match_class(gold: Sequence[ScoredSegment], detections: Sequence[ScoredSegment],
                thresholds: np.ndarray = TIOU_THRESHOLDS) -> ClassMatch:
    """Match one class's detections to its gold segments at every threshold (module doc).

    ``gold`` and ``detections`` are all of one class; their order matters only for ties."""
    thresholds = np.asarray(thresholds, np.float64)
    scores = np.array([d.score for d in detections], np.float64)
    order = scores.argsort(kind="stable")[::-1]
    by_video: dict[str, list[int]] = {}
    for i, g in enumerate(gold):
        by_video.setdefault(g.video, []).append(i)
    bounds = np.array([[g.start_s, g.end_s] for g in gold], np.float64).reshape(-1, 2)
    taken = np.full((len(thresholds), len(gold)), -1, np.int64)
    tp = np.zeros((len(thresholds), len(detections)))
    fp = np.zeros((len(thresholds), len(detections)))
    for rank, d_idx in enumerate(order):
        det = detections[d_idx]
        members = by_video.get(det.video)
        if not members:
            fp[:, rank] = 1
            continue
        tiou = segment_tiou((det.start_s, det.end_s), bounds[members])
        visit = tiou.argsort(kind="stable")[::-1]
        for t, thr in enumerate(thresholds):
            for j in visit:
                if tiou[j] < thr:
                    break
                if taken[t, members[j]] >= 0:
                    continue
                taken[t, members[j]] = rank
                tp[t, rank] = 1
                break
            fp[t, rank] = 1 - tp[t, rank]
    return ClassMatch(tp, fp, np.asarray(order, np.int64), len(gold))


def voc_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC-2011 interpolated AP of a precision/recall curve in rank order: precision is made
    non-increasing from the right, then summed over the points where recall changes (from 0
    to 1 with end points precision 0). NaN recall (a class without gold) gives NaN."""
    prec = np.concatenate([[0.0], precision, [0.0]])
    rec = np.concatenate([[0.0], recall, [1.0]])
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    steps = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[steps] - rec[steps - 1]) * prec[steps]))


def class_ap(gold: Sequence[ScoredSegment], detections: Sequence[ScoredSegment],
             thresholds: np.ndarray = TIOU_THRESHOLDS) -> np.ndarray:
    """(T,) AP of one class at each threshold."""
    m = match_class(gold, detections, thresholds)
    out = np.zeros(len(m.tp))
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(len(m.tp)):
            tp, fp = np.cumsum(m.tp[t]), np.cumsum(m.fp[t])
            recall = tp / np.float64(m.npos)
            precision = tp / (tp + fp)
            out[t] = voc_ap(precision, recall)
    return out


def detection_ap(gold: Sequence[ScoredSegment], detections: Sequence[ScoredSegment], num_classes: int,
                 thresholds: np.ndarray = TIOU_THRESHOLDS) -> np.ndarray:
    """(T, K) AP of every class ``0 … num_classes-1`` at every threshold; the challenge's score
    is its mean over classes per threshold, then over thresholds."""
    ap = np.zeros((len(thresholds), num_classes))
    for c in range(num_classes):
        ap[:, c] = class_ap([g for g in gold if g.label == c], [d for d in detections if d.label == c], thresholds)
    return ap
