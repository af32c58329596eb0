"""Stage 7, write: each output of one video, written atomically, each failure a
:class:`StageError` naming its stage (``pictures``, ``render``, ``annotations``, ``labels``).

The skeleton file is written by the pose stage; the labels JSON is written last
(:func:`write_labels`), so it marks the video done.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from core.atomic import atomic_path, atomic_write_text
from core.taxonomy import Taxonomy
from pipelines.discovery import VideoJob
from pipelines.drawing.render import BODY_LEVEL_COLOURS_BGR, NO_LABEL_BGR, FrameAnnotation
from pipelines.formats.labels_doc import NO_LABELS_NOTE
from pipelines.formats.motion import motion_csv_text
from pipelines.formats.user_edits import EditReport
from pipelines.options import JobOptions, Outputs
from pipelines.stages.errors import StageError, write_error
from pipelines.stages.labelling import LabelResult
from pipelines.stages.motion_energy import normalise_heat
from pipelines.stages.pose import LAYOUT
from pipelines.stages.progress import ProgressFactory
from pose.skeleton_file import Skeleton

__all__ = ["export_clip", "run_media_stage", "write_annotations", "write_document_outputs", "write_labels",
           "write_media", "write_motion_table", "write_pictures"]


def write_pictures(name: str, fps: float, result: LabelResult, outputs: Outputs, has_labels: bool,
                   body_levels: Sequence[tuple[str, str]]) -> None:
    """``KEY.heatmap.png`` (joints × time, heat scaled as on the clip) and ``KEY.timeline.png``;
    ``name``: the video's name in the titles."""
    from pipelines.drawing import figures

    n = len(result.frame_heat)
    source = figures.heat_name(result.heat_source)
    heatmap = figures.joint_heatmap(normalise_heat(result.frame_heat), fps, 0, LAYOUT, result.heat_source,
                                    vmax=1.0, title=f"{name} · per-joint {source}")
    timeline = figures.timeline(n / fps, result.segments, result.windows, result.motion_energy.sum(axis=1), fps,
                                note=None if has_labels else NO_LABELS_NOTE,
                                title=f"{name} · micro-actions over time", body_levels=list(body_levels),
                                region_motion=result.region_series(LAYOUT))
    for picture, path in ((heatmap, outputs.heatmap), (timeline, outputs.timeline)):
        with atomic_path(path) as tmp:
            picture.save(tmp)


def export_clip(job: VideoJob, fps: float, skel: Skeleton, result: LabelResult, outputs: Outputs,
                has_labels: bool, progress: ProgressFactory, preset: str, size: str = "full") -> None:
    """``KEY.annotated.mp4``: the video with the skeleton, heat, top-3 and timeline drawn;
    ``size``: ``"full"`` or ``"half"`` (:data:`pipelines.drawing.render.CLIP_SIZES`)."""
    from pipelines.drawing.render import render_annotated_clip
    from pose.video import iter_frames, prefetch

    n = skel.keypoints.shape[0]
    heat = normalise_heat(result.frame_heat)
    colours = np.array([BODY_LEVEL_COLOURS_BGR[b % len(BODY_LEVEL_COLOURS_BGR)] if b >= 0 else NO_LABEL_BGR
                        for b in result.frame_body], np.uint8)
    annotations = [FrameAnnotation(lines) for lines in result.frame_top]
    with progress(n, f"render {job.key}") as bar:
        frames = prefetch(frame for _, _, frame in iter_frames(job.path))  # decode ahead of drawing
        render_annotated_clip(frames, outputs.clip, fps=fps, keypoints=skel.keypoints, scores=skel.scores, heat=heat,
                              annotations=annotations, timeline_colours=colours,
                              energy=result.motion_energy.sum(axis=1),
                              banner=None if has_labels else NO_LABELS_NOTE, layout=LAYOUT, preset=preset,
                              size=size, progress=bar.update)


def run_media_stage(stage: str, job: VideoJob, path: Path, run: Callable[[], None]) -> None:
    """Run a drawing stage (``pictures``, ``render``) with its failures as StageError: a
    video error, a file that cannot be written at ``path`` (a full disk, a removed folder;
    PyAV's I/O errors are OSErrors too), an encoder or drawing failure."""
    from pose.video import VideoError

    try:
        run()
    except VideoError as e:
        raise StageError(stage, str(e)) from None
    except OSError as e:
        raise write_error(stage, path, e) from e
    except Exception as e:  # an encoder or drawing failure must not end the folder job
        raise StageError(stage, f"{job.path}: {type(e).__name__}: {e}") from e


