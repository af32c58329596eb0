"""Label a folder of interview videos with a micro-action timeline per video.

    python -m pipelines.video_to_labels INPUT... --out DIR [--weights J.pt [--weights-bone B.pt]]
        [--recursive] [--export-clips] [--window 2.0] [--stride 0.5] [--shard K/N] [--overwrite]

Per video (``KEY`` = the file's stem, or its path relative to the input folder with ``/``
turned into ``__``), each written atomically:

- ``KEY.skeleton.h5``: the 44-joint track (see docs/skeleton-file.md);
- ``KEY.labels.json``: windows, top-k actions, merged segments, heatmap summary
  (schema: ``pipelines/labels.schema.json``); written last, so it marks the video done;
- ``KEY.heatmap.png``: joints × time picture of the per-joint heat (the MMN modulation map,
  or model-free motion energy without a checkpoint), rows grouped by body part;
- ``KEY.timeline.png``: the micro-actions over time (segments, each window's top-1, motion
  energy), or just the motion energy without a checkpoint;
- ``KEY.annotated.mp4`` with ``--export-clips``: H.264, skeleton + heat + top-3 + timeline;
- ``KEY.failed.json`` instead, for a file that failed: stage, reason and the file's size and
  modification time, so a rerun reports it again without retrying an unchanged broken file.

Across the run: ``windows.csv``, ``summary.csv`` and ``failures.csv`` (with ``--shard K/N``:
``summary.shard-K-of-N.csv`` and so on). A rerun skips finished videos (``--overwrite`` redoes
them), reuses a finished skeleton file and retries a failed file only if it changed (or with
``--retry-failed``). Bad files are recorded in ``failures.csv`` and the
run goes on. Exit status: 0 all videos succeeded, 1 some failed, 2 usage error, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from mmn.checkpoint import CheckpointError
from mmn.inference import Recognizer
from mmn.model import MAP_NAMES
from mmn.preprocess import CLIP_LEN
from pipelines.atomic import atomic_path, atomic_write_text, remove_stale_parts
from pipelines.labelling import LabelResult, heat_summary, label_track
from pipelines.motion_energy import normalise_heat
from pipelines.render import BODY_LEVEL_COLOURS_BGR, NO_LABEL_BGR, FrameAnnotation, render_annotated_clip
from pipelines.windowing import make_windows
from pose.skeleton_layout import MA52_44

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
NO_WEIGHTS_REASON = ("no MMN checkpoint given (--weights): skeletons, motion-energy heatmaps and "
                     "annotated clips only. Labels need the authors' MA-52 checkpoint or one trained "
                     "with mmn.train; see the README, 'The authors' checkpoints'.")
NO_LABELS_NOTE = "no labels: run with --weights"  # drawn on the clip and the timeline
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PipelineOptions:
    """How one video is processed (the CLI flags of the same names; the web app fills it too)."""

    out: Path
    pose_backend: str = "mediapipe"
    pose_options: dict = field(default_factory=dict)
    smoothing: str = "savgol"
    window: float = 2.0
    stride: float = 0.5
    threshold: float = 0.5
    top_k: int = 5
    heatmap: str = "msm_gamma"
    batch_size: int = 64
    export_clips: bool = False
    clip_preset: str = "veryfast"
    pictures: bool = True  # KEY.heatmap.png and KEY.timeline.png (the web app draws its own)
    overwrite: bool = False


CLIP_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
ProgressFactory = Callable[[int, str], Any]  # (total, description) -> context manager with .update(n)


def tqdm_frames(total: int, desc: str):
    """Default per-stage progress: a second tqdm bar under the videos bar."""
    return tqdm(total=total, desc=desc, unit="frame", position=1, leave=False, dynamic_ncols=True)


@dataclass(frozen=True)
class VideoJob:
    path: Path
    key: str


@dataclass(frozen=True)
class Outputs:
    skeleton: Path
    labels: Path
    heatmap: Path
    timeline: Path
    clip: Path

    failed: Path

    @classmethod
    def for_key(cls, out_dir: Path, key: str) -> "Outputs":
        return cls(out_dir / f"{key}.skeleton.h5", out_dir / f"{key}.labels.json", out_dir / f"{key}.heatmap.png",
                   out_dir / f"{key}.timeline.png", out_dir / f"{key}.annotated.mp4", out_dir / f"{key}.failed.json")


class StageError(RuntimeError):
    """A video failed at ``stage``; the message is the reason written to failures.csv."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage


