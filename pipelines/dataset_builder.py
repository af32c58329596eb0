"""Annotated videos → a pyskl training dataset of labelled skeleton windows.

    report = build_training_set([Path("a.eaf"), Path("spans.csv")], BuildOptions(out=Path("data.pkl")))

Inputs are ELAN files (:mod:`pipelines.formats.elan`, one video each: the video it links, or the
same name or the ``.eaf``'s stem in ``videos_dir``) and CSV tables (:mod:`pipelines.formats.spans`,
rows ``video,start_s,end_s,label``; ``video`` is an absolute path, or a path relative to
``videos_dir`` or else to the table's folder). Spans of the same video from several files are
pooled; then :func:`pipelines.formats.spans.check_spans` applies the rules (clipping within one frame
of the end, merging same-label overlaps, refusing overlaps of different labels).

Each video goes through the pipeline's pose stage (:func:`pipelines.stages.pose.skeleton_stage`:
same estimator, smoothing and skeleton file), cached in ``DATA.skeletons/KEY.skeleton.h5``
beside the output and reused while the video and pose options are unchanged. It is cut into
windows as the labelling pipeline cuts it (:class:`pipelines.stages.windowing.WindowOptions`), and:

- a window takes a span's label when more than half of it lies inside that span;
- a window inside no span is left out, or labelled ``background`` when one is named;
- a window in which the subject is missing from more than half the frames is left out (the
  labelling pipeline skips those too); the others have their gaps filled as for the model
  (:func:`pipelines.stages.labelling.fill_for_model`), so every coordinate is finite;
- a label with fewer than :data:`MIN_WINDOWS` windows over all videos is dropped.

Videos are split into ``train`` and ``val`` whole (the windows of one video never land in
both): shuffled with ``seed``, ``round(val_fraction × videos)`` of them (at least one, at most
all but one) go to ``val``; with a single video ``val`` is empty and the report says so.

Output (pickle protocol 4, atomic; only dicts, lists, tuples, str, int, float and numpy arrays,
so :func:`core.safe_pickle.load_data_pickle` and :func:`mmn.training.datasets.read_pyskl` read
it)::

    {"split": {"train": [frame_dir, ...], "val": [...]},
     "annotations": [{"frame_dir": "KEY_f000030-000090", "label": int, "keypoint": (1, T, 44, 2) float32,
                      "keypoint_score": (1, T, 44) float32, "total_frames": T, "img_shape": (h, w),
                      "video": KEY, "start_frame": int, "end_frame": int}, ...],
     "label_names": [sorted labels]}

and ``DATA.report.json``: the options, the videos used (split, windows per label), and what was
skipped and why (missing or unreadable videos, spans that gave no window, dropped labels,
windows without the subject or outside every span).
"""
from __future__ import annotations

import json
import math
import os
import pickle
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import atomic_path, atomic_write_text, remove_stale_parts
from pipelines.discovery import VideoJob, discover
from pipelines.formats.elan import linked_video, read_eaf_spans
from pipelines.formats.spans import AnnotationError, Span, check_spans, read_csv_spans
from pipelines.stages.classify import MIN_PRESENT_FRACTION, fill_for_model
from pipelines.stages.errors import StageError
from pipelines.stages.pose import PoseOptions, SharedEstimator, pose_record, skeleton_stage
from pipelines.stages.probe import input_fingerprint
from pipelines.stages.progress import ProgressFactory, silent_progress
from pipelines.stages.windowing import Window, WindowOptions
from pose.video import VideoInfo

__all__ = ["MIN_WINDOWS", "BuildOptions", "BuildReport", "DatasetBuildError", "VideoSpans", "build_training_set",
           "collect_spans", "report_path", "skeleton_folder", "split_videos", "window_label"]

MIN_WINDOWS = 2  # a label with fewer windows than this cannot be both learned and checked


class DatasetBuildError(RuntimeError):
    """Nothing usable was left to write (every video missing or unreadable, no labelled window)."""


