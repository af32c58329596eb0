"""Video file → one subject's 44-joint skeleton: the function the pipeline calls.

``extract_skeleton(path)`` streams the decoded frames through an estimator, maps every
person to the 44 MA-52 joints (:mod:`pose.keypoint_tables`), follows one subject
(:mod:`pose.subject`) and post-processes the track (:mod:`pose.postprocess`). Only the
per-frame 44-joint candidates (a few hundred bytes per person and frame) are kept, never frames.

Command line: ``python -m pose.extract VIDEO [VIDEO ...] -o OUT_DIR [--backend mediapipe]
[--pose-quality fast|full] [--npy]`` writes ``OUT_DIR/<video stem>.skeleton.h5`` (and ``.npy``) per video, the name
``pipelines.video_to_labels`` gives (and reuses) too.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .estimators import DEFAULT_QUALITY, POSE_QUALITIES, Estimator, boxes_from_keypoints, create_estimator
from .keypoint_tables import MISSING, table_for
from .postprocess import GapConfig, SmoothingConfig, postprocess
from .region_motion import UNIT, RegionMotionEnergy
from .shot_cuts import cuts_record
from .skeleton_file import SCHEMA_VERSION, Skeleton, export_npy, write_skeleton
from .subject import SubjectConfig, SubjectTracker
from .video import VideoError, iter_frames, prefetch, probe_video

Progress = Callable[[int, int], Any] | Any


class _ProgressAdapter:
    """None, a callable ``(done, total)``, a tqdm-like object (``update``), or the tqdm class."""

    def __init__(self, progress: Progress, total: int, desc: str) -> None:
        self.own = False
        self.bar = None
        self.fn = None
        if progress is None:
            return
        if isinstance(progress, type):  # e.g. tqdm.tqdm: make a bar
            self.bar = progress(total=total or None, unit="frame", desc=desc)
            self.own = True
        elif hasattr(progress, "update"):
            self.bar = progress
        elif callable(progress):
            self.fn = progress
        else:
            raise TypeError("progress must be None, a callable(done, total) or a tqdm-like object")
        self.total = total

    def step(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(1)
        elif self.fn is not None:
            self.fn(done, self.total)

    def close(self) -> None:
        if self.own and self.bar is not None:
            self.bar.close()


def _feeding(mea: RegionMotionEnergy, frames):
    """Pass ``(index, t, frame)`` through, giving each frame to ``mea`` first (this runs in the
    decode thread under :func:`prefetch`, beside the estimator)."""
    for index, t, frame in frames:
        mea.push_frame(index, frame)
        yield index, t, frame


def extract_skeleton(video_path: str | Path, backend: str | Estimator = "mediapipe", *,
                     smoothing: SmoothingConfig | dict | str | None = "default",
                     gap: GapConfig | None = None, subject: SubjectConfig | None = None,
                     estimator_options: dict[str, Any] | None = None,
                     progress: Progress = None, hash_whole_file: bool = False,
                     max_frames: int | None = None, region_motion: bool = True) -> Skeleton:
    """Estimate, map, follow and clean one subject's skeleton in a video.

    Args:
        video_path: the video file.
        backend: ``"mediapipe"`` (default, offline), ``"mmpose"``, ``"precomputed"``, or an
            :class:`~pose.estimators.base.Estimator` instance (reused across videos; it is
            reset, not closed).
        smoothing: :class:`~pose.postprocess.SmoothingConfig`, a dict of its fields, a method
            name (``"savgol"``, ``"one_euro"``, ``"none"``), ``"default"`` or None (none).
        gap: short-gap filling settings (default :class:`~pose.postprocess.GapConfig`).
        subject: subject-tracking settings (default :class:`~pose.subject.SubjectConfig`).
        estimator_options: keyword arguments for :func:`~pose.estimators.create_estimator`
            (e.g. ``{"config": ..., "checkpoint": ...}`` for mmpose, ``{"path": ...}`` for
            precomputed results).
        progress: None, a callable ``(frames_done, frames_expected)``, a tqdm instance, or
            the tqdm class itself.
        hash_whole_file: store the whole file's sha256 besides that of its first MiB.
        max_frames: refuse (VideoError) a video with more decoded frames than this.
        region_motion: also measure each body part's pixel motion energy in the same pass
            (:mod:`pose.region_motion`; backends that decode frames only), stored as the
            skeleton's ``region_motion`` (N, parts).
    Returns:
        :class:`~pose.skeleton_file.Skeleton` with one skeleton per decoded frame:
        keypoints (N, 44, 2) float32 pixels, scores (N, 44), timestamps (N,) s, flags, meta.
    Raises:
        VideoError: the video is missing, unreadable, empty or truncated.
    """
    video_path = Path(video_path)
    info = probe_video(video_path, hash_whole_file=hash_whole_file)
    smoothing_cfg = SmoothingConfig.from_any(smoothing)
    gap = gap or GapConfig()
    if isinstance(backend, Estimator):
        est, own = backend, False
        if estimator_options:
            raise ValueError("estimator_options apply only when backend is given by name")
    else:
        est, own = create_estimator(backend, **(estimator_options or {})), True
    bind = getattr(est, "bind_video", None)  # precomputed results: pick this video's sample
    if bind is not None:
        bind(video_path)
    table = table_for(est.keypoint_format)
    layout = table.layout
    tracker = SubjectTracker(info.width, info.height, subject, multi_person=est.multi_person)
    mea = RegionMotionEnergy(layout) if region_motion and est.needs_pixels else None
    candidates: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    interpolated = 0  # frames the estimator interpolated instead of estimating (MediaPipe quality fast)
    timestamps: list[float] = []
    bar = _ProgressAdapter(progress, info.frame_count, video_path.name)
    try:
        est.reset()
        frames = iter_frames(video_path, decode=est.needs_pixels, max_frames=max_frames)
        if est.needs_pixels and mea is not None:
            frames = _feeding(mea, frames)
        if est.needs_pixels:  # decode the next frames while the estimator works on this one
            frames = prefetch(frames)
        for fp in est.stream(frames):
            if fp.index != len(candidates):
                raise RuntimeError(f"{est.name} returned frame {fp.index}, expected {len(candidates)}")
            kp, sc, fl = table.map(fp.keypoints, fp.scores)
            if mea is not None:
                mea.add_pose(fp.index, kp)
            # people are followed by the extent of their joints, whatever box the backend cropped
            tracker.update(fp.index, boxes_from_keypoints(kp, sc), sc.mean(1) if sc.size else np.zeros(0))
            candidates.append((kp, sc, fl))
            timestamps.append(fp.timestamp)
            interpolated += bool(fp.extra.get("interpolated"))
            bar.step(len(candidates))
    finally:
        bar.close()
        if own:
            est.close()
        else:
            est.reset()

    n, v = len(candidates), layout.num_joints
    # shot cuts from the whole frame's pixel difference (measured with region motion)
    shot_cuts = None if mea is None else cuts_record(mea.frame_difference(n), timestamps)
    pick, subject_meta = tracker.choose(None if shot_cuts is None else shot_cuts["frames"])
    region = mea.result(pick) if mea is not None else None
    keypoints = np.full((n, v, 2), np.nan, np.float32)
    scores = np.zeros((n, v), np.float32)
    flags = np.full((n, v), MISSING, np.uint8)
    for f, p in pick.items():
        kp, sc, fl = candidates[f]
        keypoints[f], scores[f], flags[f] = kp[p], sc[p], fl[p]
    ts = np.asarray(timestamps, np.float64)
    keypoints, scores, flags, pp = postprocess(keypoints, scores, flags, ts, info.fps, gap, smoothing_cfg)
    meta = {
        "video": {**{k: val for k, val in info.to_dict().items() if k != "path"},
                  "decoded_frames": n},
        "backend": {"name": est.name, "version": est.version(), "keypoint_format": est.keypoint_format,
                    "options": est.options(), "interpolated_frames": interpolated},
        "layout": layout.name,
        "subject": subject_meta,
        "shot_cuts": shot_cuts,
        "postprocess": pp,
        "region_motion": None if mea is None else {"regions": mea.names, "unit": UNIT, "scale": mea.scale,
                                                   "pad_torso_lengths": mea.pad},
        "created": {"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "schema_version": SCHEMA_VERSION, "python": platform.python_version(),
                    "numpy": np.__version__},
    }
    return Skeleton(keypoints, scores, ts, flags, meta, layout, region).validate()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pose.extract", description=__doc__.split("\n")[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("-o", "--out-dir", type=Path, required=True)
    ap.add_argument("--backend", default="mediapipe", choices=["mediapipe", "mmpose", "precomputed"])
    ap.add_argument("--pose-quality", default=DEFAULT_QUALITY, choices=POSE_QUALITIES,
                    help="mediapipe: fast (default; models on every 2nd-3rd frame while the person is tracked) or full "
                         "(Holistic on every frame, the configuration before fast); docs/pose-speed.md")
    ap.add_argument("--smoothing", default="default", help="savgol | one_euro | none | default")
    ap.add_argument("--npy", action="store_true", help="also write <stem>.npy (N, 44, 2)")
    ap.add_argument("--mmpose-config", help="mmpose config (file or name inside the mmpose package)")
    ap.add_argument("--mmpose-checkpoint", help="local checkpoint file for --backend mmpose")
    ap.add_argument("--results", type=Path, help="precomputed results file for --backend precomputed")
    args = ap.parse_args(argv)
    opts: dict[str, Any] = {"quality": args.pose_quality} if args.backend == "mediapipe" else {}
    if args.backend == "mmpose":
        opts = {k: v for k, v in (("config", args.mmpose_config), ("checkpoint", args.mmpose_checkpoint)) if v}
    est = create_estimator(args.backend, **opts) if args.backend != "precomputed" else None
    failed = 0
    try:
        for video in args.videos:
            try:
                if est is None:
                    skel = extract_skeleton(video, "precomputed", smoothing=args.smoothing,
                                            estimator_options={"path": args.results})
                else:
                    skel = extract_skeleton(video, est, smoothing=args.smoothing)
            except VideoError as e:
                print(f"skipped: {e}", file=sys.stderr)
                failed += 1
                continue
            out = write_skeleton(skel, args.out_dir / f"{video.stem}.skeleton.h5")
            if args.npy:
                export_npy(skel, args.out_dir / f"{video.stem}.npy")
            print(f"{video.name}: {skel.num_frames} frames -> {out}")
    finally:
        if est is not None:
            est.close()
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