def discover(inputs: Sequence[Path], recursive: bool) -> list[VideoJob]:
    """Video files named directly, plus videos inside named folders (by suffix), in a stable
    order, each with a unique output key. Raises FileNotFoundError for a missing input."""
    jobs: list[VideoJob] = []
    for inp in inputs:
        if inp.is_dir():
            pattern = "**/*" if recursive else "*"
            for p in sorted(inp.glob(pattern)):
                if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."):
                    rel = p.relative_to(inp).with_suffix("")
                    jobs.append(VideoJob(p, "__".join(rel.parts)))
        elif inp.exists():
            jobs.append(VideoJob(inp, inp.stem))
        else:
            raise FileNotFoundError(f"{inp}: no such file or folder")
    seen: dict[str, int] = {}
    unique = []
    for job in jobs:
        if job.key in seen:  # same stem from two places: disambiguate by path hash
            job = VideoJob(job.path, f"{job.key}-{hashlib.sha1(str(job.path.resolve()).encode()).hexdigest()[:8]}")
        seen[job.key] = 1
        unique.append(job)
    return unique


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like K/N, got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise argparse.ArgumentTypeError(f"--shard K/N needs 0 ≤ K < N, got {text!r}")
    return k, n


def select_shard(jobs: Sequence[VideoJob], k: int, n: int) -> list[VideoJob]:
    """Deterministic split: sort by key, keep every n-th starting at k. The N shards together
    cover the list exactly once, whatever machine computes them."""
    return [j for i, j in enumerate(sorted(jobs, key=lambda j: j.key)) if i % n == k]


def is_complete(outputs: Outputs, export_clips: bool) -> bool:
    return (all(p.is_file() for p in (outputs.labels, outputs.skeleton, outputs.heatmap, outputs.timeline))
            and (not export_clips or outputs.clip.is_file()))


