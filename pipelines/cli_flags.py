"""The flags the command lines share (``video_to_labels``, ``live``, ``build_dataset``): one
definition each, mapped to :class:`pipelines.stages.pose.PoseOptions`,
:class:`pipelines.stages.windowing.WindowOptions` and the labelling fields of
:class:`pipelines.options.JobOptions` (whose defaults they show)."""
from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import positive_float, positive_int, unit_interval
from pipelines.stages.pose import PoseOptions
from pipelines.stages.windowing import WindowOptions
from pose.estimators import BACKENDS as POSE_BACKENDS
from pose.estimators import DEFAULT_QUALITY as DEFAULT_POSE_QUALITY
from pose.estimators import POSE_QUALITIES
from pose.postprocess import SMOOTHING_METHODS

__all__ = ["add_label_arguments", "add_pose_arguments", "add_window_arguments", "pose_options", "window_options"]


def add_pose_arguments(ap: argparse.ArgumentParser) -> None:
    """``--pose-backend``, its options, ``--smoothing`` and ``--device``."""
    from mmn.inference import DEVICES

    ap.add_argument("--pose-backend", default=PoseOptions.backend, choices=POSE_BACKENDS)
    ap.add_argument("--pose-config", help="mmpose: model config file")
    ap.add_argument("--pose-checkpoint", help="mmpose: model checkpoint file")
    ap.add_argument("--pose-results", help="precomputed: AlphaPose Halpe-136 JSON or pyskl pickle with the skeletons")
    ap.add_argument("--pose-quality", default=DEFAULT_POSE_QUALITY, choices=POSE_QUALITIES,
                    help="mediapipe: fast (models on every 2nd-3rd frame while the person is tracked) or full "
                         "(Holistic on every frame, as before fast); docs/pose-speed.md")
    ap.add_argument("--smoothing", default=PoseOptions.smoothing, choices=SMOOTHING_METHODS)
    ap.add_argument("--device", default="auto", choices=DEVICES, help="MMN's (and mmpose's) device")


def pose_options(args: argparse.Namespace) -> PoseOptions:
    """The :class:`PoseOptions` of the flags (the chosen backend's options, those given);
    raises ValueError for a bad combination."""
    options = {"mediapipe": {"quality": getattr(args, "pose_quality", None)},
               "mmpose": {"config": args.pose_config, "checkpoint": args.pose_checkpoint, "device": args.device},
               "precomputed": {"path": args.pose_results}}.get(args.pose_backend, {})
    return PoseOptions(backend=args.pose_backend, options={k: v for k, v in options.items() if v is not None},
                       smoothing=args.smoothing)


def add_window_arguments(ap: argparse.ArgumentParser) -> None:
    """``--window`` and ``--stride`` (seconds)."""
    ap.add_argument("--window", type=positive_float, default=WindowOptions.window,
                    help="window length in seconds (≈ an MA-52 clip)")
    ap.add_argument("--stride", type=positive_float, default=WindowOptions.stride, help="window stride in seconds")


def window_options(args: argparse.Namespace) -> WindowOptions:
    """The :class:`WindowOptions` of the flags."""
    return WindowOptions(window=args.window, stride=args.stride)


def add_label_arguments(ap: argparse.ArgumentParser) -> None:
    """``--weights``, ``--weights-bone``, ``--threshold``, ``--top-k`` and ``--heatmap``."""
    from mmn.model import MAP_NAMES
    from pipelines.options import option_default as d

    ap.add_argument("--weights", type=Path,
                    help="MMN joint checkpoint, the authors' or mmn.train's (without it: model-free motion only)")
    ap.add_argument("--weights-bone", type=Path, help="MMN bone checkpoint: adds the 2S ensemble")
    ap.add_argument("--threshold", type=unit_interval, default=d("threshold"),
                    help="min top-1 probability to join a segment")
    ap.add_argument("--top-k", type=positive_int, default=d("top_k"))
    ap.add_argument("--heatmap", default=d("heatmap"), choices=MAP_NAMES,
                    help="modulation map drawn as the per-joint heat (with --weights)")
