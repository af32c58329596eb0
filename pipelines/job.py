"""One video's job as a library: options, outputs, processing, and when it is finished.

    opts = JobOptions(out=Path("labels"))
    doc = process_video(VideoJob(path, key), opts, recognizer)   # raises StageError

The folder CLI (:mod:`pipelines.video_to_labels`), the web app and any other engine call
:func:`process_video` (or :func:`run_video`, which adds the resume and failure bookkeeping)
and nothing of the CLI. Per video (``KEY``, see :mod:`pipelines.discovery`), each written
atomically (:mod:`core.atomic`):

- ``KEY.skeleton.h5``: the 44-joint track (docs/skeleton-file.md);
- ``KEY.labels.json``: windows, top-k, merged segments, heat summary and the ``job`` record
  (schema ``pipelines/formats/labels.schema.json``); written last, so it marks the video done;
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

import errno
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from core.atomic import atomic_path, atomic_write_text, remove_stale_parts
from core.csv_table import csv_text
from core.hashing import MIB, sha256_file
from core.layouts import MA52_44
from mmn.model import MAP_NAMES
from mmn.preprocess import CLIP_LEN
from pipelines.discovery import VideoJob
from pipelines.drawing.render import BODY_LEVEL_COLOURS_BGR, CLIP_PRESETS, NO_LABEL_BGR, FrameAnnotation
from pipelines.formats.labels_doc import NO_LABELS_NOTE, labels_document, windowing_section
from pipelines.stages.labelling import LabelResult, label_track
from pipelines.stages.motion_energy import normalise_heat
from pipelines.stages.windowing import make_windows
from pose.estimators import BACKENDS as POSE_BACKENDS
from pose.postprocess import SmoothingConfig

__all__ = ["JobOptions", "Outputs", "ProgressFactory", "SharedEstimator", "StageError", "VideoJob", "VideoOutcome",
           "finished_document", "iter_outcomes", "job_record", "known_failure", "option_default", "process_video",
           "record_failure", "region_series", "run_video", "skeleton_stage", "tqdm_frames", "triage"]

ProgressFactory = Callable[[int, str], Any]  # (total, description) -> context manager with .update(n)
LAYOUT = MA52_44  # the pose stage makes MA-52 skeletons; checkpoints must read them
REGION_MOTION_VERSION = 1  # pixel motion per body part measured in the pose pass (skeletons before it: redone)
HEAT_VERSION = 2  # the model-free heat: 2 = movement above the estimator's noise (pipelines.stages.motion_energy)


@dataclass(frozen=True)
class JobOptions:
    """How videos are processed (the CLI flags of the same names; the app fills it too).
    Every value is checked here, so a bad option fails before any work."""

    out: Path
    pose_backend: str = "mediapipe"
    pose_options: dict = field(default_factory=dict)
    smoothing: str | dict = "savgol"  # a method of SMOOTHING_METHODS, or SmoothingConfig fields
    window: float = 2.0               # seconds; ≈ an MA-52 clip
    stride: float = 0.5               # seconds
    threshold: float = 0.5            # min top-1 probability for a window to join a segment
    top_k: int = 5
    heatmap: str = "msm_gamma"        # modulation map drawn as heat (with a checkpoint)
    batch_size: int = 64              # windows per MMN batch
    export_clips: bool = False
    clip_preset: str = "veryfast"
    pictures: bool = True             # KEY.heatmap.png and KEY.timeline.png
    elan: bool = False                # KEY.eaf (ELAN); KEY.events.csv is always written
    overwrite: bool = False
    max_frames: int | None = None     # refuse longer videos (the app bounds work with it)

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        need(self.window > 0, f"window must be positive (seconds), got {self.window}")
        need(self.stride > 0, f"stride must be positive (seconds), got {self.stride}")
        need(0.0 <= self.threshold <= 1.0, f"threshold must lie in [0, 1], got {self.threshold}")
        need(self.top_k >= 1, f"top_k must be at least 1, got {self.top_k}")
        need(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")
        need(self.heatmap in MAP_NAMES, f"heatmap must be one of {', '.join(MAP_NAMES)}, got {self.heatmap!r}")
        need(self.pose_backend in POSE_BACKENDS,
             f"pose_backend must be one of {', '.join(POSE_BACKENDS)}, got {self.pose_backend!r}")
        need(self.clip_preset in CLIP_PRESETS, f"clip_preset must be one of {', '.join(CLIP_PRESETS)}")
        need(self.max_frames is None or self.max_frames >= 1, f"max_frames must be ≥ 1, got {self.max_frames}")
        self.smoothing_config()  # raises ValueError for an unknown method or bad fields

    def smoothing_config(self) -> SmoothingConfig:
        try:
            return SmoothingConfig.from_any(self.smoothing)
        except TypeError as e:
            raise ValueError(str(e)) from None


def option_default(name: str) -> Any:
    """The default of a :class:`JobOptions` field (the CLI's and the app's defaults)."""
    return next(f.default for f in fields(JobOptions) if f.name == name)



@dataclass(frozen=True)
class Outputs:
    """The files of one video in the output folder."""

    skeleton: Path
    labels: Path
    heatmap: Path
    timeline: Path
    clip: Path
    failed: Path
    motion: Path
    events: Path                      # KEY.events.csv: one row per segment (always)
    eaf: Path                         # KEY.eaf: ELAN tiers (with JobOptions.elan)

    @classmethod
    def for_key(cls, out_dir: Path, key: str) -> Outputs:
        return cls(out_dir / f"{key}.skeleton.h5", out_dir / f"{key}.labels.json", out_dir / f"{key}.heatmap.png",
                   out_dir / f"{key}.timeline.png", out_dir / f"{key}.annotated.mp4", out_dir / f"{key}.failed.json",
                   out_dir / f"{key}.motion.csv", out_dir / f"{key}.events.csv", out_dir / f"{key}.eaf")

    def all(self) -> tuple[Path, ...]:
        return (self.skeleton, self.labels, self.heatmap, self.timeline, self.clip, self.failed, self.motion,
                self.events, self.eaf)

    def expected(self, opts: JobOptions) -> tuple[Path, ...]:
        """The files a finished video has under ``opts``."""
        return ((self.labels, self.skeleton, self.motion) + ((self.heatmap, self.timeline) if opts.pictures else ())
                + ((self.clip,) if opts.export_clips else ()) + (self.events,) + ((self.eaf,) if opts.elan else ()))

    def clean_leftovers(self) -> int:
        """Delete this video's temporary files from an interrupted run (only this video's)."""
        return remove_stale_parts(self.all())


class StageError(RuntimeError):
    """A video failed at ``stage``; the message is the reason written to failures.csv."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage

    @property
    def disk_full(self) -> bool:
        return isinstance(self.__cause__, OSError) and self.__cause__.errno == errno.ENOSPC


