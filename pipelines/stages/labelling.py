"""Windows of a skeleton track through MMN: per-window top-k, merged segments, per-frame heat.

Input is a whole video's 44-joint track (keypoints (N, V, 2) pixels with NaN where a joint is
missing). Each window is one MMN clip; the model's own preprocessing resamples it to 64
frames. Without a recognizer only the model-free motion-energy heat is made and no labels.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.layouts import SkeletonLayout
from mmn.inference import Recognizer
from pipelines.stages.motion_energy import motion_energy
from pipelines.stages.windowing import Window, merge_segments, windows_to_frames

REGION_UNIT = "grey levels per pixel between consecutive frames (0-255)"
MIN_PRESENT_FRACTION = 0.5  # a window needs the subject in at least half of its frames


def fill_for_model(clip: np.ndarray) -> np.ndarray:
    """Make a window's (L, V, 2) track finite for MMN without inventing motion: each joint's
    missing frames are interpolated linearly in time (held at the edges); a joint missing in
    the whole window sits on the mean of the frame's present joints (it then does not move)."""
    out = np.array(clip, np.float32, copy=True)
    t = np.arange(out.shape[0])
    for j in range(out.shape[1]):
        ok = np.isfinite(out[:, j]).all(axis=1)
        if ok.all() or not ok.any():
            continue
        for c in range(2):
            out[~ok, j, c] = np.interp(t[~ok], t[ok], out[ok, j, c])
    still_missing = ~np.isfinite(out).all(axis=2)
    if still_missing.any():
        frame_mean = np.nanmean(np.where(still_missing[..., None], np.nan, out), axis=1)  # (L, 2)
        frame_mean = np.where(np.isfinite(frame_mean), frame_mean, np.nanmean(frame_mean, axis=0))
        out[still_missing] = np.broadcast_to(frame_mean[:, None], out.shape)[still_missing]
    return out


@dataclass
class LabelResult:
    """Everything the outputs are made from.

    ``windows``: JSON records; ``segments``: JSON records (empty without labels);
    ``frame_heat``: (N, V) float32 raw heat per frame and joint; ``heat_source``: its name;
    ``frame_top``: per frame, up to three (text, prob, body index) of the latest window
    covering it (empty tuples without labels); ``frame_body``: (N,) body-level index of the
    top-1 action per frame, −1 where unlabelled."""

    windows: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    frame_heat: np.ndarray
    heat_source: str
    frame_top: list[tuple[tuple[str, float, int], ...]]
    frame_body: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)


def _present(clip: np.ndarray) -> np.ndarray:
    """(L,) bool: frames where the subject was found (any joint finite)."""
    return np.isfinite(clip).all(axis=2).any(axis=1)


def label_track(keypoints: np.ndarray, fps: float, windows: Sequence[Window], layout: SkeletonLayout,
                recognizer: Recognizer | None, *, top_k: int = 5, threshold: float = 0.5,
                heatmap: str = "msm_gamma", batch_size: int = 64,
                progress: Callable[[int], None] | None = None, flags: np.ndarray | None = None,
                region_motion: np.ndarray | None = None) -> LabelResult:
    """Classify every window (if ``recognizer``) and build per-frame heat and annotations.

    ``keypoints`` (N, V, 2) pixels, NaN where missing; ``windows`` from
    :func:`pipelines.stages.windowing.make_windows`; ``heatmap`` names one of
    :data:`mmn.model.MAP_NAMES` (used with a recognizer) — without one the heat is motion energy.
    """
    n = keypoints.shape[0]
    energy = motion_energy(keypoints, layout, fps, flags)
    records: list[dict[str, Any]] = []
    usable = [w for w in windows if _present(keypoints[w.start:w.end]).mean() >= MIN_PRESENT_FRACTION]
    usable_ids = {w.index for w in usable}
    frame_top: list[tuple[tuple[str, float, int], ...]] = [()] * n
    frame_body = np.full(n, -1, np.int64)
    segments: list[dict[str, Any]] = []

    if recognizer is None:
        frame_heat, heat_source = energy, "motion_energy"
        preds = None
    else:
        clips = [fill_for_model(keypoints[w.start:w.end]) for w in usable]
        preds = recognizer.predict(clips, return_maps=True, batch_size=batch_size) if clips else None
        if progress is not None:
            progress(len(windows))
        if preds is not None and heatmap in preds.maps:
            frame_heat = windows_to_frames(usable, preds.frame_inds, preds.maps[heatmap], n)
            heat_source = heatmap
        else:
            frame_heat, heat_source = energy, "motion_energy"

    taxonomy = recognizer.taxonomy if recognizer is not None else None
    pred_row = {w.index: i for i, w in enumerate(usable)}
    top1, top1_prob, labelled = [], [], []
    for w in windows:
        start_s, end_s = w.seconds(fps)
        rec: dict[str, Any] = {"index": w.index, "start_frame": w.start, "end_frame": w.end,
                               "start_s": round(start_s, 4), "end_s": round(end_s, 4)}
        heat = frame_heat[w.start:w.end].mean(axis=0)
        rec["joint_heat"] = [round(float(v), 6) for v in heat]
        if region_motion is not None:
            rec["region_motion"] = _region_means(region_motion[w.start:w.end], layout)
        if w.index not in usable_ids:
            rec["skipped"] = "subject absent in more than half of the window"
        elif preds is not None:
            probs = preds.probs[pred_row[w.index]]
            top = taxonomy.top_k_records(probs, top_k)
            rec["top_k"] = top
            body_probs = taxonomy.body_probs(probs)
            if body_probs is not None:
                best = taxonomy[top[0]["index"]]
                rec["body"] = {"index": best.body_index, "code": best.body_code, "name": best.body,
                               "level_probs": [round(float(p), 6) for p in body_probs]}
            top1.append(top[0]["index"]); top1_prob.append(top[0]["prob"]); labelled.append(w)
            lines = tuple((f"{r.get('code', r['index'])} {r['name']}", r["prob"],
                           taxonomy[r["index"]].body_index or 0) for r in top[:3])
            for f in range(w.start, w.end):  # later windows overwrite: "current" = latest start
                frame_top[f] = lines
                frame_body[f] = lines[0][2]
        records.append(rec)

    if labelled:
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
    return LabelResult(records, segments, frame_heat.astype(np.float32), heat_source, frame_top,
                       frame_body, {"motion_energy": energy, "region_motion": region_motion})


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
