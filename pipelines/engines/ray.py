"""The folder job on Ray Data: every core of a workstation, every node of a cluster, the GPU
where there is one (``python -m pipelines.video_to_labels ... --engine ray``).

The driver does what the local engine does before it processes a video — job record,
"finished?", "failed before and unchanged?" (:mod:`pipelines.job`) — and submits only the
videos left. They flow through three Ray Data operators, each sized for what it uses:

1. **pose** — an actor pool (``--pose-actors N``, ``--pose-cpus C`` each), one pose estimator
   per actor: probe, then :func:`pipelines.job.load_or_extract_skeleton` (a finished skeleton
   file is reused). Frames are decoded inside the actor and never leave it; the 44-joint
   track (keypoints, flags, pixel motion) goes on through the object store.
2. **model** — an actor pool for MMN (``--mmn-actors``, ``--mmn-cpus``; ``num_gpus`` when the
   cluster has GPUs) that windows and classifies each video with
   :func:`pipelines.stages.labelling.label_track`. Each video's windows go through MMN in chunks of
   ``--batch-size`` exactly as locally: mixing windows of several videos in one batch moves
   probabilities by ~2e-7 (measured: float32 kernels block differently by batch size), so the
   results would depend on which videos met in a call. ``--mmn-batch-across-videos`` does
   mix them (8 videos per call: fuller batches on a GPU for short clips) at that cost. Only
   the predictions travel on.
3. **write** — tasks that run :func:`pipelines.job.process_video` itself with a recognizer
   that replays the model stage's predictions (checked against the windows it is asked
   for) and the skeleton file the pose stage wrote: the same pictures, clip, motion and
   events tables and labels JSON as the local engine, each written atomically, with no
   second implementation of the outputs. The labels document comes back to the driver,
   which keeps the same run tables (:class:`pipelines.formats.tables.RunTables`) and adds
   ``stages.csv``: per video, the node and the seconds of each stage.

Failures: every per-video error is caught inside the operator and travels as a row, so a
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
no dashboard. Joining a cluster ships the project's packages (``core``, ``pose``, ``mmn``,
``pipelines``) to the workers; the input and output folders must be on a filesystem every
node sees at the same path.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from core.atomic import atomic_write_text
from core.cli import non_negative_float, positive_float, positive_int
from core.csv_table import csv_text
from pipelines.discovery import VideoJob
from pipelines.job import (
    LAYOUT,
    JobOptions,
    Outputs,
    SharedEstimator,
    StageError,
    VideoOutcome,
    process_video,
    record_failure,
    skeleton_stage,
    triage,
)

__all__ = ["ENGINES", "ModelInfo", "ModelStage", "Plan", "PlanError", "PoseStage", "RaySettings", "ReplayRecognizer",
           "add_engine_arguments", "engine_outcomes", "iter_ray_outcomes", "plan_stages", "write_stage"]

ENGINES = ("local", "ray")
MAX_TASK_RETRIES = 1          # a video whose worker died is tried once more, then recorded (stage "worker")
WRITER_RETRIES = 1            # the same for the write tasks
STAGES_HEADER = ["video", "status", "pose_node", "model_node", "write_node", "pose_s", "model_s", "write_s",
                 "pose_start_unix", "end_unix"]
CRASH_HOOK_ENV = "MMN_RAY_TEST_CRASH_IN_POSE"  # tests: a pose worker os._exit()s on this key, mid-write


# --------------------------------------------------------------------------- settings and plan


class PlanError(ValueError):
    """The flags ask for more than the Ray cluster has (a usage error, exit status 2)."""


@dataclasses.dataclass(frozen=True)
class RaySettings:
    """The ``--engine ray`` flags."""

    address: str | None = None         # None: start a local Ray on this machine
    pose_actors: int | None = None     # None: as many as the CPUs left by the other stages allow
    pose_cpus: float = 1.0
    mmn_actors: int = 1
    mmn_cpus: float = 0.5
    mmn_gpus: float | None = None      # None: 1 per actor when the cluster has GPUs (and --device allows)
    writer_cpus: float = 0.5
    batch_across_videos: bool = False

    @property
    def videos_per_model_call(self) -> int:
        # Ray Data waits until a call's videos have all come out of the pose stage: without
        # mixing windows across videos, one video per call keeps results streaming
        return 8 if self.batch_across_videos else 1


@dataclasses.dataclass(frozen=True)
class Plan:
    """What each stage reserves on a cluster with ``cpus`` CPUs and ``gpus`` GPUs."""

    cpus: float
    gpus: float
    nodes: int
    pose_actors: int
    pose_cpus: float
    mmn_actors: int        # 0: no model stage (no --weights)
    mmn_cpus: float
    mmn_gpus: float
    writer_cpus: float

    @property
    def reserved_cpus(self) -> float:
        return self.pose_actors * self.pose_cpus + self.mmn_actors * self.mmn_cpus + self.writer_cpus

    def describe(self) -> str:
        mmn = (f"{self.mmn_actors} MMN actor(s) × {self.mmn_cpus:g} CPU" +
               (f" + {self.mmn_gpus:g} GPU" if self.mmn_gpus else "") if self.mmn_actors else "no MMN stage")
        return (f"{self.pose_actors} pose actor(s) × {self.pose_cpus:g} CPU, {mmn}, writers {self.writer_cpus:g} CPU "
                f"each, on {self.nodes} node(s) with {self.cpus:g} CPUs and {self.gpus:g} GPUs")


def plan_stages(cpus: float, gpus: float, nodes: int, settings: RaySettings, *, has_model: bool,
                device: str = "auto", export_clips: bool = False) -> Plan:
    """Size the stages so that their CPU reservations fit the cluster (otherwise stages wait
    for each other and run one after another). Raises ValueError (a usage error) when the
    flags ask for more than the cluster has (:class:`PlanError`)."""
    mmn_actors = settings.mmn_actors if has_model else 0
    mmn_gpus = 0.0
    if has_model and device != "cpu":
        if settings.mmn_gpus is not None:
            mmn_gpus = settings.mmn_gpus
        elif gpus > 0:
            mmn_gpus = min(1.0, gpus / mmn_actors)
        if device == "cuda" and gpus <= 0:
            raise PlanError("--device cuda was asked for, but the Ray cluster has no GPU")
        if mmn_gpus * mmn_actors > gpus + 1e-9:
            raise PlanError(f"{mmn_actors} MMN actor(s) × {mmn_gpus:g} GPU need more than the cluster's "
                             f"{gpus:g} GPU(s)")
    others = mmn_actors * settings.mmn_cpus + settings.writer_cpus
    pose_actors = settings.pose_actors
    if pose_actors is None:
        # leave the writers room to keep up: clips cost about a third of the pose work
        writers = max(settings.writer_cpus, cpus * (0.25 if export_clips else 0.1))
        pose_actors = max(1, int((cpus - mmn_actors * settings.mmn_cpus - writers + 1e-9) // settings.pose_cpus))
    plan = Plan(cpus, gpus, nodes, pose_actors, settings.pose_cpus, mmn_actors, settings.mmn_cpus, mmn_gpus,
                settings.writer_cpus)
    if plan.reserved_cpus > cpus + 1e-9:
        raise PlanError(f"the stages would reserve {plan.reserved_cpus:g} CPUs ({pose_actors} pose actor(s) × "
                         f"{settings.pose_cpus:g} + {others:g} for MMN and the writers) but the Ray cluster has "
                         f"{cpus:g}: lower --pose-actors or --pose-cpus (or --mmn-cpus, --writer-cpus)")
    return plan


# --------------------------------------------------------------------------- what the stages share


def _silent(total: int, desc: str):
    """A progress factory for workers: the driver shows the progress."""
    return contextlib.nullcontext(SimpleNamespace(update=lambda n=1: None))


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


def _error(stage: str, reason: str, cause: BaseException | None = None) -> dict[str, Any]:
    return {"stage": stage, "reason": reason, "errno": getattr(cause, "errno", None)}


def _error_of(e: StageError) -> dict[str, Any]:
    return _error(e.stage, str(e), e.__cause__)


def stage_error(fields: Mapping[str, Any]) -> StageError:
    """The StageError a row's ``error`` describes (a full disk keeps its errno, so the driver
    stops as the local engine does)."""
    err = StageError(fields["stage"], fields["reason"])
    if fields.get("errno") is not None:
        err.__cause__ = OSError(fields["errno"], os.strerror(fields["errno"]))
    return err


def _rows(keys: Sequence[str], items: Sequence[dict]) -> dict[str, np.ndarray]:
    payloads = np.empty(len(items), dtype=object)
    payloads[:] = [pickle.dumps(it, protocol=5) for it in items]
    return {"key": np.asarray(list(keys), dtype=object), "payload": payloads}


def _items(batch: Mapping[str, np.ndarray]) -> list[dict]:
    return [pickle.loads(p) for p in batch["payload"]]


def clips_digest(clips: Sequence[np.ndarray]) -> str:
    h = hashlib.sha1()
    for c in clips:
        a = np.ascontiguousarray(c, np.float32)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- 1. pose


def pose_stage(job: VideoJob, opts: JobOptions, record: Mapping[str, Any],
               estimator: SharedEstimator) -> tuple[float, Any]:
    """Probe and skeleton of one video with the errors :func:`pipelines.job.process_video`
    raises for them (same stage, same reason); returns (fps, skeleton)."""
    from pose.video import VideoError, probe_video

    outputs = Outputs.for_key(opts.out, job.key)
    outputs.clean_leftovers()
    try:
        info = probe_video(job.path)
    except VideoError as e:
        raise StageError("probe", str(e)) from None
    except OSError as e:
        raise StageError("probe", f"{job.path}: {e.strerror or e}") from None
    _crash_hook(job.key, outputs)
    return float(info.fps), skeleton_stage(job, outputs, opts, record, info.frame_count, _silent, estimator)


def _crash_hook(key: str, outputs: Outputs) -> None:
    """Tests only: die in the middle of writing this video's skeleton file, as a crashing
    decoder or the OOM killer would, leaving a temporary file behind."""
    if os.environ.get(CRASH_HOOK_ENV) == key:
        from core.atomic import temp_path_beside

        temp_path_beside(outputs.skeleton).write_bytes(b"partial")
        os._exit(70)


class PoseStage:
    """Operator 1, one actor per pose estimator: rows of submitted videos in, tracks out."""

    def __init__(self, opts: JobOptions, threads: tuple[int, int], ship_track: bool = True) -> None:
        _pin_threads(threads)
        self.opts, self.ship_track = opts, ship_track
        self.estimator = SharedEstimator(opts.pose_backend, opts.pose_options)
        self.node = _node_id()

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = _items(batch)
        for item in items:
            self.run(item)
        return _rows(batch["key"], items)

    def run(self, item: dict) -> None:
        job, t0 = item["job"], time.perf_counter()
        item["nodes"]["pose"], item["clock"] = self.node, {"pose_start": time.time()}
        try:
            fps, skel = pose_stage(job, self.opts, item["record"], self.estimator)
        except StageError as e:
            item["error"] = _error_of(e)
        except Exception as e:  # noqa: BLE001 - a bug must be this video's failure, not the dataset's
            item["error"] = _error("pose", f"{job.path}: {type(e).__name__}: {e}")
        else:
            if self.ship_track:
                item["track"] = {"fps": fps, "keypoints": skel.keypoints, "flags": skel.flags,
                                 "region_motion": skel.region_motion}
        item["seconds"]["pose"] = time.perf_counter() - t0

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.estimator.close()


# --------------------------------------------------------------------------- 2. model


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the outputs say about the model, from the driver's recognizer (the checkpoints'
    file names and digests as the local engine records them)."""

    metas: tuple
    taxonomy: Any
    layout: Any
    clip_len: int
    modalities: tuple

    @classmethod
    def of(cls, recognizer: Any) -> ModelInfo:
        metas = tuple(m.meta for m in recognizer.streams)
        return cls(metas, recognizer.taxonomy, recognizer.layout, recognizer.clip_len,
                   tuple(recognizer.modalities))