@dataclass(frozen=True)
class BuildOptions:
    """How annotated videos become a dataset (the CLI flags of the same names).

    ``windows``: window and stride in seconds, as the labelling job cuts them; ``val_fraction``
    in [0, 1); ``background``: the class of windows inside no span (None: leave them out);
    ``pose``: pose backend, its options and smoothing, as the labelling job makes skeletons."""

    out: Path
    tier: str | None = None
    videos_dir: Path | None = None
    val_fraction: float = 0.2
    windows: WindowOptions = field(default_factory=WindowOptions)
    background: str | None = None
    seed: int = 0
    pose: PoseOptions = field(default_factory=PoseOptions)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.background is not None and not self.background.strip():
            raise ValueError("background must be a non-empty class name")


def skeleton_folder(out: Path) -> Path:
    """``DATA.skeletons/`` beside ``DATA.pkl``: the skeleton cache."""
    return out.with_suffix(".skeletons")


def report_path(out: Path) -> Path:
    """``DATA.report.json`` beside ``DATA.pkl``."""
    return out.with_suffix(".report.json")


@dataclass
class VideoSpans:
    """The spans of one video, pooled from every annotation file that names it."""

    video: Path
    spans: list[Span]
    sources: list[str]


@dataclass
class BuildReport:
    """What :func:`build_training_set` used and skipped (also written as ``DATA.report.json``)."""

    data: dict[str, Any]

    @property
    def label_names(self) -> list[str]:
        return self.data["label_names"]

    def lines(self) -> list[str]:
        """A short human summary (what the CLI prints on stderr)."""
        d, s = self.data, self.data["skipped"]
        out = [f"used {len(d['videos'])} video(s): {d['counts']['train_windows']} train and "
               f"{d['counts']['val_windows']} val window(s) of {len(d['label_names'])} label(s)"]
        out += [f"skipped video {v['video']} ({v['source']}): {v['reason']}" for v in s["videos"]]
        out += [f"skipped span {sp['source']} ({sp['label']!r}, {sp['start_s']:.3f}-{sp['end_s']:.3f} s): "
                f"{sp['reason']}" for sp in s["spans"]]
        out += [f"dropped label {lab['label']!r}: {lab['reason']}" for lab in s["labels"]]
        for v in d["videos"]:
            if v["windows_without_subject"]:
                out.append(f"{v['key']}: {v['windows_without_subject']} window(s) without the subject left out")
            if v["windows_outside_spans"]:
                out.append(f"{v['key']}: {v['windows_outside_spans']} window(s) inside no span "
                           + ("labelled background" if d["options"]["background"] else "left out"))
        out += [f"note: {n}" for n in d["notes"]]
        return out


# --------------------------------------------------------------------------- annotations → videos


def _csv_video(name: str, table: Path, videos_dir: Path | None) -> Path | None:
    p = Path(name)
    if p.is_absolute():
        return p if p.is_file() else None
    candidates = ([videos_dir / p, videos_dir / p.name] if videos_dir is not None else []) + [table.parent / p]
    return next((c for c in candidates if c.is_file()), None)


def collect_spans(paths: Sequence[Path], tier: str | None, videos_dir: Path | None
                  ) -> tuple[list[VideoSpans], list[dict[str, str]]]:
    """Read every annotation file (``.eaf`` or ``.csv``) and pool their spans by video.
    Returns the videos found and the missing ones (``video``, ``source``, ``reason``).
    Raises :class:`AnnotationError` for a malformed file or an unknown file type."""
    pooled: dict[Path, VideoSpans] = {}
    missing: list[dict[str, str]] = []

    def add(video: Path, spans: list[Span], source: str) -> None:
        entry = pooled.setdefault(video.resolve(), VideoSpans(video, [], []))
        entry.spans.extend(spans)
        entry.sources.append(source)

    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".eaf":
            spans = read_eaf_spans(path, tier)
            video = linked_video(path, videos_dir)
            if video is None:
                missing.append({"video": path.stem, "source": str(path),
                                "reason": "the video it links was not found (MEDIA_URL, RELATIVE_MEDIA_URL, "
                                          "beside the file" + (", --videos" if videos_dir else "; give --videos DIR")
                                          + ")"})
                continue
            add(video, spans, str(path))
        elif suffix == ".csv":
            by_name: dict[str, list[Span]] = {}
            for sp in read_csv_spans(path):
                by_name.setdefault(sp.video or "", []).append(sp)
            for name, spans in by_name.items():
                video = _csv_video(name, path, videos_dir)
                if video is None:
                    missing.append({"video": name, "source": spans[0].source,
                                    "reason": f"no such video ({len(spans)} span(s)); looked "
                                              + (f"in {videos_dir} and " if videos_dir else "")
                                              + f"beside {path.name}"})
                    continue
                add(video, spans, f"{path} ({len(spans)} rows)")
        else:
            raise AnnotationError(f"{path}: unknown annotation file type {path.suffix!r}; expected an ELAN .eaf "
                                  f"or a .csv table")
    return list(pooled.values()), missing