def tqdm_frames(total: int, desc: str):
    """Default per-stage progress: a second tqdm bar under the videos bar."""
    return tqdm(total=total, desc=desc, unit="frame", position=1, leave=False, dynamic_ncols=True)


class SharedEstimator:
    """One pose estimator for many videos, created on first use (a run whose videos are all
    done never loads a pose model) and closed by :meth:`close`."""

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        self.backend, self.options, self._est = backend, dict(options), None

    def get(self):
        if self._est is None:
            from pose.estimators import create_estimator
            self._est = create_estimator(self.backend, **self.options)
        return self._est

    def close(self) -> None:
        if self._est is not None:
            self._est.close()
            self._est = None


# --------------------------------------------------------------------------- what finished means


def input_fingerprint(path: Path) -> dict[str, Any]:
    """Size and sha256 of the first MiB: what identifies a video's content for resuming."""
    return {"size": path.stat().st_size, "sha256_first_mib": sha256_file(path, MIB)}


def pose_record(opts: JobOptions) -> dict[str, Any]:
    return {"backend": opts.pose_backend, "options": {k: str(v) for k, v in sorted(opts.pose_options.items())},
            "smoothing": opts.smoothing_config().to_dict(), "region_motion": REGION_MOTION_VERSION}


def job_record(job: VideoJob, opts: JobOptions, recognizer: Any) -> dict[str, Any]:
    """Everything the results of ``job`` depend on (stored as the labels document's ``job``)."""
    return {
        "input": input_fingerprint(job.path),
        "pose": pose_record(opts),
        "labels": {"checkpoints": [m.meta.sha256 for m in recognizer.streams] if recognizer is not None else [],
                   "window_s": opts.window, "stride_s": opts.stride, "threshold": opts.threshold,
                   "top_k": opts.top_k, "heatmap": opts.heatmap if recognizer is not None else None,
                   "model_free_heat": HEAT_VERSION},
        "outputs": {"pictures": opts.pictures, "clip": opts.export_clips, "elan": opts.elan},
    }