class _Capture:
    """The real recognizer, keeping what label_track asked it to predict."""

    def __init__(self, recognizer: Any, heatmap: str) -> None:
        self._rec, self._heatmap, self.result = recognizer, heatmap, None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rec, name)

    def predict(self, clips, return_maps=False, batch_size=64, clip_len=None):
        pred = self._rec.predict(clips, return_maps=return_maps, batch_size=batch_size, clip_len=clip_len)
        self.result = _slim(pred, self._heatmap, clips_digest(clips), return_maps)
        return pred


class _Collected(BaseException):
    """Stops label_track once it has handed over its windows (cross-video batching)."""


class _Collect:
    def __init__(self, recognizer: Any) -> None:
        self._rec, self.clips, self.kwargs = recognizer, None, None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rec, name)

    def predict(self, clips, return_maps=False, batch_size=64, clip_len=None):
        self.clips, self.kwargs = list(clips), {"return_maps": return_maps, "clip_len": clip_len}
        raise _Collected


def _slim(pred: Any, heatmap: str, digest: str, return_maps: bool) -> dict[str, Any]:
    """A Prediction with only the map the outputs use (the others would be 8× the bytes)."""
    maps = {heatmap: pred.maps[heatmap]} if return_maps and heatmap in pred.maps else {}
    return {"logits": pred.logits, "probs": pred.probs, "frame_inds": pred.frame_inds, "maps": maps,
            "digest": digest, "return_maps": return_maps}