def _fingerprint(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def record_failure(job: VideoJob, outputs: Outputs, error: StageError) -> None:
    doc = {"file": str(job.path), "stage": error.stage, "reason": str(error), "fingerprint": None}
    try:
        doc["fingerprint"] = _fingerprint(job.path)
    except OSError:
        pass
    atomic_write_text(outputs.failed, json.dumps(doc, indent=1))


def known_failure(job: VideoJob, outputs: Outputs) -> StageError | None:
    """The recorded failure of this file if the file has not changed since, else None."""
    try:
        doc = json.loads(outputs.failed.read_text())
        if doc.get("fingerprint") == _fingerprint(job.path):
            return StageError(doc["stage"], doc["reason"])
    except (OSError, ValueError, KeyError):
        pass
    return None


# --------------------------------------------------------------------------- one video


class LazyEstimator:
    """One pose estimator for the whole run, created on first use (a run whose videos are all
    done never loads a pose model) and closed by :meth:`close`."""

    def __init__(self, backend: str, options: dict) -> None:
        self.backend, self.options, self._est = backend, options, None

    def get(self):
        if self._est is None:
            from pose.estimators import create_estimator
            self._est = create_estimator(self.backend, **self.options)
        return self._est

    def close(self) -> None:
        if self._est is not None:
            self._est.close()
            self._est = None


def load_or_extract_skeleton(job: VideoJob, outputs: Outputs, opts: PipelineOptions, info,
                             progress: ProgressFactory = tqdm_frames,
                             estimator: LazyEstimator | None = None) -> Any:
    from pose.extract import extract_skeleton
    from pose.skeleton_file import SkeletonFileError, read_skeleton, write_skeleton

    if outputs.skeleton.is_file() and not opts.overwrite:
        try:
            skel = read_skeleton(outputs.skeleton)
            if skel.meta.get("video", {}).get("sha256_first_mib") == info.sha256_first_mib:
                return skel
        except SkeletonFileError:
            pass  # unreadable leftovers are redone
    with progress(info.frame_count, f"pose {job.key}") as bar:
        if estimator is not None:
            skel = extract_skeleton(job.path, backend=estimator.get(), smoothing=opts.smoothing, progress=bar)
        else:
            skel = extract_skeleton(job.path, backend=opts.pose_backend, smoothing=opts.smoothing,
                                    estimator_options=opts.pose_options or None, progress=bar)
    write_skeleton(skel, outputs.skeleton)
    return skel


def labels_document(job: VideoJob, info, skel, result: LabelResult, recognizer: Recognizer | None,
                    opts: PipelineOptions, outputs: Outputs, windows, timing: dict[str, float]) -> dict:
    n = int(skel.keypoints.shape[0])
    fps = float(info.fps)
    model = None
    if recognizer is not None:
        model = {
            "streams": [{"file": m.pretrained_cfg["file"], "sha256": m.pretrained_cfg["sha256"], "modality": mod}
                        for m, mod in zip(recognizer.streams, recognizer.modalities)],
            "dataset": recognizer.dataset, "layout": recognizer.layout.name,
            "ensemble": "2S (0.5 joint + 0.5 bone)" if len(recognizer.streams) == 2 else None,
            "device": str(recognizer.device),
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "video": {"file_name": info.file_name, "path": str(job.path), "width": info.width, "height": info.height,
                  "fps": fps, "frame_count": n, "duration_s": round(n / fps, 4), "rotation": info.rotation,
                  "sha256_first_mib": info.sha256_first_mib},
        "pose": {"backend": skel.meta.get("backend", {}).get("name", opts.pose_backend),
                 "backend_version": skel.meta.get("backend", {}).get("version"),
                 "skeleton_file": outputs.skeleton.name, "layout": MA52_44.name,
                 "subject": skel.meta.get("subject")},
        "model": model,
        "labels_absent_reason": None if recognizer is not None else NO_WEIGHTS_REASON,
        "windowing": {"window_s": opts.window, "stride_s": opts.stride,
                      "window_frames": windows[0].length if windows else 0,
                      "stride_frames": max(1, int(round(opts.stride * fps))), "clip_len": CLIP_LEN,
                      "threshold": opts.threshold},
        "windows": result.windows,
        "segments": result.segments,
        "heatmap": heat_summary(result.frame_heat, MA52_44, result.heat_source),
        "outputs": {"skeleton": outputs.skeleton.name, "labels": outputs.labels.name,
                    "heatmap_png": outputs.heatmap.name if opts.pictures else None,
                    "timeline_png": outputs.timeline.name if opts.pictures else None,
                    "annotated_clip": outputs.clip.name if opts.export_clips else None},
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
    }


def write_pictures(job: VideoJob, info, result: LabelResult, outputs: Outputs, has_labels: bool) -> None:
    """``KEY.heatmap.png`` (joints × time, heat scaled as on the clip) and ``KEY.timeline.png``."""
    from pipelines import figures

    fps = float(info.fps)
    n = len(result.frame_heat)
    source = figures.heat_name(result.heat_source)
    heatmap = figures.joint_heatmap(normalise_heat(result.frame_heat), fps, 0, MA52_44, result.heat_source,
                                    vmax=1.0, title=f"{job.path.name} · per-joint {source}")
    timeline = figures.timeline(n / fps, result.segments, result.windows,
                                result.extras["motion_energy"].sum(axis=1), fps,
                                note=None if has_labels else NO_LABELS_NOTE,
                                title=f"{job.path.name} · micro-actions over time")
    for picture, path in ((heatmap, outputs.heatmap), (timeline, outputs.timeline)):
        with atomic_path(path) as tmp:
            picture.save(tmp)


def export_clip(job: VideoJob, info, skel, result: LabelResult, outputs: Outputs, has_labels: bool,
                progress: ProgressFactory = tqdm_frames, preset: str = "veryfast") -> None:
    from pose.video import iter_frames, prefetch

    n = skel.keypoints.shape[0]
    heat = normalise_heat(result.frame_heat)
    colours = np.array([BODY_LEVEL_COLOURS_BGR[b] if b >= 0 else NO_LABEL_BGR for b in result.frame_body], np.uint8)
    energy = result.extras["motion_energy"].sum(axis=1)
    annotations = [FrameAnnotation(lines) for lines in result.frame_top]
    banner = None if has_labels else NO_LABELS_NOTE
    with progress(n, f"render {job.key}") as bar:
        frames = prefetch(frame for _, _, frame in iter_frames(job.path))  # decode ahead of drawing
        render_annotated_clip(frames, outputs.clip, fps=info.fps,
                              keypoints=skel.keypoints, scores=skel.scores, heat=heat, annotations=annotations,
                              timeline_colours=colours, energy=energy, banner=banner, layout=MA52_44,
                              preset=preset, progress=bar.update)


def process_video(job: VideoJob, opts: PipelineOptions, recognizer: Recognizer | None,
                  progress: ProgressFactory = tqdm_frames,
                  on_result: Callable[[Any, LabelResult], None] | None = None,
                  estimator: LazyEstimator | None = None) -> dict[str, Any]:
    """Run one video end to end (pose → windows → MMN → outputs); returns its labels
    document, written last to ``KEY.labels.json``. Raises :class:`StageError`.
    ``on_result(skeleton, label_result)`` is called once the windows are classified (the web
    app keeps the per-frame heat from it). ``estimator`` shares one pose model across videos
    (default: a fresh one per call)."""
    from pose.video import VideoError, probe_video

    outputs = Outputs.for_key(opts.out, job.key)
    remove_stale_parts(opts.out, job.key)
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        info = probe_video(job.path)
    except VideoError as e:
        raise StageError("probe", str(e)) from None
    try:
        skel = load_or_extract_skeleton(job, outputs, opts, info, progress, estimator)
    except VideoError as e:
        raise StageError("decode", str(e)) from None
    except (ValueError, RuntimeError, OSError) as e:
        raise StageError("pose", f"{job.path}: {e}") from None
    timing["pose"] = time.perf_counter() - t0

    present = np.isfinite(skel.keypoints).all(axis=2).any(axis=1)
    if not present.any():
        raise StageError("pose", f"{job.path}: no person detected in any of {len(present)} frames")

    t1 = time.perf_counter()
    windows = make_windows(len(skel.keypoints), float(info.fps), opts.window, opts.stride)
    result = label_track(skel.keypoints, float(info.fps), windows, MA52_44, recognizer, top_k=opts.top_k,
                         threshold=opts.threshold, heatmap=opts.heatmap, batch_size=opts.batch_size)
    timing["model"] = time.perf_counter() - t1
    if on_result is not None:
        on_result(skel, result)
    if opts.pictures:
        t2 = time.perf_counter()
        write_pictures(job, info, result, outputs, recognizer is not None)
        timing["pictures"] = time.perf_counter() - t2
    if opts.export_clips:
        t2 = time.perf_counter()
        try:
            export_clip(job, info, skel, result, outputs, recognizer is not None, progress, opts.clip_preset)
        except VideoError as e:
            raise StageError("render", str(e)) from None
        timing["render"] = time.perf_counter() - t2
    timing["total"] = time.perf_counter() - t0
    doc = labels_document(job, info, skel, result, recognizer, opts, outputs, windows, timing)
    atomic_write_text(outputs.labels, json.dumps(doc, indent=1))
    return doc


# --------------------------------------------------------------------------- run tables


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def window_rows(key: str, doc: dict) -> list[list[Any]]:
    rows = []
    for w in doc["windows"]:
        top = w.get("top_k") or []
        first = top[0] if top else {}
        rows.append([key, w["index"], w["start_s"], w["end_s"], w["start_frame"], w["end_frame"],
                     first.get("code", first.get("index", "")), first.get("name", ""),
                     round(first["prob"], 6) if first else "", w.get("body", {}).get("name", ""),
                     ";".join(f"{r.get('code', r['index'])}:{r['prob']:.4f}" for r in top), w.get("skipped", "")])
    return rows


def summary_row(key: str, status: str, doc: dict | None) -> list[Any]:
    if doc is None:
        return [key, status] + [""] * 8
    segs = doc["segments"]
    dominant = ""
    if segs:
        by_class: dict[str, float] = {}
        for s in segs:
            by_class[s.get("code", str(s["class_index"])) + " " + s["name"]] = \
                by_class.get(s.get("code", str(s["class_index"])) + " " + s["name"], 0.0) + s["end_s"] - s["start_s"]
        dominant = max(by_class, key=by_class.get)
    labelled = sum(1 for w in doc["windows"] if "top_k" in w)
    return [key, status, doc["video"]["frame_count"], doc["video"]["duration_s"], doc["video"]["fps"],
            len(doc["windows"]), labelled, dominant, doc["heatmap"]["source"],
            " ".join(doc["heatmap"]["hottest_joints"][:3])]


def write_run_tables(out: Path, suffix: str, windows: list, summary: list, failures: list) -> None:
    atomic_write_text(out / f"windows{suffix}.csv", _csv_text(
        ["video", "window", "start_s", "end_s", "start_frame", "end_frame", "top1_code", "top1_name",
         "top1_prob", "body", "top_k", "skipped"], windows))
    atomic_write_text(out / f"summary{suffix}.csv", _csv_text(
        ["video", "status", "frames", "duration_s", "fps", "windows", "labelled_windows", "dominant_action",
         "heat_source", "hottest_joints"], summary))
    atomic_write_text(out / f"failures{suffix}.csv", _csv_text(["file", "stage", "reason"], failures))


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pipelines.video_to_labels",
                                 description="Label interview videos with micro-actions over time.")
    ap.add_argument("inputs", nargs="+", type=Path, help="video files and/or folders")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--recursive", action="store_true", help="look for videos in sub-folders too")
    ap.add_argument("--weights", type=Path, help="MMN joint checkpoint (the authors' or mmn.train's)")
    ap.add_argument("--weights-bone", type=Path, help="MMN bone checkpoint: adds the 2S ensemble")
    ap.add_argument("--pose-backend", default="mediapipe", choices=("mediapipe", "mmpose", "precomputed"))
    ap.add_argument("--pose-config", help="mmpose: model config file")
    ap.add_argument("--pose-checkpoint", help="mmpose: model checkpoint file")
    ap.add_argument("--pose-results", help="precomputed: AlphaPose Halpe-136 JSON or pyskl pickle with the skeletons")
    ap.add_argument("--smoothing", default="savgol", choices=("savgol", "one_euro", "none"))
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--window", type=float, default=2.0, help="window length in seconds (≈ an MA-52 clip)")
    ap.add_argument("--stride", type=float, default=0.5, help="window stride in seconds")
    ap.add_argument("--threshold", type=float, default=0.5, help="min top-1 probability to join a segment")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--heatmap", default="msm_gamma", choices=MAP_NAMES,
                    help="modulation map drawn as the per-joint heat (with --weights)")
    ap.add_argument("--batch-size", type=int, default=64, help="windows per MMN batch")
    ap.add_argument("--export-clips", action="store_true", help="also write KEY.annotated.mp4")
    ap.add_argument("--clip-preset", default="veryfast", choices=CLIP_PRESETS,
                    help="x264 preset of the clips: ultrafast encodes ~2x faster, files ~2.6x larger")
    ap.add_argument("--shard", type=parse_shard, help="K/N: process the K-th of N deterministic shares")
    ap.add_argument("--overwrite", action="store_true", help="redo videos that are already done")
    ap.add_argument("--retry-failed", action="store_true", help="retry files that failed before and did not change")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.window <= 0 or args.stride <= 0 or args.top_k < 1:
        ap.error("--window, --stride and --top-k must be positive")
    if args.weights_bone and not args.weights:
        ap.error("--weights-bone needs --weights (the joint stream)")
    try:
        jobs = discover(args.inputs, args.recursive)
    except FileNotFoundError as e:
        ap.error(str(e))
    suffix = ""
    if args.shard:
        k, n = args.shard
        jobs = select_shard(jobs, k, n)
        suffix = f".shard-{k}-of-{n}"
    args.out.mkdir(parents=True, exist_ok=True)
    pose_options = {"mmpose": {"config": args.pose_config, "checkpoint": args.pose_checkpoint, "device": args.device},
                    "precomputed": {"path": args.pose_results}}.get(args.pose_backend, {})
    opts = PipelineOptions(out=args.out, pose_backend=args.pose_backend,
                           pose_options={k: v for k, v in pose_options.items() if v is not None},
                           smoothing=args.smoothing, window=args.window, stride=args.stride,
                           threshold=args.threshold, top_k=args.top_k, heatmap=args.heatmap,
                           batch_size=args.batch_size, export_clips=args.export_clips, clip_preset=args.clip_preset,
                           overwrite=args.overwrite)

    recognizer = None
    if args.weights:
        try:
            recognizer = Recognizer.from_checkpoints(args.weights, args.weights_bone, args.device)
        except (CheckpointError, ValueError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if recognizer.layout.name != MA52_44.name:
            print(f"error: {args.weights} is a {recognizer.layout.name} model; video pipelines make "
                  f"{MA52_44.name} skeletons", file=sys.stderr)
            return 2
    else:
        print(f"note: {NO_WEIGHTS_REASON}", file=sys.stderr)

    windows_rows: list = []
    summary_rows: list = []
    failures: list = []
    estimator = LazyEstimator(opts.pose_backend, opts.pose_options)
    try:
        with tqdm(total=len(jobs), desc="videos", unit="video", position=0, dynamic_ncols=True) as bar:
            for job in jobs:
                outputs = Outputs.for_key(args.out, job.key)
                doc, status = None, "done"
                if not args.overwrite and is_complete(outputs, args.export_clips):
                    try:
                        doc, status = json.loads(outputs.labels.read_text()), "already done"
                    except (OSError, ValueError):
                        doc = None
                if doc is None:
                    try:
                        known = None if (args.overwrite or args.retry_failed) else known_failure(job, outputs)
                        if known is not None:
                            raise known
                        outputs.failed.unlink(missing_ok=True)
                        doc = process_video(job, opts, recognizer, estimator=estimator)
                    except StageError as e:
                        if e is not known:
                            record_failure(job, outputs, e)
                        failures.append([str(job.path), e.stage, str(e)])
                        summary_rows.append(summary_row(job.key, "failed", None))
                        again = " (unchanged since it last failed; --retry-failed retries)" if e is known else ""
                        tqdm.write(f"failed [{e.stage}] {e}{again}", file=sys.stderr)
                        bar.update(1)
                        continue
                windows_rows.extend(window_rows(job.key, doc))
                summary_rows.append(summary_row(job.key, status, doc))
                bar.update(1)
    except KeyboardInterrupt:
        print("\ninterrupted: finished videos are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        estimator.close()
        write_run_tables(args.out, suffix, windows_rows, summary_rows, failures)
    done = len(jobs) - len(failures)
    print(f"{done} of {len(jobs)} video(s) labelled into {args.out}" +
          (f"; {len(failures)} failed (see failures{suffix}.csv)" if failures else ""), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
