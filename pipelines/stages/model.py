"""Stages 4 and 5 as one video's job runs them: windows through the classifier, then the
labelled track, each failure a :class:`StageError` (stage ``model``)."""
from __future__ import annotations

from core.taxonomy import Taxonomy
from pipelines.discovery import VideoJob
from pipelines.options import JobOptions
from pipelines.stages.classify import Classifier, WindowScores, classify_windows, usable_windows
from pipelines.stages.errors import StageError
from pipelines.stages.labelling import LabelResult, label_track
from pipelines.stages.pose import LAYOUT
from pipelines.stages.windowing import Window
from pose.skeleton_file import Skeleton

__all__ = ["classify_stage", "label_stage", "windows_stage"]


def windows_stage(skel: Skeleton, fps: float, opts: JobOptions) -> list[Window]:
    """The windows of a track (``opts.windows``)."""
    return opts.windows.cut(len(skel.keypoints), fps)


def _model_error(job: VideoJob, e: Exception) -> StageError:
    return StageError("model", f"{job.path}: {type(e).__name__}: {e}")


def classify_stage(job: VideoJob, skel: Skeleton, windows: list[Window], opts: JobOptions,
                   classifier: Classifier) -> WindowScores | None:
    """The classifier's scores of the usable windows (None when there is none)."""
    try:
        return classify_windows(skel.keypoints, usable_windows(skel.keypoints, windows), classifier,
                                heatmap=opts.heatmap, batch_size=opts.batch_size)
    except (ValueError, RuntimeError) as e:
        raise _model_error(job, e) from None


def label_stage(job: VideoJob, skel: Skeleton, fps: float, windows: list[Window], opts: JobOptions,
                taxonomy: Taxonomy | None, scores: WindowScores | None) -> LabelResult:
    """The labelled track (:func:`pipelines.stages.labelling.label_track`)."""
    video = skel.meta.get("video") or {}
    frame_size = (int(video["width"]), int(video["height"])) if video.get("width") and video.get("height") else None
    try:
        return label_track(skel.keypoints, fps, windows, LAYOUT, taxonomy, scores, top_k=opts.top_k,
                           threshold=opts.threshold, flags=skel.flags, region_motion=skel.region_motion,
                           frame_size=frame_size)
    except (ValueError, RuntimeError) as e:
        raise _model_error(job, e) from None