# --------------------------------------------------------------------------- windows → labels


def window_label(window: Window, fps: float, spans: Sequence[Span]) -> int | None:
    """Index in ``spans`` (checked: sorted, disjoint) of the span holding more than half of
    ``window``, or None."""
    start, end = window.seconds(fps)
    for i, sp in enumerate(spans):
        if sp.start_s >= end:
            break
        if min(end, sp.end_s) - max(start, sp.start_s) > 0.5 * (end - start) + 1e-9:
            return i
    return None


def split_videos(keys: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str], list[str]]:
    """``(train, val, notes)``: whole videos, shuffled with ``seed``; train is never empty."""
    order = sorted(keys)
    random.Random(seed).shuffle(order)
    n = len(order)
    notes = []
    if val_fraction == 0 or n < 2:
        n_val = 0
        if val_fraction > 0:
            notes.append("only one video has labelled windows: all of it is in train and val is empty; "
                          "annotate more videos to validate (mmn.train needs a val split)")
    else:
        n_val = min(n - 1, max(1, round(val_fraction * n)))
        if round(val_fraction * n) != n_val:
            notes.append(f"{n} video(s) with val fraction {val_fraction:g}: {n_val} in val, {n - n_val} in train "
                         f"(at least one in each)")
    return sorted(order[n_val:]), sorted(order[:n_val]), notes


# --------------------------------------------------------------------------- the build


@dataclass
class _Sample:
    key: str
    window: Window
    label: str
    keypoint: np.ndarray
    score: np.ndarray
    img_shape: tuple[int, int]


SHOWN_PROBLEMS = 5  # problems an error message lists before it counts the rest


def _listing(items: Sequence[str], noun: str) -> str:
    """``items`` joined for a one-line error: all of them when few, else the first
    :data:`SHOWN_PROBLEMS` and how many more of ``noun`` (3000 spans made a 365 KB line)."""
    if len(items) <= SHOWN_PROBLEMS:
        return "; ".join(items)
    return (f"{len(items)} {noun}, the first {SHOWN_PROBLEMS}: {'; '.join(items[:SHOWN_PROBLEMS])}; "
            f"and {len(items) - SHOWN_PROBLEMS} more")


def _probe_videos(jobs: Sequence[VideoJob], groups: Sequence[VideoSpans], skipped_videos: list[dict[str, str]]
                  ) -> list[tuple[VideoJob, VideoSpans, VideoInfo]]:
    """Probe every video and check its spans against its length, before any pose work (an
    unreadable video is recorded in ``skipped_videos``); raises AnnotationError."""
    from pose.video import VideoError, probe_video

    planned = []
    for job, group in zip(jobs, groups):
        try:
            info = probe_video(job.path)
        except (VideoError, OSError) as e:
            skipped_videos.append({"video": str(job.path), "source": ", ".join(group.sources),
                                   "reason": f"unreadable video: {e}"})
            continue
        # the container's count may be an estimate: the decoded count is checked again later
        duration = info.frame_count / info.fps if info.frame_count > 0 else math.inf
        check_spans(group.spans, duration, info.fps, what=str(job.path))
        planned.append((job, group, info))
    return planned


