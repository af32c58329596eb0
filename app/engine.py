"""One upload through the pipeline: loaded checkpoints, settings, progress, and the result.

:func:`analyse` calls :func:`pipelines.job.process_video` (the same code as the folder
pipeline with ``--export-clips --elan``), so the app's annotated video, labels JSON, events
table, ``.eaf`` and skeleton file are exactly the pipeline's; the upload's own name stands
for the video in them (``JobOptions.display_name``), never the server's path. It keeps the
per-frame heat and the skeleton for the figures, and reports the stages (probe, decoding +
pose, classification, rendering) to a progress callback such as ``gr.Progress``.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.config import AppConfig
from app.validate import CheckedVideo
from mmn.inference import Recognizer
from pipelines.discovery import VideoJob
from pipelines.formats.labels_doc import NO_WEIGHTS_REASON
from pipelines.job import process_video
from pipelines.options import JobOptions, Outputs
from pipelines.stages.labelling import LabelResult
from pipelines.stages.motion_energy import normalise_heat
from pipelines.stages.pose import LAYOUT, PoseOptions, SharedEstimator
from pipelines.stages.progress import ProgressBar
from pipelines.stages.windowing import WindowOptions
from pose.postprocess import SmoothingConfig
from pose.skeleton_file import Skeleton

STREAMS = ("2S (joint + bone)", "joint", "bone")
SMOOTHING_WINDOW_S = SmoothingConfig().window_s


class Report(Protocol):
    """``gr.Progress``-like: ``report((done, total) | fraction | None, desc=..., unit=...)``."""

    def __call__(self, progress: tuple[int, int] | float | None, desc: str | None = None,
                 unit: str = "steps") -> object: ...


class ModelError(RuntimeError):
    """A configured checkpoint cannot be used (message names the file and the problem)."""


class Models:
    """The configured MMN checkpoints as ready recognizers, one per stream choice."""

    def __init__(self, weights: Path, weights_bone: Path | None = None, device: str = "auto") -> None:
        from mmn.checkpoint import CheckpointError, load_official
        from mmn.inference import Recognizer

        try:
            joint = load_official(weights)
            bone = load_official(weights_bone, modality="bone") if weights_bone else None
            self.recognizers = {"joint": Recognizer([joint], device)}
            if bone is not None:
                self.recognizers["bone"] = Recognizer([bone], device)
                self.recognizers[STREAMS[0]] = Recognizer([joint, bone], device)
        except (CheckpointError, ValueError, RuntimeError, OSError) as e:
            raise ModelError(str(e)) from None
        first = self.recognizers["joint"]
        if first.layout.name != LAYOUT.name:
            raise ModelError(f"{weights} is a {first.layout.name} model; the app makes {LAYOUT.name} skeletons")
        self.files = [Path(weights).name] + ([Path(weights_bone).name] if weights_bone else [])

    @classmethod
    def from_config(cls, cfg: AppConfig) -> Models | None:
        """None when no checkpoint is configured (the app then runs without labels)."""
        return cls(cfg.weights, cfg.weights_bone, cfg.device) if cfg.weights else None

    @property
    def stream_choices(self) -> list[str]:
        return [s for s in STREAMS if s in self.recognizers]

    def resolve(self, stream: str | None) -> str:
        """``stream`` when it is available, else the best available choice (2S, then joint)."""
        return stream if stream in self.recognizers else self.stream_choices[0]

    def get(self, stream: str | None) -> Recognizer:
        """The recognizer for a stream choice (see :meth:`resolve`)."""
        return self.recognizers[self.resolve(stream)]

    def describe_taxonomy(self) -> str:
        t = self.recognizers["joint"].taxonomy
        levels = f" in {t.num_body_levels} body levels" if t.has_body_levels else ""
        return f"{t.name}, {t.num_classes} actions{levels}"

    def describe(self) -> str:
        r = self.recognizers["joint"]
        return f"{' + '.join(self.files)} ({r.dataset}, {r.num_classes} classes, {r.device})"


@dataclass(frozen=True)
class Settings:
    """What the page lets one choose per run."""

    window_s: float = WindowOptions.window
    stride_s: float = WindowOptions.stride
    stream: str | None = None
    smoothing_s: float = SMOOTHING_WINDOW_S  # Savitzky–Golay window in seconds; 0 turns smoothing off
    heatmap: str = JobOptions.heatmap

    def check(self) -> None:
        if not (0.2 <= self.window_s <= 10):
            raise ValueError(f"window must be between 0.2 and 10 s, got {self.window_s}")
        if not (0.05 <= self.stride_s <= self.window_s):
            raise ValueError(f"stride must be between 0.05 s and the window ({self.window_s} s), got {self.stride_s}")
        if not (0 <= self.smoothing_s <= 2):
            raise ValueError(f"smoothing must be between 0 and 2 s, got {self.smoothing_s}")

    def smoothing(self) -> dict[str, object]:
        if self.smoothing_s <= 0:
            return {"method": "none"}
        return {"method": "savgol", "window_s": float(self.smoothing_s)}


@dataclass
class Analysis:
    """Everything the page shows for one video."""

    name: str
    doc: dict[str, Any]
    fps: float
    keypoints: np.ndarray          # (N, 44, 2) pixels, NaN where missing
    heat: np.ndarray               # (N, 44) in [0, 1] (normalised over the video)
    heat_source: str
    energy: np.ndarray             # (N,) summed motion energy
    outputs: Outputs
    has_labels: bool
    labels_absent_reason: str | None = None  # why there are no labels (no checkpoint), None with labels
    region_motion: dict[str, np.ndarray] | None = None  # body part → (N,) pixel motion energy

    @property
    def duration_s(self) -> float:
        return len(self.keypoints) / self.fps

    def state(self) -> dict[str, Any]:
        """The small, path-free part kept in the browser session for the window slider."""
        return {"name": self.name, "doc": self.doc, "fps": self.fps, "keypoints": self.keypoints,
                "heat": self.heat, "heat_source": self.heat_source, "energy": self.energy,
                "has_labels": self.has_labels, "region_motion": self.region_motion}


def safe_key(name: str) -> str:
    """A file-name stem made only of letters, digits, ``-`` and ``_`` (for output names)."""
    stem = Path(name).stem
    key = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_.-")[:60]
    return key or "video"


class StageProgress:
    """The pipeline's progress factory ``(total, desc) -> context`` reported to ``report``
    (``gr.Progress``) as numbered stages; the classification stage is announced when pose
    extraction ends, since the pipeline gives it no bar of its own."""

    def __init__(self, report: Report | None, has_labels: bool) -> None:
        self.report = report
        self.classify_desc = ("3/4 Classifying windows with MMN" if has_labels
                              else "3/4 Computing motion energy (no checkpoint: no labels)")

    def say(self, desc: str, done: int | None = None, total: int | None = None, unit: str = "frames") -> None:
        if self.report is None:
            return
        if done is None or not total:
            self.report(None, desc=desc)
        else:
            self.report((min(done, total), total), desc=desc, unit=unit)

    @contextmanager
    def __call__(self, total: int, desc: str) -> Iterator[ProgressBar]:
        stage = desc.split(" ", 1)[0]
        label = {"pose": "2/4 Decoding video and estimating pose",
                 "render": "4/4 Rendering the annotated video"}.get(stage, desc)
        progress = self

        class Bar:
            n = 0

            def update(self, k: int = 1) -> None:
                self.n += k
                progress.say(label, self.n, total)

        self.say(label, 0, total)
        yield Bar()
        if stage == "pose":
            self.say(self.classify_desc)


def server_pose_options(cfg: AppConfig, smoothing: str | dict[str, object] = PoseOptions.smoothing) -> PoseOptions:
    """The server's pose backend and its options, with ``smoothing`` (a run's setting)."""
    quality = {"quality": cfg.pose_quality} if cfg.pose_backend == "mediapipe" else {}
    return PoseOptions(backend=cfg.pose_backend, options={**quality, **cfg.pose_options}, smoothing=smoothing)


def shared_estimator(cfg: AppConfig) -> SharedEstimator | None:
    """One pose model for the whole server (created on first use) when videos are processed
    one at a time (``concurrency`` 1), else None: each request then makes its own."""
    return SharedEstimator(server_pose_options(cfg)) if cfg.concurrency == 1 else None


def analyse(video: CheckedVideo, settings: Settings, models: Models | None, cfg: AppConfig, workdir: Path,
            report: Report | None = None, estimator: SharedEstimator | None = None) -> Analysis:
    """Run one checked upload through the pipeline into ``workdir`` (with ``estimator``, a
    :class:`pipelines.stages.pose.SharedEstimator`, when given). The outputs name the video
    as uploaded and the ``.eaf`` links it by that name (beside the ``.eaf``).

    Raises :class:`pipelines.job.StageError` (a readable stage and reason) and
    ValueError for bad settings.
    """
    settings.check()
    recognizer = models.get(settings.stream) if models is not None else None
    stages = StageProgress(report, recognizer is not None)
    stages.say("1/4 Checking the video")
    key = safe_key(video.name)
    opts = JobOptions(out=workdir, pose=server_pose_options(cfg, settings.smoothing()),
                      windows=WindowOptions(settings.window_s, settings.stride_s), heatmap=settings.heatmap,
                      export_clips=True, pictures=False,  # the page draws its own figures
                      elan=True, display_name=video.name, link_video_by_name=True, overwrite=True,
                      max_frames=cfg.max_frames)
    kept: list[tuple[Skeleton, LabelResult]] = []
    doc = process_video(VideoJob(video.path, key), opts, recognizer, stages,
                        on_result=lambda skel, result: kept.append((skel, result)), estimator=estimator)
    skel, result = kept[0]
    return Analysis(name=video.name, doc=doc, fps=float(doc["video"]["fps"]),
                    keypoints=np.asarray(skel.keypoints, np.float32),
                    heat=normalise_heat(result.frame_heat).astype(np.float32), heat_source=result.heat_source,
                    energy=result.motion_energy.sum(axis=1).astype(np.float32),
                    outputs=Outputs.for_key(workdir, key), has_labels=recognizer is not None,
                    labels_absent_reason=None if recognizer is not None else NO_WEIGHTS_REASON,
                    region_motion=result.region_series(LAYOUT))
