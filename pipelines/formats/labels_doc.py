"""The labels document (``KEY.labels.json``): one video's windows, segments and heat summary.

Its schema is ``pipelines/formats/labels.schema.json``. Besides the results it records ``job``: the
video's fingerprint and every option that shapes the results (see
:func:`pipelines.job.job_record`); a rerun takes a video as finished only when that record
equals the one it would write now.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.layouts import SkeletonLayout
from pipelines.stages.classify import ModelInfo
from pipelines.stages.labelling import LabelResult, heat_summary, motion_summary
from pipelines.stages.windowing import Window

__all__ = ["NO_LABELS_NOTE", "NO_WEIGHTS_REASON", "SCHEMA_VERSION", "body_levels_of", "cuts_section", "labels_document"]

SCHEMA_VERSION = 2
NO_WEIGHTS_REASON = ("no MMN checkpoint given (--weights): skeletons, motion-energy heatmaps and "
                     "annotated clips only. Labels need the authors' MA-52 checkpoint or one trained "
                     "with mmn.train; see the README, 'The authors' checkpoints'.")
NO_LABELS_NOTE = "no labels: run with --weights"  # drawn on the clip and the timeline


def model_section(model: ModelInfo | None) -> dict[str, Any] | None:
    """The ``model`` part: checkpoint files and digests, taxonomy, layout, device."""
    if model is None:
        return None
    taxonomy = model.taxonomy
    return {
        "streams": [{"file": m.file, "sha256": m.sha256, "modality": m.modality} for m in model.metas],
        "dataset": taxonomy.name, "layout": model.layout.name, "clip_len": model.clip_len,
        "taxonomy": {"name": taxonomy.name, "num_classes": taxonomy.num_classes,
                     "body_levels": None if taxonomy.body_levels is None else [list(b) for b in taxonomy.body_levels]},
        "ensemble": "2S (0.5 joint + 0.5 bone)" if len(model.metas) == 2 else None,
        "device": model.device,
    }


def labels_document(*, video: Mapping[str, Any], pose: Mapping[str, Any], model: ModelInfo | None,
                    windowing: Mapping[str, Any], result: LabelResult, layout: SkeletonLayout,
                    outputs: Mapping[str, str | None], job: Mapping[str, Any],
                    timing: Mapping[str, float], cuts: Sequence[int] | None = None) -> dict[str, Any]:
    """Assemble the document from its parts (each already JSON-ready). ``cuts``: the frames
    that start a new camera shot (:func:`pose.shot_cuts.cut_frames_of` of the skeleton's
    meta), None where they were not measured."""
    return {
        "schema_version": SCHEMA_VERSION,
        "video": dict(video),
        "pose": dict(pose),
        "model": model_section(model),
        "labels_absent_reason": None if model is not None else NO_WEIGHTS_REASON,
        "windowing": dict(windowing),
        "cuts": cuts_section(cuts, float(video["fps"])),
        "windows": result.windows,
        "segments": result.segments,
        "detections": result.detections,
        "heatmap": heat_summary(result.frame_heat, layout, result.heat_source),
        "motion": motion_summary(result.motion_energy, result.region_motion, layout,
                                 "motion_energy"),
        "outputs": dict(outputs),
        "job": dict(job),
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
    }


def cuts_section(frames: Sequence[int] | None, fps: float) -> list[dict[str, Any]] | None:
    """The ``cuts`` part: ``[{"frame": f, "time_s": f / fps}]`` for each frame that starts a shot."""
    return None if frames is None else [{"frame": int(f), "time_s": round(int(f) / fps, 4)} for f in frames]


def windowing_section(windows: Sequence[Window], fps: float, window_s: float, stride_s: float,
                      clip_len: int | None, threshold: float) -> dict[str, Any]:
    return {"window_s": window_s, "stride_s": stride_s, "window_frames": windows[0].length if windows else 0,
            "stride_frames": max(1, int(round(stride_s * fps))), "clip_len": clip_len, "threshold": threshold}


def body_levels_of(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``(code, name)`` body levels of the document's taxonomy (empty without)."""
    levels = ((doc.get("model") or {}).get("taxonomy") or {}).get("body_levels") or []
    return [(str(c), str(n)) for c, n in levels]