def _annotations(samples: Sequence[_Sample], label_names: Sequence[str], split_of: dict[str, str]
                 ) -> tuple[list[dict[str, Any]], dict[str, list[str]], dict[str, Counter]]:
    """The pyskl ``annotations``, ``split`` and the windows per split and label."""
    index = {name: i for i, name in enumerate(label_names)}
    annotations, split = [], {"train": [], "val": []}
    counts: dict[str, Counter] = {"train": Counter(), "val": Counter()}
    for s in samples:
        name = f"{s.key}_f{s.window.start:06d}-{s.window.end:06d}"
        annotations.append({"frame_dir": name, "label": index[s.label],
                            "keypoint": s.keypoint[None].astype(np.float32),
                            "keypoint_score": s.score[None].astype(np.float32),
                            "total_frames": int(s.window.length), "img_shape": s.img_shape,
                            "video": s.key, "start_frame": int(s.window.start), "end_frame": int(s.window.end)})
        split[split_of[s.key]].append(name)
        counts[split_of[s.key]][s.label] += 1
    return annotations, split, counts


def _write_pickle(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(data, f, protocol=4)
            f.flush()
            os.fsync(f.fileno())


def build_training_set(paths: Sequence[Path], opts: BuildOptions, *, progress: ProgressFactory = silent_progress,
                       say: Callable[[str], None] = lambda line: None) -> BuildReport:
    """Build ``opts.out`` and its report from annotation files (module doc). ``say`` gets a
    line per video as it goes. Raises :class:`AnnotationError` for malformed input (before any
    pose work where the container's frame count allows), :class:`DatasetBuildError` when
    nothing usable remains, :class:`pipelines.job.StageError` when the skeleton cache cannot
    be written."""
    groups, missing = collect_spans(paths, opts.tier, opts.videos_dir)
    jobs = discover([g.video for g in groups])
    skipped_videos = list(missing)
    skipped_spans: list[dict[str, Any]] = []
    planned = _probe_videos(jobs, groups, skipped_videos)  # probe all first: malformed spans fail early
    if not planned:
        raise DatasetBuildError("no annotated video could be used: " + _listing(
            [f"{v['video']}: {v['reason']}" for v in skipped_videos], "unusable videos") if skipped_videos
            else "no spans were given")

    samples: list[_Sample] = []
    videos: list[dict[str, Any]] = []
    estimator = SharedEstimator(opts.pose)
    try:
        for job, group, info in planned:
            entry = _label_video(job, group, info, opts, estimator, progress, samples, skipped_spans, skipped_videos)
            if entry is not None:
                videos.append(entry)
                say(f"{job.key}: {sum(entry['windows'].values())} labelled window(s) from "
                    f"{len(entry['spans'])} span(s)")
    finally:
        estimator.close()

    per_label = Counter(s.label for s in samples)
    skipped_labels = [{"label": lab, "windows": n, "reason": f"{n} window(s), fewer than {MIN_WINDOWS}"}
                      for lab, n in sorted(per_label.items()) if n < MIN_WINDOWS]
    dropped = {lab["label"] for lab in skipped_labels}
    samples = [s for s in samples if s.label not in dropped]
    if not samples:
        raise DatasetBuildError("no labelled window is left: " + "; ".join(
            _listing(items, noun) for items, noun in (
                ([f"{v['video']}: {v['reason']}" for v in skipped_videos], "skipped videos"),
                ([f"span {sp['source']}: {sp['reason']}" for sp in skipped_spans], "spans without a window"),
                ([f"label {lab['label']!r}: {lab['reason']}" for lab in skipped_labels], "dropped labels"))
            if items))
    label_names = sorted({s.label for s in samples})
    train_keys, val_keys, notes = split_videos(sorted({s.key for s in samples}), opts.val_fraction, opts.seed)
    split_of = {k: "train" for k in train_keys} | {k: "val" for k in val_keys}
    annotations, split, counts = _annotations(samples, label_names, split_of)
    only_val = sorted(set(counts["val"]) - set(counts["train"]))
    if only_val:
        notes.append(f"label(s) only in val, never trained on: {', '.join(map(repr, only_val))}")
    for v in videos:
        v["split"] = split_of.get(v["key"])
    _write_pickle(opts.out, {"split": split, "annotations": annotations, "label_names": label_names})
    report = BuildReport({
        "data": opts.out.name, "skeletons": skeleton_folder(opts.out).name,
        "options": {"annotations": [str(p) for p in paths], "tier": opts.tier,
                    "videos_dir": None if opts.videos_dir is None else str(opts.videos_dir),
                    "window_s": opts.windows.window, "stride_s": opts.windows.stride,
                    "val_fraction": opts.val_fraction, "seed": opts.seed, "background": opts.background,
                    "pose": pose_record(opts.pose)},
        "label_names": label_names,
        "counts": {"train_windows": len(split["train"]), "val_windows": len(split["val"]),
                   "train": dict(sorted(counts["train"].items())), "val": dict(sorted(counts["val"].items()))},
        "videos": videos,
        "skipped": {"videos": skipped_videos, "spans": skipped_spans, "labels": skipped_labels},
        "notes": notes,
    })
    atomic_write_text(report_path(opts.out), json.dumps(report.data, indent=1))
    return report


def _label_video(job: VideoJob, group: VideoSpans, info: VideoInfo, opts: BuildOptions,
                 estimator: SharedEstimator, progress: ProgressFactory, samples: list[_Sample],
                 skipped_spans: list[dict[str, Any]], skipped_videos: list[dict[str, str]]) -> dict[str, Any] | None:
    """Skeleton, windows and labels of one video (appended to ``samples``); its report entry,
    or None when the video cannot be used (recorded in ``skipped_videos``)."""
    skeleton = skeleton_folder(opts.out) / f"{job.key}.skeleton.h5"
    remove_stale_parts([skeleton])
    source = ", ".join(group.sources)
    record = {"input": input_fingerprint(job.path), "pose": pose_record(opts.pose)}
    try:  # the pipeline's own pose stage: same failures, the same way (a video without a person too)
        skel = skeleton_stage(job, skeleton, opts.pose, record, frames_hint=info.frame_count, progress=progress,
                              estimator=estimator)
    except StageError as e:
        if isinstance(e.__cause__, OSError):
            raise  # the skeleton cache cannot be written: nothing else will work either
        skipped_videos.append({"video": str(job.path), "source": source, "reason": f"{e.stage} failed: {e}"})
        return None
    keypoints = np.asarray(skel.keypoints, np.float32)
    n, fps = int(keypoints.shape[0]), float(info.fps)
    present = np.isfinite(keypoints).all(axis=2).any(axis=1)
    spans = check_spans(group.spans, n / fps, fps, what=str(job.path))
    windows = opts.windows.cut(n, fps)
    per_span = [0] * len(spans)
    per_span_absent = [0] * len(spans)
    without_subject = outside = 0
    labels: Counter = Counter()
    for w in windows:
        hit = window_label(w, fps, spans)
        label = spans[hit].label if hit is not None else opts.background
        if present[w.start:w.end].mean() < MIN_PRESENT_FRACTION:
            without_subject += 1
            if hit is not None:
                per_span_absent[hit] += 1
            continue
        if hit is None:
            outside += 1
        if label is None:
            continue
        if hit is not None:
            per_span[hit] += 1
        labels[label] += 1
        samples.append(_Sample(job.key, w, label, fill_for_model(keypoints[w.start:w.end]),
                               np.asarray(skel.scores[w.start:w.end], np.float32), (int(info.height), int(info.width))))
    window_s = (windows[0].length / fps) if windows else 0.0
    for sp, used, absent in zip(spans, per_span, per_span_absent):
        if used:
            continue
        if absent:
            reason = f"its {absent} window(s) lack the subject"
        elif sp.duration_s < window_s:
            reason = (f"shorter than a window ({sp.duration_s:.3f} s < {window_s:.3f} s) and no window lies "
                      f"mostly inside it")
        else:
            reason = "no window lies more than half inside it (use a smaller --stride)"
        skipped_spans.append({"source": sp.source, "label": sp.label, "start_s": round(sp.start_s, 4),
                              "end_s": round(sp.end_s, 4), "reason": reason})
    return {"key": job.key, "path": str(job.path), "annotations": group.sources, "fps": fps, "frames": n,
            "spans": [{"source": sp.source, "label": sp.label, "start_s": round(sp.start_s, 4),
                       "end_s": round(sp.end_s, 4), "windows": used, "interpolated": sp.interpolated}
                      for sp, used in zip(spans, per_span)],
            "windows": dict(sorted(labels.items())), "windows_without_subject": without_subject,
            "windows_outside_spans": outside, "skeleton": skeleton.name}
