"""pose: 44-joint whole-body skeletons from raw video.

Importing :mod:`pose` is cheap: it pulls in neither MediaPipe, mmpose nor torch. The heavy
pieces load on first use of the names below (``pose.extract_skeleton`` imports
:mod:`pose.extract`, which imports an estimator backend only when one is created).

Entry points:

- :func:`pose.extract.extract_skeleton`: video file → :class:`pose.skeleton_file.Skeleton`.
- :func:`pose.skeleton_file.write_skeleton` / :func:`~pose.skeleton_file.read_skeleton` /
  :func:`~pose.skeleton_file.export_npy`: the versioned HDF5 skeleton file.
- :func:`pose.estimators.create_estimator`: ``"mediapipe"`` | ``"mmpose"`` | ``"precomputed"``.
- :mod:`core.layouts`: joint sets (:data:`~core.layouts.MA52_44`).
"""
from __future__ import annotations

import importlib
from typing import Any

from core.layouts import IMIGUE_22, LAYOUTS, MA52_44, MSR_ACTION3D_20, SkeletonLayout, layout_for_joints

__all__ = [
    "SkeletonLayout", "MA52_44", "IMIGUE_22", "MSR_ACTION3D_20", "LAYOUTS", "layout_for_joints",
    "extract_skeleton", "Skeleton", "read_skeleton", "write_skeleton", "export_npy",
    "SkeletonFileError", "VideoError", "VideoInfo", "probe_video", "iter_frames",
    "create_estimator", "SmoothingConfig", "GapConfig",
]

# name -> submodule that defines it; resolved lazily so that `import pose` stays light.
_LAZY = {
    "extract_skeleton": "extract",
    "Skeleton": "skeleton_file", "read_skeleton": "skeleton_file", "write_skeleton": "skeleton_file",
    "export_npy": "skeleton_file", "SkeletonFileError": "skeleton_file",
    "VideoError": "video", "VideoInfo": "video", "probe_video": "video", "iter_frames": "video",
    "create_estimator": "estimators",
    "SmoothingConfig": "postprocess", "GapConfig": "postprocess",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pose' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
