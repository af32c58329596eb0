"""Stage 2, pose: frames in, a 44-joint skeleton track out (:mod:`pose`), kept as
``KEY.skeleton.h5`` and reused while the video and the pose options are unchanged.

Decoding, estimation, subject tracking and post-processing (gap filling, smoothing) are
:func:`pose.extract.extract_skeleton`; this stage adds the options every engine shares
(:class:`PoseOptions`), the file cache and the failures as :class:`StageError`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.layouts import MA52_44
from pipelines.discovery import VideoJob
from pipelines.stages.errors import StageError, write_error
from pipelines.stages.progress import ProgressFactory
from pose.estimators import BACKENDS as POSE_BACKENDS
from pose.estimators import backend_defaults
from pose.estimators.base import Estimator
from pose.postprocess import SmoothingConfig
from pose.skeleton_file import Skeleton
from pose.subject import SELECTION_VERSION

__all__ = ["LAYOUT", "REGION_MOTION_VERSION", "PoseOptions", "SharedEstimator", "load_or_extract_skeleton",
           "pose_record", "skeleton_stage"]

LAYOUT = MA52_44  # the pose stage makes MA-52 skeletons; checkpoints must read them
REGION_MOTION_VERSION = 1  # pixel motion per body part measured in the pose pass (skeletons before it: redone)


@dataclass(frozen=True)
class PoseOptions:
    """How skeletons are made (the ``--pose-backend``, ``--pose-*`` and ``--smoothing`` flags;
    the folder job, the dataset builder and the app share it). Checked when made."""

    backend: str = "mediapipe"
    options: Mapping[str, object] = field(default_factory=dict)  # the backend's (mmpose config, precomputed path)
    smoothing: str | Mapping[str, object] = "savgol"  # a method of SMOOTHING_METHODS, or SmoothingConfig fields

    def __post_init__(self) -> None:
        if self.backend not in POSE_BACKENDS:
            raise ValueError(f"pose_backend must be one of {', '.join(POSE_BACKENDS)}, got {self.backend!r}")
        self.smoothing_config()  # raises ValueError for an unknown method or bad fields

    def smoothing_config(self) -> SmoothingConfig:
        try:
            return SmoothingConfig.from_any(self.smoothing)
        except TypeError as e:
            raise ValueError(str(e)) from None


def pose_record(pose: PoseOptions) -> dict[str, object]:
    """The pose part of a job record: what a skeleton file depends on besides its video."""
    options = {**backend_defaults(pose.backend), **pose.options}  # MediaPipe's quality even when not given
    return {"backend": pose.backend, "options": {k: str(v) for k, v in sorted(options.items())},
            "smoothing": pose.smoothing_config().to_dict(), "region_motion": REGION_MOTION_VERSION,
            "subject": SELECTION_VERSION}


class SharedEstimator:
    """One pose estimator for many videos, created on first use (a run whose videos are all
    done never loads a pose model) and closed by :meth:`close`."""

    def __init__(self, pose: PoseOptions) -> None:
        self.pose, self._est = pose, None

    def get(self) -> Estimator:
        if self._est is None:
            from pose.estimators import create_estimator
            self._est = create_estimator(self.pose.backend, **self.pose.options)
        return self._est

    def close(self) -> None:
        if self._est is not None:
            self._est.close()
            self._est = None


def _json_equal(a: object, b: object) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def load_or_extract_skeleton(job: VideoJob, path: Path, pose: PoseOptions, pose_key: Mapping[str, object], *,
                             frames_hint: int, progress: ProgressFactory, estimator: SharedEstimator | None,
                             reuse: bool = True, max_frames: int | None = None) -> Skeleton:
    """The skeleton file ``path`` when it was made from the same input with the same pose
    options (and ``reuse``), else a new extraction written there."""
    from pose.extract import extract_skeleton
    from pose.skeleton_file import SkeletonFileError, read_skeleton, write_skeleton

    if reuse and path.is_file():
        try:
            skel = read_skeleton(path)
            if _json_equal(skel.meta.get("job_pose"), pose_key):
                return skel
        except SkeletonFileError:
            pass  # unreadable leftovers are redone
    with progress(frames_hint, f"pose {job.key}") as bar:
        kwargs = dict(smoothing=pose.smoothing_config(), progress=bar, max_frames=max_frames)
        if estimator is not None:
            skel = extract_skeleton(job.path, backend=estimator.get(), **kwargs)
        else:
            skel = extract_skeleton(job.path, backend=pose.backend, estimator_options=dict(pose.options) or None,
                                    **kwargs)
    skel.meta["job_pose"] = dict(pose_key)
    try:
        write_skeleton(skel, path)
    except OSError as e:
        raise write_error("pose", path, e) from e
    return skel


def skeleton_stage(job: VideoJob, path: Path, pose: PoseOptions, record: Mapping[str, object], *,
                   frames_hint: int, progress: ProgressFactory, estimator: SharedEstimator | None,
                   reuse: bool = True, max_frames: int | None = None) -> Skeleton:
    """The pose stage of any engine: the video's skeleton (a reused file or a new extraction
    written to ``path``), with every failure as a :class:`StageError` (``decode`` for the
    video, ``pose`` for the estimator or anything else, a video without a person included).
    ``record``: the job record (its ``input`` and ``pose`` parts identify the skeleton)."""
    from pose.video import VideoError

    pose_key = {"input": record["input"], "pose": record["pose"]}
    try:
        skel = load_or_extract_skeleton(job, path, pose, pose_key, frames_hint=frames_hint, progress=progress,
                                        estimator=estimator, reuse=reuse, max_frames=max_frames)
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
