"""Stage 5, label: a classified track as per-window top-k, merged segments and per-frame heat.

Input is a whole video's 44-joint track (keypoints (N, V, 2) pixels with NaN where a joint is
missing), its windows and the classifier's scores of the usable ones
(:mod:`pipelines.stages.classify`). Without scores only the model-free motion-energy heat is
made and no labels.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.layouts import SkeletonLayout
from core.taxonomy import Taxonomy
from pipelines.evaluation.detections import detection_records, detections_from_probs
from pipelines.stages.classify import WindowScores, usable_windows
from pipelines.stages.motion_energy import motion_energy
from pipelines.stages.windowing import Window, merge_segments, windows_to_frames

__all__ = ["REGION_UNIT", "LabelResult", "heat_summary", "label_track", "motion_summary"]

REGION_UNIT = "grey levels per pixel between consecutive frames (0-255)"


@dataclass(frozen=True)
class LabelResult:
    """Everything the outputs are made from.

    ``windows``: JSON records; ``segments``: JSON records (empty without labels);
    ``frame_heat``: (N, V) float32 raw heat per frame and joint; ``heat_source``: its name;
    ``frame_top``: per frame, up to three (text, prob, body index) of the latest window
    covering it (empty tuples without labels); ``frame_body``: (N,) body-level index of the
    top-1 action per frame, −1 where unlabelled; ``motion_energy``: (N, V) the model-free
    heat (torso lengths per second above the estimator's noise); ``region_motion``: (N, P)
    pixel motion energy per body part, or None where it was not measured; ``detections``: JSON
    records of the per-class scored segments, which may overlap
    (:mod:`pipelines.evaluation.detections`; empty without labels)."""

    windows: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    frame_heat: np.ndarray
    heat_source: str
    frame_top: list[tuple[tuple[str, float, int], ...]]
    frame_body: np.ndarray
    motion_energy: np.ndarray
    region_motion: np.ndarray | None = None
    detections: list[dict[str, Any]] = field(default_factory=list)

    def region_series(self, layout: SkeletonLayout) -> dict[str, np.ndarray] | None:
        """Body part → (N,) pixel motion energy per frame, or None where it was not measured."""
        pixels = self.region_motion
        return None if pixels is None else {name: pixels[:, i] for i, (name, _) in enumerate(layout.parts)}


def label_track(keypoints: np.ndarray, fps: float, windows: Sequence[Window], layout: SkeletonLayout,
                taxonomy: Taxonomy | None, scores: WindowScores | None, *, top_k: int = 5, threshold: float = 0.5,
                flags: np.ndarray | None = None, region_motion: np.ndarray | None = None,
                frame_size: tuple[int, int] | None = None) -> LabelResult:
    """Per-window records, merged segments and per-frame heat and annotations of a track.

    ``keypoints`` (N, V, 2) pixels, NaN where missing; ``windows`` from
    :func:`pipelines.stages.windowing.make_windows`; ``scores``: the classifier's output for
    the usable windows (:func:`pipelines.stages.classify.classify_windows`), or None (no
    labels: the heat is then the model-free motion energy, as it is when ``scores`` has no
    heat map). ``frame_size`` (width, height) px: joints outside the frame do not count as
    moving in the model-free heat. Raises ValueError when ``scores`` does not match the usable
    windows.
    """
    n = keypoints.shape[0]
    energy = motion_energy(keypoints, layout, fps, flags, frame_size=frame_size)
    usable = usable_windows(keypoints, windows)
    if scores is not None and (taxonomy is None or len(scores.probs) != len(usable)):
        raise ValueError(f"{len(scores.probs)} window scores for {len(usable)} usable windows"
                         if taxonomy is not None else "window scores need the model's taxonomy")
    if scores is not None and scores.heat is not None:
        frame_heat, heat_source = windows_to_frames(usable, scores.frame_inds, scores.heat, n), scores.heat_name
    else:
        frame_heat, heat_source = energy, "motion_energy"
    frame_top: list[tuple[tuple[str, float, int], ...]] = [()] * n
    frame_body = np.full(n, -1, np.int64)
    records, labelled, top1, top1_prob = [], [], [], []
    pred_row = {w.index: i for i, w in enumerate(usable)}
    for w in windows:
        rec = _window_record(w, fps, frame_heat, region_motion, layout)
        if w.index not in pred_row:
            rec["skipped"] = "subject absent in more than half of the window"
        elif scores is not None:
            top, lines = _window_labels(rec, scores.probs[pred_row[w.index]], taxonomy, top_k)
            top1.append(top[0]["index"]); top1_prob.append(top[0]["prob"]); labelled.append(w)
            for f in range(w.start, w.end):  # later windows overwrite: "current" = latest start
                frame_top[f] = lines
                frame_body[f] = lines[0][2]
        records.append(rec)
    segments = _segments(labelled, top1, top1_prob, threshold, taxonomy, fps) if labelled else []
    detections = [] if scores is None else detection_records(
        detections_from_probs(scores.probs, [(w.start, w.end) for w in usable], n), fps, taxonomy)
    return LabelResult(records, segments, frame_heat.astype(np.float32), heat_source, frame_top, frame_body,
                       energy, region_motion, detections)


def _window_record(w: Window, fps: float, frame_heat: np.ndarray, region_motion: np.ndarray | None,
                   layout: SkeletonLayout) -> dict[str, Any]:
    start_s, end_s = w.seconds(fps)
    rec: dict[str, Any] = {"index": w.index, "start_frame": w.start, "end_frame": w.end,
                           "start_s": round(start_s, 4), "end_s": round(end_s, 4)}
    heat = frame_heat[w.start:w.end].mean(axis=0)
    rec["joint_heat"] = [round(float(v), 6) for v in heat]
    if region_motion is not None:
        rec["region_motion"] = _region_means(region_motion[w.start:w.end], layout)
    return rec


def _window_labels(rec: dict[str, Any], probs: np.ndarray, taxonomy: Taxonomy, top_k: int
                   ) -> tuple[list[dict[str, Any]], tuple[tuple[str, float, int], ...]]:
    """Add a labelled window's ``top_k`` (and ``body``) to its record; returns the top-k
    records and the three lines drawn on its frames."""
    top = taxonomy.top_k_records(probs, top_k)
    rec["top_k"] = top
    body_probs = taxonomy.body_probs(probs)
    if body_probs is not None:
        best = taxonomy[top[0]["index"]]
        rec["body"] = {"index": best.body_index, "code": best.body_code, "name": best.body,
                       "level_probs": [round(float(p), 6) for p in body_probs]}
    lines = tuple((f"{r.get('code', r['index'])} {r['name']}", r["prob"], taxonomy[r["index"]].body_index or 0)
                  for r in top[:3])
    return top, lines


def _segments(labelled: Sequence[Window], top1: Sequence[int], top1_prob: Sequence[float], threshold: float,
              taxonomy: Taxonomy, fps: float) -> list[dict[str, Any]]:
    segments = []
    for s in merge_segments(labelled, top1, top1_prob, threshold):
        seg: dict[str, Any] = {"class_index": s.class_index, "name": taxonomy.class_names[s.class_index],
                               "start_frame": s.start, "end_frame": s.end,
                               "start_s": round(s.start / fps, 4), "end_s": round(s.end / fps, 4),
                               "mean_prob": round(s.mean_prob, 6), "windows": list(s.windows)}
        c = taxonomy[s.class_index]
        if c.code is not None:
            seg["code"] = c.code
        if c.body is not None:
            seg.update(body=c.body, body_code=c.body_code)
        segments.append(seg)
    return segments


def _region_means(values: np.ndarray, layout: SkeletonLayout) -> dict[str, float | None]:
    """Per-part means over frames of (L, P) region values (None where never measured)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a part absent throughout
        means = np.nanmean(values, axis=0) if len(values) else np.full(len(layout.parts), np.nan)
    return {name: (round(float(m), 4) if np.isfinite(m) else None) for (name, _), m in zip(layout.parts, means)}


def motion_summary(frame_heat: np.ndarray, region_motion: np.ndarray | None, layout: SkeletonLayout,
                   heat_source: str) -> dict[str, Any]:
    """The labels JSON's ``motion`` part: each body part's pixel motion energy (mean), and the
    hottest part by the skeleton heat and by pixels, side by side."""
    heat_parts = heat_summary(frame_heat, layout, heat_source)["per_part_mean"]
    out: dict[str, Any] = {"regions": [name for name, _ in layout.parts], "unit": REGION_UNIT,
                           "pixels_per_part_mean": None, "hottest_part": {"heat": max(heat_parts, key=heat_parts.get),
                                                                          "pixels": None}}
    if region_motion is not None:
        pixels = _region_means(region_motion, layout)
        out["pixels_per_part_mean"] = pixels
        measured = {k: v for k, v in pixels.items() if v is not None}
        out["hottest_part"]["pixels"] = max(measured, key=measured.get) if measured else None
    return out


def heat_summary(frame_heat: np.ndarray, layout: SkeletonLayout, source: str, top: int = 5) -> dict[str, Any]:
    """JSON summary of a (N, V) heat: per-joint mean and max, per-body-part mean, hottest joints."""
    mean = frame_heat.mean(axis=0) if len(frame_heat) else np.zeros(layout.num_joints)
    peak = frame_heat.max(axis=0) if len(frame_heat) else np.zeros(layout.num_joints)
    parts = {name: round(float(mean[list(joints)].mean()), 6) for name, joints in layout.parts}
    order = np.argsort(-mean)[:top]
    return {
        "source": source,
        "joint_names": list(layout.joint_names),
        "per_joint_mean": [round(float(v), 6) for v in mean],
        "per_joint_max": [round(float(v), 6) for v in peak],
        "per_part_mean": parts,
        "hottest_joints": [layout.joint_names[i] for i in order],
    }
