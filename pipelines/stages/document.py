"""Stage 6, assemble: the labels document of one video from what the stages made
(:func:`pipelines.formats.labels_doc.labels_document` lays it out)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmn.preprocess import CLIP_LEN
from pipelines.discovery import VideoJob
from pipelines.formats.labels_doc import labels_document, windowing_section
from pipelines.options import JobOptions, Outputs
from pipelines.stages.classify import ModelInfo
from pipelines.stages.labelling import LabelResult
from pipelines.stages.pose import LAYOUT
from pipelines.stages.windowing import Window
from pose.shot_cuts import cut_frames_of
from pose.skeleton_file import Skeleton
from pose.video import VideoInfo

__all__ = ["assemble_document", "video_name"]


def video_name(job: VideoJob, opts: JobOptions) -> str:
    """The video's name in the outputs: ``opts.display_name``, else the file's name."""
    return opts.display_name or job.path.name


def _video_section(job: VideoJob, info: VideoInfo, num_frames: int, opts: JobOptions) -> dict[str, object]:
    fps = float(info.fps)
    return {"file_name": opts.display_name or info.file_name, "path": opts.display_name or str(job.path),
            "width": info.width, "height": info.height, "fps": fps, "frame_count": num_frames,
            "duration_s": round(num_frames / fps, 4), "rotation": info.rotation,
            "sha256_first_mib": info.sha256_first_mib}


def _pose_section(skel: Skeleton, opts: JobOptions, outputs: Outputs) -> dict[str, object]:
    backend = skel.meta.get("backend", {})
    return {"backend": backend.get("name", opts.pose.backend), "backend_version": backend.get("version"),
            "skeleton_file": outputs.skeleton.name, "layout": LAYOUT.name, "subject": skel.meta.get("subject")}


def assemble_document(job: VideoJob, info: VideoInfo, skel: Skeleton, windows: Sequence[Window],
                      result: LabelResult, model: ModelInfo | None, opts: JobOptions, outputs: Outputs,
                      record: Mapping[str, object], timing: Mapping[str, float]) -> dict[str, object]:
    """The labels document (``KEY.labels.json``, schema ``pipelines/formats/labels.schema.json``).
    ``record``: the job record; ``timing``: seconds per stage."""
    n = int(skel.keypoints.shape[0])
    fps = float(info.fps)
    return labels_document(
        video=_video_section(job, info, n, opts), pose=_pose_section(skel, opts, outputs), model=model,
        windowing=windowing_section(windows, fps, opts.windows.window, opts.windows.stride,
                                    model.clip_len if model is not None else CLIP_LEN, opts.threshold),
        result=result, layout=LAYOUT, outputs=outputs.names(opts), job=record, timing=timing,
        cuts=cut_frames_of(skel.meta))
