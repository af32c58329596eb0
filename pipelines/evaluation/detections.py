"""Per-class scored segments ("detections") from the class probabilities of sliding windows.

The top-1 segments of a labels document give each moment one class. MMA-52 is multi-label:
micro-actions overlap (a nod while shaking a leg), and its benchmark scores per-class segments
that may overlap. The rule, applied to each class ``c`` on its own (docs/agreement.md):

1. frame score: ``s_c(f)`` is the mean of ``p_c`` over the (usable) windows that cover frame
   ``f`` (0 where no window covers it), so windows that overlap vote equally;
2. a detection of ``c`` is every maximal run of frames with ``s_c(f) >= threshold``
   (:data:`DETECTION_THRESHOLD` = 0.1 of the softmax; no trained MA-52 checkpoint exists here to
   tune it), from the run's first frame to the frame after its last, in seconds ``frame / fps``;
3. its score is the mean of ``s_c`` over the run.

Classes are independent, so runs of different classes may overlap: two true micro-actions that
overlap in time, each with enough probability in the windows that cover it, are both detected.
Windows carry all class probabilities when the recognizer ran in this version
(:func:`detections_from_probs`); from an older labels document, only the windows' ``top_k`` are
known and the other classes count 0 (:func:`window_probs`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DETECTION_THRESHOLD", "Detection", "class_runs", "detection_records", "detections_from_probs",
           "frame_scores", "window_probs"]

DETECTION_THRESHOLD = 0.1


@dataclass(frozen=True)
class Detection:
    """Class ``class_index`` on frames ``[start_frame, end_frame)``, scored ``score`` (0-1)."""

    class_index: int
    start_frame: int
    end_frame: int
    score: float


def frame_scores(probs: np.ndarray, bounds: Sequence[tuple[int, int]], num_frames: int) -> np.ndarray:
    """(N, K) per-frame class scores: the mean of ``probs`` (W, K) over the windows covering each
    frame; ``bounds`` gives each window's frames ``[start, end)``; 0 where no window covers."""
    probs = np.asarray(probs, np.float64)
    total = np.zeros((num_frames + 1, probs.shape[1]))
    count = np.zeros(num_frames + 1)
    for (start, end), p in zip(bounds, probs):
        start, end = max(0, int(start)), min(num_frames, int(end))
        if end > start:
            total[start] += p; total[end] -= p
            count[start] += 1; count[end] -= 1
    total, count = np.cumsum(total, axis=0)[:num_frames], np.cumsum(count)[:num_frames]
    return np.divide(total, count[:, None], out=np.zeros_like(total), where=count[:, None] > 0)


def class_runs(scores: np.ndarray, threshold: float = DETECTION_THRESHOLD) -> list[Detection]:
    """Every maximal run of frames with ``scores[:, c] >= threshold``, per class, scored by the
    run's mean; sorted by start frame, then class."""
    above = np.asarray(scores) >= threshold
    padded = np.zeros((above.shape[0] + 2, above.shape[1]), np.int8)
    padded[1:-1] = above
    edges = np.diff(padded, axis=0)
    out: list[Detection] = []
    for c in range(above.shape[1]):
        starts, ends = np.flatnonzero(edges[:, c] == 1), np.flatnonzero(edges[:, c] == -1)
        out += [Detection(c, int(s), int(e), float(scores[s:e, c].mean())) for s, e in zip(starts, ends)]
    return sorted(out, key=lambda d: (d.start_frame, d.class_index, d.end_frame))


def detections_from_probs(probs: np.ndarray, bounds: Sequence[tuple[int, int]], num_frames: int,
                          threshold: float = DETECTION_THRESHOLD) -> list[Detection]:
    """The module's rule: ``probs`` (W, K) class probabilities of the windows ``bounds``."""
    if len(bounds) == 0:
        return []
    return class_runs(frame_scores(probs, bounds, num_frames), threshold)


def window_probs(windows: Sequence[Mapping[str, Any]], num_classes: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(W, K) class probabilities and frame bounds of a labels document's labelled windows (those
    with ``top_k``); classes outside a window's top-k count 0."""
    rows, bounds = [], []
    for w in windows:
        if not w.get("top_k"):
            continue
        p = np.zeros(num_classes)
        for rec in w["top_k"]:
            p[int(rec["index"])] = float(rec["prob"])
        rows.append(p)
        bounds.append((int(w["start_frame"]), int(w["end_frame"])))
    return np.array(rows).reshape(-1, num_classes), bounds


def detection_records(detections: Sequence[Detection], fps: float, taxonomy: Any) -> list[dict[str, Any]]:
    """The labels document's ``detections``: JSON records with the class (index, name, code),
    frames, seconds (rounded to 0.1 ms) and score (6 decimals)."""
    out = []
    for d in detections:
        c = taxonomy[d.class_index]
        rec: dict[str, Any] = {"class_index": c.index, "name": c.name}
        if c.code is not None:
            rec["code"] = c.code
        rec.update(start_frame=d.start_frame, end_frame=d.end_frame, start_s=round(d.start_frame / fps, 4),
                   end_s=round(d.end_frame / fps, 4), score=round(d.score, 6))
        out.append(rec)
    return out