def write_motion_table(result: LabelResult, fps: float, path: Path) -> None:
    """``KEY.motion.csv`` (:mod:`pipelines.formats.motion`); stage ``labels``."""
    try:
        atomic_write_text(path, motion_csv_text(result.motion_energy, result.region_motion, fps, LAYOUT))
    except OSError as e:
        raise write_error("labels", path, e) from e


def write_annotations(doc: Mapping[str, object], video: Path, outputs: Outputs, opts: JobOptions,
                      taxonomy: Taxonomy | None) -> list[EditReport]:
    """``KEY.events.csv`` (always) and ``KEY.eaf`` (with ``opts.elan``, linking ``video``, by
    its name only with ``opts.link_video_by_name``, with a ``to review`` tier marking the
    ``opts.review_top`` least certain windows) from the labels document. A file a person
    edited since the job wrote it is merged, never overwritten (:mod:`pipelines.formats.user_edits`);
    returns what each merge kept. Raises :class:`StageError` (stage ``annotations``)."""
    from pipelines.evaluation.review import least_certain, review_items, review_marks
    from pipelines.formats.elan import add_review_tier, build_eaf, eaf_text
    from pipelines.formats.elan_merge import merge_eaf
    from pipelines.formats.events import events_csv_text
    from pipelines.formats.spans import AnnotationError
    from pipelines.formats.user_edits import merge_csv_rows, write_keeping_edits

    path = outputs.events
    try:
        reports = [write_keeping_edits(path, events_csv_text(doc), merge_csv_rows)]
        if opts.elan:
            path = outputs.eaf
            eaf = build_eaf(doc, path, video, taxonomy=taxonomy, absolute_link=not opts.link_video_by_name)
            add_review_tier(eaf, review_marks(least_certain(review_items(doc), opts.review_top)))
            reports.append(write_keeping_edits(path, eaf_text(eaf), merge_eaf))
    except AnnotationError as e:  # a person's edited file that cannot be read: left as it is
        raise StageError("annotations", f"{e}; the file is left as it is: repair it (or move it away) and "
                                        f"rerun") from None
    except OSError as e:
        raise write_error("annotations", path, e) from e
    except Exception as e:  # a writer's failure must not end the folder job
        raise StageError("annotations", f"{path}: {type(e).__name__}: {e}") from e
    return [r for r in reports if r is not None]


def write_labels(doc: Mapping[str, object], path: Path) -> None:
    """``KEY.labels.json``, last: it marks the video done; stage ``labels``."""
    try:
        atomic_write_text(path, json.dumps(doc, indent=1))
    except OSError as e:
        raise write_error("labels", path, e) from e


def write_media(job: VideoJob, fps: float, skel: Skeleton, result: LabelResult, taxonomy: Taxonomy | None,
                opts: JobOptions, outputs: Outputs, progress: ProgressFactory) -> dict[str, float]:
    """The pictures (``opts.pictures``) and the annotated clip (``opts.export_clips``);
    ``taxonomy``: the model's, None without labels. Returns the seconds of each."""
    has_labels = taxonomy is not None
    body_levels = [] if taxonomy is None or taxonomy.body_levels is None else list(taxonomy.body_levels)
    name = opts.display_name or job.path.name
    seconds: dict[str, float] = {}
    for stage, enabled, path, run in (
            ("pictures", opts.pictures, opts.out,
             lambda: write_pictures(name, fps, result, outputs, has_labels, body_levels)),
            ("render", opts.export_clips, outputs.clip,
             lambda: export_clip(job, fps, skel, result, outputs, has_labels, progress, opts.clip_preset,
                                 opts.clip_size))):
        if enabled:
            t0 = time.perf_counter()
            run_media_stage(stage, job, path, run)
            seconds[stage] = time.perf_counter() - t0
    return seconds


def write_document_outputs(job: VideoJob, doc: Mapping[str, object], result: LabelResult, fps: float,
                           taxonomy: Taxonomy | None, opts: JobOptions, outputs: Outputs) -> dict[str, object]:
    """What is made from the labels document, then the document itself (last): the motion
    table, the events table and ``.eaf``, ``KEY.labels.json``. Returns the document as
    written: with ``kept_edits`` (what each merge of a person's edited file kept) where any."""
    write_motion_table(result, fps, outputs.motion)
    video = Path(opts.display_name) if opts.display_name else job.path
    reports = write_annotations(doc, video, outputs, opts, taxonomy)
    if reports:
        doc = {**doc, "kept_edits": [r.describe() for r in reports]}
    write_labels(doc, outputs.labels)
    return dict(doc)