def _json_equal(a: Any, b: Any) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def finished_document(outputs: Outputs, opts: JobOptions, record: Mapping[str, Any]) -> dict[str, Any] | None:
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
    """Write ``KEY.failed.json`` in place of the video's other outputs (removed). A full disk
    is not an error here: the failure is still reported in the run's tables."""
    for p in outputs.all():
        if p != outputs.failed:
            p.unlink(missing_ok=True)
    doc = {"file": str(job.path), "stage": error.stage, "reason": str(error), "fingerprint": _file_stat(job.path),
           "pose": pose_record(opts)}
    try:
        atomic_write_text(outputs.failed, json.dumps(doc, indent=1))
    except OSError:
        pass


def known_failure(job: VideoJob, outputs: Outputs, opts: JobOptions) -> StageError | None:
    """The recorded failure of this file if neither it nor the pose options changed since."""
    try:
        doc = json.loads(outputs.failed.read_text(encoding="utf-8"))
        if doc.get("fingerprint") == _file_stat(job.path) and _json_equal(doc.get("pose"), pose_record(opts)):
            return StageError(doc["stage"], doc["reason"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return None


# --------------------------------------------------------------------------- the stages


def _io_error(stage: str, path: Path, e: OSError) -> StageError:
    err = StageError(stage, f"{path}: cannot write ({e.strerror or e})")
    err.__cause__ = e
    return err


def load_or_extract_skeleton(job: VideoJob, outputs: Outputs, opts: JobOptions, pose_key: Mapping[str, Any],
                             frames_hint: int, progress: ProgressFactory,
                             estimator: SharedEstimator | None) -> Any:
    """The skeleton file when it was made from the same input with the same pose options,
    else a new extraction written to ``KEY.skeleton.h5``."""
    from pose.extract import extract_skeleton
    from pose.skeleton_file import SkeletonFileError, read_skeleton, write_skeleton

    if outputs.skeleton.is_file() and not opts.overwrite:
        try:
            skel = read_skeleton(outputs.skeleton)
            if _json_equal(skel.meta.get("job_pose"), pose_key):
                return skel
        except SkeletonFileError:
            pass  # unreadable leftovers are redone
    with progress(frames_hint, f"pose {job.key}") as bar:
        kwargs = dict(smoothing=opts.smoothing_config(), progress=bar, max_frames=opts.max_frames)
        if estimator is not None:
            skel = extract_skeleton(job.path, backend=estimator.get(), **kwargs)
        else:
            skel = extract_skeleton(job.path, backend=opts.pose_backend, estimator_options=opts.pose_options or None,
                                    **kwargs)
    skel.meta["job_pose"] = dict(pose_key)
    try:
        write_skeleton(skel, outputs.skeleton)
    except OSError as e:
        raise _io_error("pose", outputs.skeleton, e) from e
    return skel


def skeleton_stage(job: VideoJob, outputs: Outputs, opts: JobOptions, record: Mapping[str, Any], frames_hint: int,
                   progress: ProgressFactory, estimator: SharedEstimator | None) -> Any:
    """The pose stage of any engine: the video's skeleton (a reused file or a new extraction),
    with every failure as a :class:`StageError` (``decode`` for the video, ``pose`` for the
    estimator or anything else, a video without a person included)."""
    from pose.video import VideoError

    pose_key = {"input": record["input"], "pose": record["pose"]}
    try:
        skel = load_or_extract_skeleton(job, outputs, opts, pose_key, frames_hint, progress, estimator)
    except StageError:
        raise
    except VideoError as e:
        raise StageError("decode", str(e)) from None
    except (ValueError, RuntimeError, OSError) as e:
        raise StageError("pose", f"{job.path}: {e}") from None
    except Exception as e:  # a library failing on odd input (cv2.error …) must not end the folder job
        raise StageError("pose", f"{job.path}: {type(e).__name__}: {e}") from None
    present = np.isfinite(skel.keypoints).all(axis=2).any(axis=1)
    if not present.any():
        raise StageError("pose", f"{job.path}: no person detected in any of {len(present)} frames")
    return skel


def motion_csv(result: LabelResult, fps: float, layout: Any) -> str:
    """``KEY.motion.csv``: per frame, each body part's skeleton heat (mean over its joints,
    torso lengths per second) and pixel motion energy (grey levels per pixel; empty where not
    measured or the part is absent)."""
    parts = [name for name, _ in layout.parts]
    heat = result.extras["motion_energy"]
    part_heat = np.stack([heat[:, list(js)].mean(axis=1) for _, js in layout.parts], axis=1)
    pixels = result.extras.get("region_motion")
    cols = [p.replace(" ", "_") for p in parts]
    header = ["frame", "time_s"] + [f"heat_{p}" for p in cols] + [f"pixels_{p}" for p in cols]
    rows = []
    for f in range(len(heat)):
        px = ["" if pixels is None or not np.isfinite(v) else f"{v:.4f}" for v in
              (pixels[f] if pixels is not None else [np.nan] * len(parts))]
        rows.append([f, f"{f / fps:.4f}"] + [f"{v:.5f}" for v in part_heat[f]] + px)
    return csv_text(header, rows)


def write_pictures(job: VideoJob, fps: float, result: LabelResult, outputs: Outputs, has_labels: bool,
                   body_levels: list[tuple[str, str]]) -> None:
    """``KEY.heatmap.png`` (joints × time, heat scaled as on the clip) and ``KEY.timeline.png``."""
    from pipelines.drawing import figures

    n = len(result.frame_heat)
    source = figures.heat_name(result.heat_source)
    heatmap = figures.joint_heatmap(normalise_heat(result.frame_heat), fps, 0, LAYOUT, result.heat_source,
                                    vmax=1.0, title=f"{job.path.name} · per-joint {source}")
    timeline = figures.timeline(n / fps, result.segments, result.windows,
                                result.extras["motion_energy"].sum(axis=1), fps,
                                note=None if has_labels else NO_LABELS_NOTE,
                                title=f"{job.path.name} · micro-actions over time", body_levels=body_levels,
                                region_motion=region_series(result, LAYOUT))
    for picture, path in ((heatmap, outputs.heatmap), (timeline, outputs.timeline)):
        with atomic_path(path) as tmp:
            picture.save(tmp)


def region_series(result: LabelResult, layout: Any) -> dict[str, np.ndarray] | None:
    """Body part → (N,) pixel motion energy per frame, or None where it was not measured."""
    pixels = result.extras.get("region_motion")
    return None if pixels is None else {name: pixels[:, i] for i, (name, _) in enumerate(layout.parts)}


def write_annotations(doc: Mapping[str, Any], video: Path, outputs: Outputs, opts: JobOptions, taxonomy: Any,
                      absolute_link: bool = True) -> None:
    """``KEY.events.csv`` (always) and ``KEY.eaf`` (with ``opts.elan``) from the labels
    document; raises :class:`StageError` (stage ``annotations``). ``absolute_link``: False
    links the video in the .eaf by its name only (files handed to someone else)."""
    from pipelines.formats.elan import write_eaf
    from pipelines.formats.events import write_events_csv

    path = outputs.events
    try:
        write_events_csv(doc, path)
        if opts.elan:
            path = outputs.eaf
            write_eaf(doc, path, video, taxonomy=taxonomy, absolute_link=absolute_link)
    except OSError as e:
        raise _io_error("annotations", path, e) from e
    except Exception as e:  # a writer's failure must not end the folder job
        raise StageError("annotations", f"{path}: {type(e).__name__}: {e}") from e


def export_clip(job: VideoJob, fps: float, skel: Any, result: LabelResult, outputs: Outputs, has_labels: bool,
                progress: ProgressFactory, preset: str) -> None:
    from pipelines.drawing.render import render_annotated_clip
    from pose.video import iter_frames, prefetch

    n = skel.keypoints.shape[0]
    heat = normalise_heat(result.frame_heat)
    colours = np.array([BODY_LEVEL_COLOURS_BGR[b % len(BODY_LEVEL_COLOURS_BGR)] if b >= 0 else NO_LABEL_BGR
                        for b in result.frame_body], np.uint8)
    energy = result.extras["motion_energy"].sum(axis=1)
    annotations = [FrameAnnotation(lines) for lines in result.frame_top]
    with progress(n, f"render {job.key}") as bar:
        frames = prefetch(frame for _, _, frame in iter_frames(job.path))  # decode ahead of drawing
        render_annotated_clip(frames, outputs.clip, fps=fps, keypoints=skel.keypoints, scores=skel.scores, heat=heat,
                              annotations=annotations, timeline_colours=colours, energy=energy,
                              banner=None if has_labels else NO_LABELS_NOTE, layout=LAYOUT, preset=preset,
                              progress=bar.update)


def process_video(job: VideoJob, opts: JobOptions, recognizer: Any = None,
                  progress: ProgressFactory = tqdm_frames,
                  on_result: Callable[[Any, LabelResult], None] | None = None,
                  estimator: SharedEstimator | None = None,
                  record: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run one video end to end (pose → windows → MMN → outputs); returns its labels
    document, written last to ``KEY.labels.json``. Raises :class:`StageError` naming the
    stage (probe, decode, pose, model, pictures, render, annotations, labels) for anything that goes wrong
    with this video, a full disk included. ``recognizer``: a :class:`mmn.Recognizer` or None
    (no labels). ``on_result(skeleton, label_result)`` is called once the windows are
    classified. ``estimator`` shares one pose model across videos (default: one per call).
    ``record``: the :func:`job_record` (computed here when not given)."""
    from pose.video import VideoError, probe_video

    outputs = Outputs.for_key(opts.out, job.key)
    outputs.clean_leftovers()
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        info = probe_video(job.path)
        record = dict(record) if record is not None else job_record(job, opts, recognizer)
    except VideoError as e:
        raise StageError("probe", str(e)) from None
    except OSError as e:
        raise StageError("probe", f"{job.path}: {e.strerror or e}") from None
    skel = skeleton_stage(job, outputs, opts, record, info.frame_count, progress, estimator)
    timing["pose"] = time.perf_counter() - t0

    fps = float(info.fps)
    t1 = time.perf_counter()
    windows = make_windows(len(skel.keypoints), fps, opts.window, opts.stride)
    try:
        result = label_track(skel.keypoints, fps, windows, LAYOUT, recognizer, top_k=opts.top_k,
                             threshold=opts.threshold, heatmap=opts.heatmap, batch_size=opts.batch_size,
                             flags=skel.flags, region_motion=skel.region_motion)
    except (ValueError, RuntimeError) as e:
        raise StageError("model", f"{job.path}: {type(e).__name__}: {e}") from None
    timing["model"] = time.perf_counter() - t1
    if on_result is not None:
        on_result(skel, result)
    body_levels = [] if recognizer is None or recognizer.taxonomy.body_levels is None else \
        list(recognizer.taxonomy.body_levels)
    for stage, enabled, run in (
            ("pictures", opts.pictures,
             lambda: write_pictures(job, fps, result, outputs, recognizer is not None, body_levels)),
            ("render", opts.export_clips,
             lambda: export_clip(job, fps, skel, result, outputs, recognizer is not None, progress, opts.clip_preset))):
        if not enabled:
            continue
        t2 = time.perf_counter()
        try:
            run()
        except VideoError as e:
            raise StageError(stage, str(e)) from None
        except OSError as e:  # a full disk, a removed folder (PyAV's I/O errors are OSErrors too)
            raise _io_error(stage, outputs.clip if stage == "render" else opts.out, e) from e
        except Exception as e:  # an encoder or drawing failure must not end the folder job
            raise StageError(stage, f"{job.path}: {type(e).__name__}: {e}") from e
        timing[stage] = time.perf_counter() - t2
    timing["total"] = time.perf_counter() - t0
    n = int(skel.keypoints.shape[0])
    doc = labels_document(
        video={"file_name": info.file_name, "path": str(job.path), "width": info.width, "height": info.height,
               "fps": fps, "frame_count": n, "duration_s": round(n / fps, 4), "rotation": info.rotation,
               "sha256_first_mib": info.sha256_first_mib},
        pose={"backend": skel.meta.get("backend", {}).get("name", opts.pose_backend),
              "backend_version": skel.meta.get("backend", {}).get("version"),
              "skeleton_file": outputs.skeleton.name, "layout": LAYOUT.name, "subject": skel.meta.get("subject")},
        recognizer=recognizer,
        windowing=windowing_section(windows, fps, opts.window, opts.stride,
                                    recognizer.clip_len if recognizer is not None else CLIP_LEN, opts.threshold),
        result=result, layout=LAYOUT,
        outputs={"skeleton": outputs.skeleton.name, "labels": outputs.labels.name,
                 "heatmap_png": outputs.heatmap.name if opts.pictures else None,
                 "timeline_png": outputs.timeline.name if opts.pictures else None,
                 "annotated_clip": outputs.clip.name if opts.export_clips else None,
                 "events_csv": outputs.events.name, "eaf": outputs.eaf.name if opts.elan else None},
        job=record, timing=timing)
    try:
        atomic_write_text(outputs.motion, motion_csv(result, fps, LAYOUT))
    except OSError as e:
        raise _io_error("labels", outputs.motion, e) from e
    write_annotations(doc, job.path, outputs, opts, recognizer.taxonomy if recognizer is not None else None)
    try:
        atomic_write_text(outputs.labels, json.dumps(doc, indent=1))
    except OSError as e:
        raise _io_error("labels", outputs.labels, e) from e
    return doc


@dataclass(frozen=True)
class VideoOutcome:
    """What :func:`run_video` did: ``status`` is ``"done"``, ``"already done"`` or ``"failed"``;
    ``doc`` the labels document (None when failed), ``error`` the failure (None otherwise)."""

    job: VideoJob
    status: str
    doc: dict[str, Any] | None = None
    error: StageError | None = None
    known: bool = False  # a failure recorded by an earlier run for this unchanged file


def triage(job: VideoJob, opts: JobOptions, recognizer: Any = None, *,
           retry_failed: bool = False) -> VideoOutcome | dict[str, Any]:
    """What any engine decides before processing a video: its outcome when there is nothing
    to do (finished; an unchanged earlier failure, unless ``retry_failed`` or
    ``opts.overwrite``; unreadable), else its :func:`job_record`, with the old failure
    record removed."""
    outputs = Outputs.for_key(opts.out, job.key)
    try:
        record = job_record(job, opts, recognizer)
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


def run_video(job: VideoJob, opts: JobOptions, recognizer: Any = None, *, retry_failed: bool = False,
              progress: ProgressFactory = tqdm_frames, estimator: SharedEstimator | None = None) -> VideoOutcome:
    """One video with the folder job's bookkeeping (:func:`triage`), then processed, a failure
    recorded as ``KEY.failed.json``. Never raises StageError."""
    record = triage(job, opts, recognizer, retry_failed=retry_failed)
    if isinstance(record, VideoOutcome):
        return record
    outputs = Outputs.for_key(opts.out, job.key)
    try:
        doc = process_video(job, opts, recognizer, progress, estimator=estimator, record=record)
    except StageError as e:
        record_failure(job, outputs, e, opts)
        return VideoOutcome(job, "failed", error=e)
    return VideoOutcome(job, "done", doc)


def iter_outcomes(jobs: list[VideoJob], opts: JobOptions, recognizer: Any = None, *, retry_failed: bool = False,
                  progress: ProgressFactory = tqdm_frames) -> Iterator[VideoOutcome]:
    """:func:`run_video` over ``jobs`` with one shared pose estimator (closed at the end)."""
    estimator = SharedEstimator(opts.pose_backend, opts.pose_options)
    try:
        for job in jobs:
            yield run_video(job, opts, recognizer, retry_failed=retry_failed, progress=progress, estimator=estimator)
    finally:
        estimator.close()