class ModelStage:
    """Operator 2: MMN actors. Each call gets several videos; each video's windows are
    classified with label_track (in its own chunks of ``batch_size``, as locally, unless
    ``across`` mixes them)."""

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
            self.recognizer = Recognizer.from_checkpoints(paths[0], paths[1] if len(paths) > 1 else None, device)
        got = [m.meta.sha256 for m in self.recognizer.streams]
        if got != list(sha256):
            raise RuntimeError(f"the checkpoints reached the MMN actor changed (sha256 {got} != {list(sha256)})")
        self.device = str(self.recognizer.device)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = _items(batch)
        todo = [it for it in items if it.get("error") is None]
        for it in todo:
            it["nodes"]["model"] = self.node
        if self.across:
            self._classify_together(todo)
        else:
            for it in todo:
                self._classify(it)
        return _rows(batch["key"], items)

    def _label(self, it: dict, recognizer: Any) -> None:
        from pipelines.stages.labelling import label_track
        from pipelines.stages.windowing import make_windows

        o, track = self.opts, it["track"]
        windows = make_windows(len(track["keypoints"]), track["fps"], o.window, o.stride)
        label_track(track["keypoints"], track["fps"], windows, LAYOUT, recognizer, top_k=o.top_k,
                    threshold=o.threshold, heatmap=o.heatmap, batch_size=o.batch_size, flags=track["flags"],
                    region_motion=track["region_motion"])

    def _failed(self, it: dict, e: Exception) -> None:
        # as process_video reports a model failure
        it["error"] = _error("model", f"{it['job'].path}: {type(e).__name__}: {e}")

    def _classify(self, it: dict) -> None:
        t0 = time.perf_counter()
        capture = _Capture(self.recognizer, self.opts.heatmap)
        try:
            self._label(it, capture)
        except Exception as e:  # noqa: BLE001 - ValueError/RuntimeError locally; anything else too
            self._failed(it, e)
        else:
            it["prediction"], it["device"] = capture.result, self.device
        it.pop("track", None)
        it["seconds"]["model"] = time.perf_counter() - t0

    def _classify_together(self, todo: list[dict]) -> None:
        t0 = time.perf_counter()
        spans, clips, kwargs = [], [], {"return_maps": True, "clip_len": None}
        for it in todo:
            collect = _Collect(self.recognizer)
            try:
                self._label(it, collect)
            except _Collected:
                spans.append((it, len(clips), len(clips) + len(collect.clips), collect.clips))
                clips.extend(collect.clips)
                kwargs = collect.kwargs
            except Exception as e:  # noqa: BLE001
                self._failed(it, e)
            else:  # no usable window: nothing to classify
                it["prediction"], it["device"] = None, self.device
        if clips:
            try:
                pred = self.recognizer.predict(clips, batch_size=self.opts.batch_size, **kwargs)
            except Exception as e:  # noqa: BLE001
                for it, *_ in spans:
                    self._failed(it, e)
                spans = []
            for it, a, b, own in spans:
                part = SimpleNamespace(logits=pred.logits[a:b], probs=pred.probs[a:b],
                                       frame_inds=pred.frame_inds[a:b], maps={k: v[a:b] for k, v in pred.maps.items()})
                it["prediction"] = _slim(part, self.opts.heatmap, clips_digest(own), kwargs["return_maps"])
                it["device"] = self.device
        per_video = (time.perf_counter() - t0) / max(1, len(todo))
        for it in todo:
            it.pop("track", None)
            it["seconds"]["model"] = per_video


