"""The folder job on Ray Data: every core of a workstation, every node of a cluster, the GPU
where there is one (``python -m pipelines.video_to_labels ... --engine ray``).

The driver does what the local engine does before it processes a video — job record,
"finished?", "failed before and unchanged?" (:func:`pipelines.job.triage`) — and submits only
the videos left. Each travels as one :class:`VideoRow` (a frozen dataclass, pickled) through
three Ray Data operators, each sized for what it uses and each calling the stage functions
of :mod:`pipelines.stages`, the same as :func:`pipelines.job.process_video` calls them:

1. **pose** — an actor pool (``--pose-actors N``, ``--pose-cpus C`` each), one pose estimator
   per actor: :func:`~pipelines.stages.probe.probe`, then
   :func:`~pipelines.stages.pose.skeleton_stage` (a finished skeleton file is reused). Frames
   are decoded inside the actor and never leave it; the video's facts and its 44-joint
   skeleton go on through the object store.
2. **model** — an actor pool for MMN (``--mmn-actors``, ``--mmn-cpus``; ``num_gpus`` when the
   cluster has GPUs) that classifies each video's usable windows
   (:func:`~pipelines.stages.model.classify_stage`). Each video's windows go through MMN in
   chunks of ``--batch-size`` exactly as locally: mixing windows of several videos in one
   batch moves probabilities by ~2e-7 (measured: float32 kernels block differently by batch
   size), so the results would depend on which videos met in a call.
   ``--mmn-batch-across-videos`` does mix them (8 videos per call: fuller batches on a GPU for
   short clips) at that cost. Only the window scores travel on (the one heat map drawn).
3. **write** — tasks that label the track (:func:`~pipelines.stages.model.label_stage`, with
   the motion heat), draw the pictures and the clip, assemble the labels document and write
   each output once, the labels JSON last (:mod:`pipelines.stages.write`). The labels
   document comes back to the driver, which keeps the same run tables
   (:class:`pipelines.formats.tables.RunTables`) and adds ``stages.csv``: per video, the node
   and the seconds of each stage.

Failures: every per-video error is caught inside the operator and travels in the row, so a
bad video is a failure row (``KEY.failed.json``, ``failures.csv``) and never aborts the
dataset. A worker that dies (a crash, the OOM killer) is restarted and its video retried
once (``max_task_retries=1``); a video whose worker dies again is dropped by Ray Data
(``max_errored_blocks=-1``), and the driver, which reconciles the videos it submitted
against the keys that came back, records it with stage ``worker`` after removing its
temporary files. Actors are restarted without limit (``max_restarts=-1``): Ray Data 2.60 never
replaces an actor whose restarts are used up, so a bounded count left a one-actor pool
waiting forever (measured); the work stays bounded because each video is tried at most twice.

Determinism: Ray sets ``OMP_NUM_THREADS`` from an actor's ``num_cpus``, so torch would run
with another thread count than the local engine; every stage pins torch's and OpenCV's
thread counts to the driver's, and the labels JSON equals the local engine's apart from
``timing_s``, whatever the number of actors.

A local Ray (no ``--ray-address`` and no ``RAY_ADDRESS``) binds to 127.0.0.1 only and starts
no dashboard (:mod:`pipelines.engines.ray_cluster`). Joining a cluster ships the project's
packages (``core``, ``pose``, ``mmn``, ``pipelines``) to the workers; the input and output
folders must be on a filesystem every node sees at the same path.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import pickle
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from core.atomic import atomic_write_text
from core.csv_table import csv_text
from pipelines.discovery import VideoJob
from pipelines.engines.flags import RaySettings, add_engine_arguments, ray_data_installed, ray_settings
from pipelines.engines.ray_cluster import (
    Plan,
    PlanError,
    RaySession,
    check_ray_address,
    cluster_size,
    keep_ray_on_loopback,
    plan_stages,
)
from pipelines.job import JobOptions, JobRecord, Outputs, StageError, VideoOutcome, record_failure, triage
from pipelines.stages import pose as stage_pose
from pipelines.stages.classify import Classifier, ModelInfo, WindowScores, model_clips, scores_of, usable_windows
from pipelines.stages.document import assemble_document
from pipelines.stages.model import classify_stage, label_stage, windows_stage
from pipelines.stages.probe import probe
from pipelines.stages.progress import silent_progress
from pipelines.stages.write import write_document_outputs, write_media
from pose.skeleton_file import Skeleton
from pose.video import VideoInfo

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["ModelStage", "PlanError", "PoseStage", "RaySettings", "RowError", "VideoRow", "add_engine_arguments",
           "check_ray_address", "driver_threads", "iter_ray_outcomes", "keep_ray_on_loopback", "outcomes_from_args",
           "plan_stages", "ray_data_installed", "write_stage"]

MAX_TASK_RETRIES = 1          # a video whose worker died is tried once more, then recorded (stage "worker")
WRITER_RETRIES = 1            # the same for the write tasks
STAGES_HEADER = ["video", "status", "pose_node", "model_node", "write_node", "pose_s", "model_s", "write_s",
                 "pose_start_unix", "end_unix"]


# --------------------------------------------------------------------------- what travels


@dataclasses.dataclass(frozen=True)
class RowError:
    """A video's failure as it travels: a :class:`StageError`'s stage and reason, and the
    errno of its OSError cause (a full disk keeps it, so the driver stops as locally)."""

    stage: str
    reason: str
    errno: int | None = None

    @classmethod
    def of(cls, e: StageError) -> RowError:
        return cls(e.stage, str(e), getattr(e.__cause__, "errno", None))

    def stage_error(self) -> StageError:
        err = StageError(self.stage, self.reason)
        if self.errno is not None:
            err.__cause__ = OSError(self.errno, os.strerror(self.errno))
        return err


@dataclasses.dataclass(frozen=True)
class VideoRow:
    """One video between the Ray operators: what the driver submits (``job``, ``record``),
    then what each operator adds (``info`` and ``skeleton``; ``scores`` and ``device``;
    ``doc``), or the ``error`` that ends it; and per operator, its node and seconds."""

    job: VideoJob
    record: JobRecord
    info: VideoInfo | None = None
    skeleton: Skeleton | None = None
    scores: WindowScores | None = None
    device: str | None = None                # where the model stage ran
    doc: dict[str, Any] | None = None        # the labels document, written
    error: RowError | None = None
    pose_node: str = ""
    model_node: str = ""
    write_node: str = ""
    pose_s: float | None = None
    model_s: float | None = None
    write_s: float | None = None
    pose_start: float | None = None          # unix time
    end: float | None = None                 # unix time

    def failed(self, stage: str, e: BaseException) -> VideoRow:
        """This row ended by ``e`` (a StageError as it is; anything else as a failure of
        ``stage`` naming the video)."""
        err = RowError.of(e) if isinstance(e, StageError) else RowError(stage, f"{self.job.path}: "
                                                                              f"{type(e).__name__}: {e}")
        return dataclasses.replace(self, error=err)

    def stage_row(self) -> list[object]:
        """Its ``stages.csv`` row."""
        status = "done" if self.error is None else f"failed [{self.error.stage}]"
        seconds = [f"{s:.3f}" if s is not None else "" for s in (self.pose_s, self.model_s, self.write_s)]
        clock = [f"{c:.3f}" if c is not None else "" for c in (self.pose_start, self.end)]
        return [self.job.key, status, self.pose_node, self.model_node, self.write_node] + seconds + clock


def _batch(rows: Sequence[VideoRow]) -> dict[str, np.ndarray]:
    payloads = np.empty(len(rows), dtype=object)
    payloads[:] = [pickle.dumps(r, protocol=5) for r in rows]
    return {"key": np.asarray([r.job.key for r in rows], dtype=object), "payload": payloads}


def _rows(batch: Mapping[str, np.ndarray]) -> list[VideoRow]:
    return [pickle.loads(p) for p in batch["payload"]]


def _pin_threads(threads: tuple[int, int]) -> None:
    """torch's and OpenCV's thread counts as on the driver (Ray sets OMP_NUM_THREADS from
    num_cpus, which would change torch's count and, with it, the last bits of the results)."""
    import cv2
    import torch

    torch_threads, cv2_threads = threads
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


def driver_threads() -> tuple[int, int]:
    import cv2
    import torch

    return torch.get_num_threads(), cv2.getNumThreads()


def _node_id() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray (unit tests): no node
        pass
    return "local"


# --------------------------------------------------------------------------- 1. pose


class PoseStage:
    """Operator 1, one actor per pose estimator: submitted rows in, rows with the video's
    facts and skeleton out."""

    def __init__(self, opts: JobOptions, threads: tuple[int, int]) -> None:
        _pin_threads(threads)
        self.opts = opts
        self.estimator = stage_pose.SharedEstimator(opts.pose)
        self.node = _node_id()

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _batch([self.run(row) for row in _rows(batch)])

    def run(self, row: VideoRow) -> VideoRow:
        t0, start = time.perf_counter(), time.time()
        row = dataclasses.replace(row, pose_node=self.node, pose_start=start)
        outputs = Outputs.for_key(self.opts.out, row.job.key)
        outputs.clean_leftovers()
        try:
            info = probe(row.job)
            skel = stage_pose.skeleton_stage(row.job, outputs.skeleton, self.opts.pose, row.record,
                                             frames_hint=info.frame_count, progress=silent_progress,
                                             estimator=self.estimator, reuse=not self.opts.overwrite,
                                             max_frames=self.opts.max_frames)
        except Exception as e:  # noqa: BLE001 - a bug must be this video's failure, not the dataset's
            row = row.failed("pose", e)
        else:
            row = dataclasses.replace(row, info=info, skeleton=skel)
        return dataclasses.replace(row, pose_s=time.perf_counter() - t0)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.estimator.close()


# --------------------------------------------------------------------------- 2. model


class ModelStage:
    """Operator 2: MMN actors. Each call gets several videos; each video's usable windows are
    classified in its own chunks of ``batch_size``, as locally, unless ``across`` mixes them."""

    def __init__(self, opts: JobOptions, checkpoints: Sequence[bytes], sha256: Sequence[str], device: str,
                 threads: tuple[int, int], across: bool = False) -> None:
        import tempfile

        from mmn.inference import Recognizer

        _pin_threads(threads)
        self.opts, self.across, self.node = opts, across, _node_id()
        with tempfile.TemporaryDirectory() as tmp:  # the checkpoints came through the object store
            paths = []
            for i, data in enumerate(checkpoints):
                paths.append(Path(tmp) / f"stream{i}.pt")
                paths[-1].write_bytes(data)
            self.classifier: Classifier = Recognizer.from_checkpoints(paths[0], paths[1] if len(paths) > 1 else None,
                                                                      device)
        got = [s.meta.sha256 for s in self.classifier.streams]
        if got != list(sha256):
            raise RuntimeError(f"the checkpoints reached the MMN actor changed (sha256 {got} != {list(sha256)})")
        self.device = str(self.classifier.device)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = _rows(batch)
        todo = [i for i, r in enumerate(rows) if r.error is None]
        t0 = time.perf_counter()
        classify = self._classify_together if self.across else self._classify_each
        for i, row in zip(todo, classify([rows[i] for i in todo])):
            rows[i] = row
        per_video = (time.perf_counter() - t0) / max(1, len(todo))
        for i in todo:
            if rows[i].model_s is None:  # classified together: the call's time shared
                rows[i] = dataclasses.replace(rows[i], model_s=per_video)
        return _batch(rows)

    def _done(self, row: VideoRow, scores: WindowScores | None, seconds: float | None = None) -> VideoRow:
        return dataclasses.replace(row, scores=scores, device=self.device, model_node=self.node, model_s=seconds)

    def _classify_each(self, rows: Sequence[VideoRow]) -> list[VideoRow]:
        out = []
        for row in rows:
            t0 = time.perf_counter()
            try:
                windows = windows_stage(row.skeleton, float(row.info.fps), self.opts)
                scores = classify_stage(row.job, row.skeleton, windows, self.opts, self.classifier)
            except Exception as e:  # noqa: BLE001 - ValueError/RuntimeError locally; anything else too
                out.append(dataclasses.replace(row.failed("model", e), model_node=self.node,
                                               model_s=time.perf_counter() - t0))
            else:
                out.append(self._done(row, scores, time.perf_counter() - t0))
        return out

    def _classify_together(self, rows: Sequence[VideoRow]) -> list[VideoRow]:
        """One MMN call for the windows of all ``rows`` (``--mmn-batch-across-videos``)."""
        out: list[VideoRow] = list(rows)
        spans: dict[int, slice] = {}
        clips: list[np.ndarray] = []
        for i, row in enumerate(rows):
            try:
                windows = windows_stage(row.skeleton, float(row.info.fps), self.opts)
                own = model_clips(row.skeleton.keypoints, usable_windows(row.skeleton.keypoints, windows))
            except Exception as e:  # noqa: BLE001 - this video's failure only
                out[i] = dataclasses.replace(row.failed("model", e), model_node=self.node)
                continue
            spans[i] = slice(len(clips), len(clips) + len(own))
            clips.extend(own)
        pred = None
        if clips:
            try:
                pred = self.classifier.predict(clips, return_maps=True, batch_size=self.opts.batch_size)
            except Exception as e:  # noqa: BLE001
                for i in spans:
                    out[i] = dataclasses.replace(rows[i].failed("model", e), model_node=self.node)
                return out
        for i, span in spans.items():
            scores = scores_of(pred, self.opts.heatmap, span) if pred is not None and span.stop > span.start else None
            out[i] = self._done(rows[i], scores)
        return out


# --------------------------------------------------------------------------- 3. write


def write_stage(batch: Mapping[str, np.ndarray], *, opts: JobOptions, model: ModelInfo | None,
                threads: tuple[int, int]) -> dict[str, np.ndarray]:
    """Operator 3 (tasks): each video's labels and outputs, the labels JSON last."""
    _pin_threads(threads)
    node = _node_id()
    rows = []
    for row in _rows(batch):
        if row.error is None:
            row = _write(dataclasses.replace(row, write_node=node), opts, model)
        rows.append(dataclasses.replace(row, skeleton=None, scores=None, end=time.time()))
    return _batch(rows)


def _write(row: VideoRow, opts: JobOptions, model: ModelInfo | None) -> VideoRow:
    """Label, draw, assemble and write one video, as :func:`pipelines.job.process_video` does
    after its model stage; the timings are those of the operators that did the work."""
    t0 = time.perf_counter()
    job, skel, info = row.job, row.skeleton, row.info
    outputs = Outputs.for_key(opts.out, job.key)
    fps = float(info.fps)
    used = model if model is None else dataclasses.replace(model, device=row.device or model.device)
    taxonomy = used.taxonomy if used is not None else None
    try:
        windows = windows_stage(skel, fps, opts)
        result = label_stage(job, skel, fps, windows, opts, taxonomy, row.scores)
        labelled_s = time.perf_counter() - t0
        timing = {"pose": row.pose_s or 0.0, "model": row.model_s if row.model_s is not None else labelled_s}
        timing.update(write_media(job, fps, skel, result, taxonomy, opts, outputs, silent_progress))
        timing["total"] = timing["pose"] + (row.model_s or 0.0) + time.perf_counter() - t0
        doc = assemble_document(job, info, skel, windows, result, used, opts, outputs, row.record, timing)
        doc = write_document_outputs(job, doc, result, fps, taxonomy, opts, outputs)
    except Exception as e:  # noqa: BLE001 - a bug must be this video's failure, not the dataset's
        return dataclasses.replace(row.failed("labels", e), write_s=time.perf_counter() - t0)
    return dataclasses.replace(row, doc=doc, write_s=time.perf_counter() - t0)


# --------------------------------------------------------------------------- the driver


def _dataset(ray: ModuleType, rows: Sequence[VideoRow], opts: JobOptions, plan: Plan, settings: RaySettings,
             classifier: Classifier | None, checkpoints: Sequence[bytes], device: str,
             threads: tuple[int, int]) -> Dataset:
    """The Ray Data dataset of the three operators over ``rows``."""
    from ray.data import ActorPoolStrategy, DataContext

    for handler in logging.getLogger("ray.data").handlers:  # its per-run INFO lines: the driver's bar says it
        if type(handler).__name__ == "PlainRayHandler":
            handler.setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    ctx.max_errored_blocks = -1      # a block whose worker died twice is dropped; the driver accounts for it
    ctx.enable_progress_bars = False  # the driver's own bar shows the videos
    ctx.print_on_execution_start = False
    ds = ray.data.from_items([{"key": r.job.key, "payload": pickle.dumps(r, protocol=5)} for r in rows],
                             override_num_blocks=len(rows))
    retries = {"max_restarts": -1, "max_task_retries": MAX_TASK_RETRIES}
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for these two (ray_remote_args goes away in 2.64: the
        # [ray] extra pins <2.64)
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
        ds = ds.map_batches(PoseStage, batch_size=1, batch_format="numpy", zero_copy_batch=True,
                            fn_constructor_kwargs={"opts": opts, "threads": threads},
                            compute=ActorPoolStrategy(size=plan.pose_actors, max_tasks_in_flight_per_actor=1),
                            num_cpus=plan.pose_cpus, **retries)
        if classifier is not None:
            ds = ds.map_batches(ModelStage, batch_size=settings.videos_per_model_call, batch_format="numpy",
                                fn_constructor_kwargs={"opts": opts, "checkpoints": list(checkpoints),
                                                       "sha256": [s.meta.sha256 for s in classifier.streams],
                                                       "device": device, "threads": threads,
                                                       "across": settings.batch_across_videos},
                                compute=ActorPoolStrategy(size=plan.mmn_actors), num_cpus=plan.mmn_cpus,
                                num_gpus=plan.mmn_gpus, **retries)
        model = None if classifier is None else ModelInfo.of(classifier)
        ds = ds.map_batches(write_stage, batch_size=1, batch_format="numpy",
                            fn_kwargs={"opts": opts, "model": model, "threads": threads},
                            num_cpus=plan.writer_cpus, max_retries=WRITER_RETRIES)
    return ds


def _outcome(row: VideoRow, opts: JobOptions) -> VideoOutcome:
    """The driver's outcome of a row that came back (a failure recorded as locally)."""
    if row.error is None and row.doc is not None:
        return VideoOutcome(row.job, "done", row.doc)
    error = (row.error or RowError("worker", f"{row.job.path}: the write stage returned nothing")).stage_error()
    record_failure(row.job, Outputs.for_key(opts.out, row.job.key), error, opts)
    return VideoOutcome(row.job, "failed", error=error)


def _lost(job: VideoJob, opts: JobOptions, dataset_error: Exception | None) -> VideoOutcome:
    """The outcome of a video submitted that never came back."""
    outputs = Outputs.for_key(opts.out, job.key)
    outputs.clean_leftovers()
    if dataset_error is None:
        error = StageError("worker", f"{job.path}: did not come back from Ray: the worker processing "
                                     f"it died {MAX_TASK_RETRIES + 1} times (a crash or the OOM killer; "
                                     f"the Ray logs under /tmp/ray/session_latest/logs say which)")
        record_failure(job, outputs, error, opts)  # like any failure: not retried while unchanged
    else:  # not this video's fault: no failure record, a rerun retries it
        error = StageError("worker", f"{job.path}: not processed, the Ray dataset failed: "
                                     f"{type(dataset_error).__name__}: {str(dataset_error)[:500]}")
    return VideoOutcome(job, "failed", error=error)


def _returned_rows(ds: Dataset) -> Iterator[VideoRow | Exception]:
    """The rows as they come back; the dataset's own failure last, as an exception value."""
    rows = iter(ds.iter_rows())
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as e:  # noqa: BLE001 - the dataset itself failed: what is left is recorded
            yield e
            return
        yield pickle.loads(row["payload"])


def iter_ray_outcomes(jobs: Sequence[VideoJob], opts: JobOptions, classifier: Classifier | None = None, *,
                      retry_failed: bool = False, settings: RaySettings = RaySettings(),
                      checkpoints: Sequence[Path] = (), device: str = "auto", table_suffix: str = "",
                      log: Callable[[str], None] | None = None) -> Iterator[VideoOutcome]:
    """The folder job's outcomes (as :func:`pipelines.engines.local.iter_outcomes`) from Ray
    Data. ``checkpoints``: the classifier's checkpoint files (joint, then bone), read here and
    sent to the MMN actors. Raises :class:`PlanError` for a cluster too small for ``settings``."""
    log = log or (lambda message: print(message, file=sys.stderr))
    todo: list[VideoRow] = []
    for job in jobs:  # what run_video does before processing, here before submitting
        record = triage(job, opts, classifier, retry_failed=retry_failed)
        if isinstance(record, VideoOutcome):
            yield record
        else:
            todo.append(VideoRow(job, record))
    if not todo:
        return
    seen: set[str] = set()
    stage_rows: list[list[object]] = []
    blobs = [Path(p).read_bytes() for p in checkpoints] if classifier is not None else []
    t0 = time.perf_counter()
    try:
        with RaySession(settings.address) as ray:
            cpus, gpus, nodes = cluster_size(ray)
            plan = plan_stages(cpus, gpus, nodes, settings, has_model=classifier is not None, device=device,
                               export_clips=opts.export_clips)
            where = "a local Ray on this machine (127.0.0.1 only)" if settings.address is None else settings.address
            log(f"ray: {where}, ready in {time.perf_counter() - t0:.1f} s: {plan.describe()}")
            ds = _dataset(ray, todo, opts, plan, settings, classifier, blobs, device, driver_threads())
            dataset_error = None
            for row in _returned_rows(ds):
                if isinstance(row, Exception):
                    dataset_error = row
                elif row.job.key not in seen:
                    seen.add(row.job.key)
                    stage_rows.append(row.stage_row())
                    yield _outcome(row, opts)
            for row in todo:  # reconcile: what was submitted and never came back
                if row.job.key not in seen:
                    seen.add(row.job.key)
                    stage_rows.append([row.job.key, "failed [worker]"] + [""] * (len(STAGES_HEADER) - 2))
                    yield _lost(row.job, opts, dataset_error)
    finally:
        # after Ray is gone (an interrupted run's workers with it): no temporary files of
        # the videos that did not finish
        for row in todo:
            if row.job.key not in seen:
                Outputs.for_key(opts.out, row.job.key).clean_leftovers()
        if stage_rows:
            with contextlib.suppress(OSError):
                atomic_write_text(opts.out / f"stages{table_suffix}.csv", csv_text(STAGES_HEADER, stage_rows))


# --------------------------------------------------------------------------- the command line


def outcomes_from_args(args: argparse.Namespace, jobs: Sequence[VideoJob], opts: JobOptions,
                       classifier: Classifier | None, suffix: str = "") -> Iterator[VideoOutcome]:
    """The Ray engine as the CLI runs it (:func:`pipelines.engines.select_engine`)."""
    return _usage_errors_exit(iter_ray_outcomes(
        jobs, opts, classifier, retry_failed=args.retry_failed, settings=ray_settings(args),
        checkpoints=[p for p in (args.weights, args.weights_bone) if p is not None], device=args.device,
        table_suffix=suffix, log=_tqdm_log))


def _tqdm_log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def _usage_errors_exit(outcomes: Iterator[VideoOutcome]) -> Iterator[VideoOutcome]:
    """A cluster too small for the flags is a usage error: exit status 2, as the CLI's."""
    try:
        yield from outcomes
    except PlanError as e:
        _tqdm_log(f"error: {e}")
        raise SystemExit(2) from None
