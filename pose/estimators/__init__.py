"""Pose backends behind one interface (:class:`~pose.estimators.base.Estimator`).

``create_estimator(name, **kwargs)`` builds one by name, importing its library only then:

- ``"mediapipe"`` (default, offline): :class:`~pose.estimators.mediapipe_holistic.MediaPipeHolisticEstimator`
- ``"mmpose"`` (optional extra): :class:`~pose.estimators.mmpose_wholebody.MMPoseWholeBodyEstimator`
- ``"precomputed"``: :class:`~pose.estimators.precomputed.PrecomputedEstimator`
  (AlphaPose Halpe-136 JSON, pyskl pickles)
"""
from __future__ import annotations

from typing import Any

from .base import Estimator, FramePoses, boxes_from_keypoints
from .mediapipe_holistic import DEFAULT_QUALITY, QUALITIES

BACKENDS = ("mediapipe", "mmpose", "precomputed")
POSE_QUALITIES = tuple(QUALITIES)  # MediaPipe's presets (``quality``): fast (default) and full

__all__ = ["Estimator", "FramePoses", "boxes_from_keypoints", "create_estimator", "backend_defaults", "BACKENDS",
           "DEFAULT_QUALITY", "POSE_QUALITIES"]


def backend_defaults(name: str) -> dict[str, Any]:
    """The options a backend runs with when not given, that change its output (for records
    of what made a skeleton): MediaPipe's ``quality``."""
    return {"quality": DEFAULT_QUALITY} if name.lower().startswith("mediapipe") else {}


def create_estimator(name: str, **kwargs: Any) -> Estimator:
    """Build the backend ``name`` (one of :data:`BACKENDS`) with its keyword options."""
    key = name.lower().replace("-", "_")
    if key in ("mediapipe", "mediapipe_holistic"):
        from .mediapipe_holistic import MediaPipeHolisticEstimator

        return MediaPipeHolisticEstimator(**kwargs)
    if key in ("mmpose", "mmpose_wholebody"):
        from .mmpose_wholebody import MMPoseWholeBodyEstimator

        return MMPoseWholeBodyEstimator(**kwargs)
    if key == "precomputed":
        from .precomputed import PrecomputedEstimator

        return PrecomputedEstimator(**kwargs)
    raise ValueError(f"unknown pose backend {name!r} (choose from {', '.join(BACKENDS)})")