# --------------------------------------------------------------------------- 3. write


class ReplayRecognizer:
    """Stands in for the recognizer in :func:`process_video` on the write stage: the model
    description from the driver, the predictions the model stage made. It refuses windows
    other than those the model stage classified."""

    def __init__(self, info: ModelInfo, device: str, prediction: Mapping[str, Any] | None) -> None:
        self.streams = [SimpleNamespace(meta=m) for m in info.metas]
        self.meta = info.metas[0]
        self.taxonomy, self.layout, self.clip_len = info.taxonomy, info.layout, info.clip_len
        self.modalities = list(info.modalities)
        self.class_names = list(info.taxonomy.class_names)
        self.num_classes = len(self.class_names)
        self.dataset = info.taxonomy.name
        self.device = device
        self._prediction = prediction

    def predict(self, clips, return_maps=False, batch_size=64, clip_len=None):
        from mmn.inference import Prediction

        p = self._prediction
        if p is None or clips_digest(clips) != p["digest"] or return_maps != p["return_maps"]:
            raise RuntimeError("the windows to classify differ from those the model stage classified")
        return Prediction(p["logits"], p["probs"], p["frame_inds"], dict(p["maps"]))


class _SkeletonFromPoseStage:
    """The estimator process_video gets on the write stage: the pose stage wrote the skeleton
    file, so process_video reads it; were it missing or changed, extracting again here would
    be wrong, and says so."""

    def __init__(self, outputs: Outputs) -> None:
        self.path = outputs.skeleton

    def get(self):
        raise StageError("pose", f"{self.path}: the skeleton file the pose stage wrote is missing or changed "
                                 f"(with a cluster, --out must be on a filesystem every node shares)")

    def close(self) -> None:
        pass


