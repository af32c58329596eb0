"""The pose flags of the command lines that run the pose stage (``video_to_labels``,
``build_dataset``): one definition, one mapping to :attr:`pipelines.job.JobOptions.pose_options`."""
from __future__ import annotations

import argparse
from typing import Any

from pipelines.job import option_default
from pose.estimators import BACKENDS as POSE_BACKENDS
from pose.postprocess import SMOOTHING_METHODS

__all__ = ["add_pose_arguments", "pose_options"]


def add_pose_arguments(ap: argparse.ArgumentParser) -> None:
    """``--pose-backend``, its options, ``--smoothing`` and ``--device``."""
    from mmn.inference import DEVICES

    ap.add_argument("--pose-backend", default=option_default("pose_backend"), choices=POSE_BACKENDS)
    ap.add_argument("--pose-config", help="mmpose: model config file")
    ap.add_argument("--pose-checkpoint", help="mmpose: model checkpoint file")
    ap.add_argument("--pose-results", help="precomputed: AlphaPose Halpe-136 JSON or pyskl pickle with the skeletons")
    ap.add_argument("--smoothing", default=option_default("smoothing"), choices=SMOOTHING_METHODS)
    ap.add_argument("--device", default="auto", choices=DEVICES, help="MMN's (and mmpose's) device")


def pose_options(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen backend's options from the flags (those given)."""
    options = {"mmpose": {"config": args.pose_config, "checkpoint": args.pose_checkpoint, "device": args.device},
               "precomputed": {"path": args.pose_results}}.get(args.pose_backend, {})
    return {k: v for k, v in options.items() if v is not None}
