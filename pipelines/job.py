"""One video's job as a library: the stages composed, and when a video is finished.

    opts = JobOptions(out=Path("labels"))
    doc = process_video(VideoJob(path, key), opts, recognizer)   # raises StageError

:func:`process_video` runs the stages of :mod:`pipelines.stages` in order: probe → pose →
windows → classify → label → pictures and clip → labels document → motion and events tables,
``.eaf`` → labels JSON. :func:`run_video` adds the resume and failure bookkeeping
(:func:`triage` before, :func:`record_failure` after); the engines
(:mod:`pipelines.engines`) run it over many videos. Per video (``KEY``, see
:mod:`pipelines.discovery`), each written atomically (:mod:`core.atomic`):

- ``KEY.skeleton.h5``: the 44-joint track (docs/skeleton-file.md);
- ``KEY.labels.json``: windows, top-k, merged segments, heat summary and the ``job`` record
  (schema ``pipelines/formats/labels.schema.json``); written last, so it marks the video done;
- ``KEY.motion.csv``: per frame, each body part's heat and pixel motion;
- ``KEY.heatmap.png``, ``KEY.timeline.png`` (``pictures``); ``KEY.annotated.mp4``
  (``export_clips``);
- ``KEY.events.csv``: one row per segment (:mod:`pipelines.formats.events`); ``KEY.eaf``: the labels
  as ELAN tiers with the video linked (``elan``, :mod:`pipelines.formats.elan`);
- ``KEY.failed.json`` instead of all of those for a video that failed: stage, reason, and the
  file's size and modification time, so an unchanged broken file is not retried.

A video is finished when its labels document's ``job`` record (input fingerprint and every
result-relevant option: pose backend and smoothing, checkpoints' sha256, window, stride,
threshold, top-k, heat map, which outputs) equals the record this run would write, and all
its outputs exist. Anything else is redone, reusing the skeleton file when its pose inputs
(fingerprint, backend, smoothing) are unchanged.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from pipelines.discovery import VideoJob
from pipelines.formats.user_edits import forget, removable
from pipelines.options import JobOptions, Outputs, option_default
from pipelines.stages.classify import Classifier, ModelInfo
from pipelines.stages.document import assemble_document
from pipelines.stages.errors import StageError
from pipelines.stages.labelling import LabelResult
from pipelines.stages.model import classify_stage, label_stage, windows_stage
from pipelines.stages.pose import LAYOUT, PoseOptions, SharedEstimator, pose_record, skeleton_stage
from pipelines.stages.probe import input_fingerprint, probe
from pipelines.stages.progress import ProgressFactory, tqdm_frames
from pipelines.stages.write import write_document_outputs, write_media
from pose.skeleton_file import Skeleton
from pose.video import VideoInfo

__all__ = ["LAYOUT", "JobOptions", "JobRecord", "Outputs", "PoseOptions", "ProgressFactory", "SharedEstimator",
           "StageError", "VideoJob", "VideoOutcome", "finished_document", "job_record", "known_failure",
           "option_default", "probe_and_record", "process_video", "record_failure", "run_video", "tqdm_frames",
           "triage"]

# the model-free heat (pipelines.stages.motion_energy): 2 = movement above the estimator's noise;
# 3 = the noise measured over the displacement's own span, joints outside the frame still
HEAT_VERSION = 3
JobRecord = dict[str, Any]  # JSON: the labels document's ``job``


# --------------------------------------------------------------------------- what finished means


def job_record(job: VideoJob, opts: JobOptions, classifier: Classifier | None) -> JobRecord:
    """Everything the results of ``job`` depend on (stored as the labels document's ``job``)."""
    return {
        "input": input_fingerprint(job.path),
        "pose": pose_record(opts.pose),
        "labels": {"checkpoints": [s.meta.sha256 for s in classifier.streams] if classifier is not None else [],
                   "window_s": opts.windows.window, "stride_s": opts.windows.stride, "threshold": opts.threshold,
                   "top_k": opts.top_k, "heatmap": opts.heatmap if classifier is not None else None,
                   "model_free_heat": HEAT_VERSION},
        "outputs": {"pictures": opts.pictures, "clip": opts.export_clips,
                    "clip_size": opts.clip_size if opts.export_clips else None, "elan": opts.elan,
                    "review_top": opts.review_top if opts.elan else None},
    }


def _json_equal(a: object, b: object) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def finished_document(outputs: Outputs, opts: JobOptions, record: Mapping[str, object]) -> dict[str, Any] | None:
    """The labels document when the video is finished under ``record``, else None."""
    if not all(p.is_file() for p in outputs.expected(opts)):
        return None
    try:
        doc = json.loads(outputs.labels.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and _json_equal(doc.get("job"), record) else None


def _file_stat(path: Path) -> dict[str, int] | None:
    try:
        st = path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return None


def record_failure(job: VideoJob, outputs: Outputs, error: StageError, opts: JobOptions) -> None:
    """Write ``KEY.failed.json`` in place of the video's other outputs (removed, except an
    annotation file a person edited: :func:`pipelines.formats.user_edits.removable`). A full
    disk is not an error here: the failure is still reported in the run's tables."""
    annotations = (outputs.events, outputs.eaf)
    for p in [p for p in outputs.all() if p not in annotations + (outputs.failed,)] + removable(annotations):
        try:
            p.unlink(missing_ok=True)
        except OSError:  # a folder where an output goes: not the job's, left as it is
            continue
        forget(p)
    doc = {"file": str(job.path), "stage": error.stage, "reason": str(error), "fingerprint": _file_stat(job.path),
           "pose": pose_record(opts.pose)}
    try:
        atomic_write_text(outputs.failed, json.dumps(doc, indent=1))
    except OSError:
        pass


def known_failure(job: VideoJob, outputs: Outputs, opts: JobOptions) -> StageError | None:
    """The recorded failure of this file if neither it nor the pose options changed since."""
    try:
        doc = json.loads(outputs.failed.read_text(encoding="utf-8"))
        if doc.get("fingerprint") == _file_stat(job.path) and _json_equal(doc.get("pose"), pose_record(opts.pose)):
            return StageError(doc["stage"], doc["reason"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return None


# --------------------------------------------------------------------------- the stages composed


def probe_and_record(job: VideoJob, opts: JobOptions, classifier: Classifier | None,
                     record: Mapping[str, object] | None = None) -> tuple[VideoInfo, JobRecord]:
    """Stage 1: the video's :class:`pose.video.VideoInfo` and its job record (``record`` when
    given); raises :class:`StageError` (stage ``probe``)."""
    info = probe(job)
    try:
        return info, dict(record) if record is not None else job_record(job, opts, classifier)
    except OSError as e:
        raise StageError("probe", f"{job.path}: {e.strerror or e}") from None


def process_video(job: VideoJob, opts: JobOptions, classifier: Classifier | None = None,
                  progress: ProgressFactory = tqdm_frames,
                  on_result: Callable[[Skeleton, LabelResult], None] | None = None,
                  estimator: SharedEstimator | None = None,
                  record: Mapping[str, object] | None = None) -> dict[str, Any]:
    """Run one video end to end (module doc); returns its labels document, written last to
    ``KEY.labels.json``. Raises :class:`StageError` naming the stage (probe, decode, pose,
    model, pictures, render, annotations, labels) for anything that goes wrong with this
    video, a full disk included. ``classifier``: a :class:`mmn.Recognizer` or None (no
    labels). ``on_result(skeleton, label_result)`` is called once the windows are labelled.
    ``estimator`` shares one pose model across videos (default: one per call). ``record``:
    the :func:`job_record` (computed here when not given)."""
    outputs = Outputs.for_key(opts.out, job.key)
    outputs.clean_leftovers()
    t0 = time.perf_counter()
    info, record = probe_and_record(job, opts, classifier, record)
    skel = skeleton_stage(job, outputs.skeleton, opts.pose, record, frames_hint=info.frame_count, progress=progress,
                          estimator=estimator, reuse=not opts.overwrite, max_frames=opts.max_frames)
    timing = {"pose": time.perf_counter() - t0}
    fps, t1 = float(info.fps), time.perf_counter()
    windows = windows_stage(skel, fps, opts)
    scores = classify_stage(job, skel, windows, opts, classifier) if classifier is not None else None
    taxonomy = classifier.taxonomy if classifier is not None else None
    result = label_stage(job, skel, fps, windows, opts, taxonomy, scores)
    timing["model"] = time.perf_counter() - t1
    if on_result is not None:
        on_result(skel, result)
    timing.update(write_media(job, fps, skel, result, taxonomy, opts, outputs, progress))
    timing["total"] = time.perf_counter() - t0
    model = ModelInfo.of(classifier) if classifier is not None else None
    doc = assemble_document(job, info, skel, windows, result, model, opts, outputs, record, timing)
    return write_document_outputs(job, doc, result, fps, taxonomy, opts, outputs)


# --------------------------------------------------------------------------- with the bookkeeping


@dataclass(frozen=True)
class VideoOutcome:
    """What :func:`run_video` did: ``status`` is ``"done"``, ``"already done"`` or ``"failed"``;
    ``doc`` the labels document (None when failed), ``error`` the failure (None otherwise)."""

    job: VideoJob
    status: str
    doc: dict[str, Any] | None = None
    error: StageError | None = None
    known: bool = False  # a failure recorded by an earlier run for this unchanged file


def triage(job: VideoJob, opts: JobOptions, classifier: Classifier | None = None, *,
           retry_failed: bool = False) -> VideoOutcome | JobRecord:
    """What any engine decides before processing a video: its outcome when there is nothing
    to do (finished; an unchanged earlier failure, unless ``retry_failed`` or
    ``opts.overwrite``; unreadable), else its :func:`job_record`, with the old failure
    record removed."""
    outputs = Outputs.for_key(opts.out, job.key)
    try:
        record = job_record(job, opts, classifier)
    except OSError as e:
        return VideoOutcome(job, "failed", error=StageError("probe", f"{job.path}: {e.strerror or e}"))
    if not opts.overwrite:
        doc = finished_document(outputs, opts, record)
        if doc is not None:
            return VideoOutcome(job, "already done", doc)
        known = None if retry_failed else known_failure(job, outputs, opts)
        if known is not None:
            return VideoOutcome(job, "failed", error=known, known=True)
    outputs.failed.unlink(missing_ok=True)
    return record


def run_video(job: VideoJob, opts: JobOptions, classifier: Classifier | None = None, *, retry_failed: bool = False,
              progress: ProgressFactory = tqdm_frames, estimator: SharedEstimator | None = None) -> VideoOutcome:
    """One video with the folder job's bookkeeping (:func:`triage`), then processed, a failure
    recorded as ``KEY.failed.json``. Never raises StageError."""
    record = triage(job, opts, classifier, retry_failed=retry_failed)
    if isinstance(record, VideoOutcome):
        return record
    outputs = Outputs.for_key(opts.out, job.key)
    try:
        doc = process_video(job, opts, classifier, progress, estimator=estimator, record=record)
    except StageError as e:
        record_failure(job, outputs, e, opts)
        return VideoOutcome(job, "failed", error=e)
    return VideoOutcome(job, "done", doc)