def write_stage(batch: Mapping[str, np.ndarray], *, opts: JobOptions, model: ModelInfo | None,
                threads: tuple[int, int]) -> dict[str, np.ndarray]:
    """Operator 3 (tasks): the video's outputs through process_video, the labels JSON last."""
    _pin_threads(threads)
    items = _items(batch)
    node = _node_id()
    writer_opts = dataclasses.replace(opts, overwrite=False)  # the pose stage honoured --overwrite
    for it in items:
        it.pop("track", None)
        prediction = it.pop("prediction", None)
        if it.get("error") is not None:
            it.setdefault("clock", {})["end"] = time.time()
            continue
        job, t0 = it["job"], time.perf_counter()
        it["nodes"]["write"] = node
        outputs = Outputs.for_key(opts.out, job.key)
        replay = None if model is None else ReplayRecognizer(model, it.get("device", "cpu"), prediction)
        try:
            doc = process_video(job, writer_opts, replay, progress=_silent, estimator=_SkeletonFromPoseStage(outputs),
                                record=it["record"])
            it["seconds"]["write"] = time.perf_counter() - t0
            _stage_timings(doc, it["seconds"], outputs)
        except OSError as e:  # rewriting the labels JSON (a full disk keeps its errno: the driver stops)
            it["error"] = _error("labels", f"{outputs.labels}: cannot write ({e.strerror or e})", e)
        except StageError as e:
            it["error"] = _error_of(e)
        except Exception as e:  # noqa: BLE001
            it["error"] = _error("labels", f"{job.path}: {type(e).__name__}: {e}")
        else:
            it["doc"] = doc
        it["seconds"].setdefault("write", time.perf_counter() - t0)
        it.setdefault("clock", {})["end"] = time.time()
    return _rows(batch["key"], items)


def _stage_timings(doc: dict, seconds: Mapping[str, float], outputs: Outputs) -> None:
    """The labels JSON's ``timing_s`` with the pose and model stages' own seconds (on the
    write stage process_video only read the skeleton and replayed the predictions); the
    document is written again, atomically, as process_video writes it."""
    timing = doc["timing_s"]
    timing["pose"] = round(seconds.get("pose", 0.0), 3)
    if "model" in seconds:
        timing["model"] = round(seconds["model"], 3)
    timing["total"] = round(sum(seconds.values()), 3)
    atomic_write_text(outputs.labels, json.dumps(doc, indent=1))


# --------------------------------------------------------------------------- the driver


RAY_CONNECT_TIMEOUT_S = 20.0  # a --ray-address that does not answer within this is a usage error


def keep_ray_on_loopback() -> None:
    """Make this process's Ray advertise and bind 127.0.0.1, not the machine's outward address.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when ``ray`` is first imported, into
    ``ray_constants.ENABLE_RAY_CLUSTER``; while it is true, Ray resolves 127.0.0.1 to the
    outward address and its servers listen on every interface. The variable is set for the
    processes Ray starts, and the constant too where ``ray`` was imported already.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False


def check_ray_address(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`PlanError` naming ``address`` unless a TCP connection to it opens within
    ``timeout_s`` (Ray itself retries an unreachable GCS for minutes)."""
    if address == "auto" or "://" in address:
        return  # Ray finds "auto" itself; a ray:// client address is checked by Ray's client
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise PlanError(f"--ray-address {address!r}: expected HOST:PORT of a Ray head node's GCS (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise PlanError(f"--ray-address {address!r}: no Ray head answers there ({e.strerror or e}); "
                        f"is the cluster started (ray start --head) and the port right?") from None


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


class _RaySession:
    """Connect to (or start) Ray; close what this run started."""

    def __init__(self, address: str | None) -> None:
        self.address, self.started = address, False

    def __enter__(self):
        if self.address is None or _is_loopback(self.address):
            keep_ray_on_loopback()  # before ray is imported where possible (see there)
        if self.address is not None:
            check_ray_address(self.address)
        import ray

        if ray.is_initialized():  # a caller's own Ray (in-process use): use it, leave it running
            return ray
        common = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
        if self.address is None:
            ray.init(address="local", _node_ip_address="127.0.0.1", **common)
        else:
            import core
            import mmn
            import pipelines
            import pose

            ray.init(address=self.address, runtime_env={"py_modules": [core, pose, mmn, pipelines],
                                                        "excludes": ["__pycache__", "*.pyc"]}, **common)
        self.started = True
        return ray

    def __exit__(self, *exc) -> None:
        if self.started:
            import ray

            ray.shutdown()


def _cluster_size(ray: Any) -> tuple[float, float, int]:
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return float(res.get("CPU", 0.0)), float(res.get("GPU", 0.0)), nodes


def _dataset(ray: Any, todo: Sequence[tuple[VideoJob, dict]], opts: JobOptions, plan: Plan,
             settings: RaySettings, recognizer: Any, checkpoints: Sequence[bytes], device: str,
             threads: tuple[int, int]):
    from ray.data import ActorPoolStrategy, DataContext

    for handler in logging.getLogger("ray.data").handlers:  # its per-run INFO lines: the driver's bar says it
        if type(handler).__name__ == "PlainRayHandler":
            handler.setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    ctx.max_errored_blocks = -1      # a block whose worker died twice is dropped; the driver accounts for it
    ctx.enable_progress_bars = False  # the driver's own bar shows the videos
    ctx.print_on_execution_start = False
    items = [{"job": job, "record": record, "nodes": {}, "seconds": {}, "error": None} for job, record in todo]
    ds = ray.data.from_items([{"key": it["job"].key, "payload": pickle.dumps(it, protocol=5)} for it in items],
                             override_num_blocks=len(items))
    retries = {"max_restarts": -1, "max_task_retries": MAX_TASK_RETRIES}
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for these two (ray_remote_args goes away in 2.64: the
        # [ray] extra pins <2.64)
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
        ds = ds.map_batches(PoseStage, batch_size=1, batch_format="numpy", zero_copy_batch=True,
                            fn_constructor_kwargs={"opts": opts, "threads": threads,
                                                   "ship_track": recognizer is not None},
                            compute=ActorPoolStrategy(size=plan.pose_actors, max_tasks_in_flight_per_actor=1),
                            num_cpus=plan.pose_cpus, **retries)
        if recognizer is not None:
            ds = ds.map_batches(ModelStage, batch_size=settings.videos_per_model_call, batch_format="numpy",
                                fn_constructor_kwargs={"opts": opts, "checkpoints": list(checkpoints),
                                                       "sha256": [m.meta.sha256 for m in recognizer.streams],
                                                       "device": device, "threads": threads,
                                                       "across": settings.batch_across_videos},
                                compute=ActorPoolStrategy(size=plan.mmn_actors), num_cpus=plan.mmn_cpus,
                                num_gpus=plan.mmn_gpus, **retries)
        ds = ds.map_batches(write_stage, batch_size=1, batch_format="numpy",
                            fn_kwargs={"opts": opts, "model": None if recognizer is None else ModelInfo.of(recognizer),
                                       "threads": threads},
                            num_cpus=plan.writer_cpus, max_retries=WRITER_RETRIES)
    return ds


def iter_ray_outcomes(jobs: Sequence[VideoJob], opts: JobOptions, recognizer: Any = None, *,
                      retry_failed: bool = False, settings: RaySettings = RaySettings(),
                      checkpoints: Sequence[Path] = (), device: str = "auto", table_suffix: str = "",
                      log=None) -> Iterator[VideoOutcome]:
    """The folder job's outcomes (as :func:`pipelines.job.iter_outcomes`) from Ray Data.
    ``checkpoints``: the recognizer's checkpoint files (joint, then bone), read here and sent
    to the MMN actors. Raises :class:`PlanError` for a cluster too small for ``settings``."""
    log = log or (lambda message: print(message, file=sys.stderr))
    todo: list[tuple[VideoJob, dict]] = []
    for job in jobs:  # what run_video does before processing, here before submitting
        record = triage(job, opts, recognizer, retry_failed=retry_failed)
        if isinstance(record, VideoOutcome):
            yield record
        else:
            todo.append((job, record))
    if not todo:
        return
    by_key = {job.key: job for job, _ in todo}
    seen: set[str] = set()
    stage_rows: list[list[Any]] = []
    threads = driver_threads()
    blobs = [Path(p).read_bytes() for p in checkpoints] if recognizer is not None else []
    t0 = time.perf_counter()
    try:
        with _RaySession(settings.address) as ray:
            cpus, gpus, nodes = _cluster_size(ray)
            plan = plan_stages(cpus, gpus, nodes, settings, has_model=recognizer is not None, device=device,
                               export_clips=opts.export_clips)
            where = "a local Ray on this machine (127.0.0.1 only)" if settings.address is None else settings.address
            log(f"ray: {where}, ready in {time.perf_counter() - t0:.1f} s: {plan.describe()}")
            ds = _dataset(ray, todo, opts, plan, settings, recognizer, blobs, device, threads)
            rows, dataset_error = iter(ds.iter_rows()), None
            while True:
                try:
                    row = next(rows)
                except StopIteration:
                    break
                except Exception as e:  # noqa: BLE001 - the dataset itself failed: what is left is recorded below
                    dataset_error = e
                    break
                it = pickle.loads(row["payload"])
                job = it["job"]
                if job.key in seen:
                    continue
                seen.add(job.key)
                stage_rows.append(_stage_row(it))
                if it.get("error") is None and it.get("doc") is not None:
                    yield VideoOutcome(job, "done", it["doc"])
                    continue
                error = stage_error(it["error"] or _error("worker", f"{job.path}: the write stage returned nothing"))
                record_failure(job, Outputs.for_key(opts.out, job.key), error, opts)
                yield VideoOutcome(job, "failed", error=error)
            for job, _ in todo:  # reconcile: what was submitted and never came back
                if job.key in seen:
                    continue
                seen.add(job.key)
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
                stage_rows.append([job.key, "failed [worker]"] + [""] * (len(STAGES_HEADER) - 2))
                yield VideoOutcome(job, "failed", error=error)
    finally:
        # after Ray is gone (an interrupted run's workers with it): no temporary files of
        # the videos that did not finish
        for key in by_key.keys() - seen:
            Outputs.for_key(opts.out, key).clean_leftovers()
        if stage_rows:
            with contextlib.suppress(OSError):
                atomic_write_text(opts.out / f"stages{table_suffix}.csv", csv_text(STAGES_HEADER, stage_rows))


def _stage_row(it: Mapping[str, Any]) -> list[Any]:
    nodes, sec = it.get("nodes", {}), it.get("seconds", {})
    status = "done" if it.get("error") is None else f"failed [{it['error']['stage']}]"
    clock = it.get("clock", {})
    return [it["job"].key, status] + [nodes.get(s, "") for s in ("pose", "model", "write")] + \
        [f"{sec[s]:.3f}" if s in sec else "" for s in ("pose", "model", "write")] + \
        [f"{clock[c]:.3f}" if c in clock else "" for c in ("pose_start", "end")]


# --------------------------------------------------------------------------- the command line


class _EngineAction(argparse.Action):
    """``--engine ray`` without Ray installed is a usage error, found when parsing. Ray is not
    imported here: it must first be told to stay on loopback (:func:`keep_ray_on_loopback`)."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value == "ray" and not ray_data_installed():
            parser.error("--engine ray needs Ray Data: pip install '.[ray]' (./install.sh installs it)")
        setattr(namespace, self.dest, value)


def ray_data_installed() -> bool:
    """Whether ``ray.data`` can be imported, found without importing ``ray``."""
    import importlib.util

    spec = importlib.util.find_spec("ray")  # a top-level name: nothing is imported
    return spec is not None and any((Path(d) / "data" / "__init__.py").is_file()
                                    for d in spec.submodule_search_locations or ())


def add_engine_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("engine", "where the videos are processed (see the README, 'Scaling out with Ray')")
    g.add_argument("--engine", choices=ENGINES, default="local", action=_EngineAction,
                   help="local: one process, one video after another (default); ray: Ray Data over this machine's "
                        "cores or a cluster")
    g.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS") or None,
                   help="join this Ray cluster (default: $RAY_ADDRESS; none: start a local Ray on this machine)")
    g.add_argument("--pose-actors", type=positive_int,
                   help="pose estimators running at once (default: as many as the CPUs left by the other stages)")
    g.add_argument("--pose-cpus", type=positive_float, default=RaySettings.pose_cpus,
                   help="CPUs each pose actor reserves (may be fractional)")
    g.add_argument("--mmn-actors", type=positive_int, default=RaySettings.mmn_actors, help="MMN actors")
    g.add_argument("--mmn-cpus", type=positive_float, default=RaySettings.mmn_cpus,
                   help="CPUs each MMN actor reserves")
    g.add_argument("--mmn-gpus", type=non_negative_float,
                   help="GPUs each MMN actor reserves (default: 1 where the cluster has GPUs, else 0)")
    g.add_argument("--writer-cpus", type=positive_float, default=RaySettings.writer_cpus,
                   help="CPUs each write task (pictures, clip, labels JSON) reserves")
    g.add_argument("--mmn-batch-across-videos", action="store_true",
                   help="fill MMN batches with windows of several videos (fuller GPU batches; probabilities "
                        "then differ from the local engine's by ~1e-7)")


def settings_of(args: argparse.Namespace) -> RaySettings:
    return RaySettings(address=args.ray_address, pose_actors=args.pose_actors, pose_cpus=args.pose_cpus,
                       mmn_actors=args.mmn_actors, mmn_cpus=args.mmn_cpus, mmn_gpus=args.mmn_gpus,
                       writer_cpus=args.writer_cpus, batch_across_videos=args.mmn_batch_across_videos)


def engine_outcomes(args: argparse.Namespace, jobs: Sequence[VideoJob], opts: JobOptions, recognizer: Any,
                    suffix: str = "") -> Iterator[VideoOutcome]:
    """The outcomes of ``jobs`` from the engine ``args.engine`` (the CLI's loop is the same)."""
    if getattr(args, "engine", "local") != "ray":
        from pipelines.job import iter_outcomes

        return iter_outcomes(jobs, opts, recognizer, retry_failed=args.retry_failed)
    return _usage_errors_exit(iter_ray_outcomes(
        jobs, opts, recognizer, retry_failed=args.retry_failed, settings=settings_of(args),
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
