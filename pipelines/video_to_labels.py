"""Label a folder of interview videos with a micro-action timeline per video.

    python -m pipelines.video_to_labels INPUT... --out DIR [--weights J.pt [--weights-bone B.pt]]
        [--recursive] [--export-clips] [--elan] [--window 2.0] [--stride 0.5] [--shard K/N] [--overwrite]

The per-video work and its outputs are :mod:`pipelines.job`; which videos and under which
keys, :mod:`pipelines.discovery`; the run's ``windows.csv``, ``summary.csv`` and
``failures.csv``, :mod:`pipelines.formats.tables`; ``--engine ray`` (Ray Data over this machine's
cores or a cluster, the same outputs), :mod:`pipelines.engines`. This module is only the
command line.

A rerun skips finished videos (same input, same result-relevant options; ``--overwrite``
redoes them), reuses a skeleton file made from the same input with the same pose options,
and retries a failed file only if it changed (or with ``--retry-failed``). Bad files are
recorded in ``failures.csv`` and the run goes on; a full disk stops it cleanly.
Exit status: 0 all videos succeeded, 1 some failed, 2 usage error, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from core.atomic import FolderError, ensure_writable_folder
from core.cli import non_negative_int, positive_int
from core.signals import terminate_as_interrupt
from pipelines.cli_flags import (
    add_label_arguments,
    add_pose_arguments,
    add_window_arguments,
    pose_options,
    window_options,
)
from pipelines.discovery import VideoJob, discover, select_shard
from pipelines.drawing.render import CLIP_PRESETS, CLIP_SIZES
from pipelines.engines import engine_outcomes
from pipelines.engines.flags import add_engine_arguments
from pipelines.formats.labels_doc import NO_WEIGHTS_REASON
from pipelines.formats.spans import AnnotationError
from pipelines.formats.tables import RunTables, summary_row
from pipelines.job import VideoOutcome
from pipelines.options import JobOptions, option_default
from pipelines.stages.pose import LAYOUT

if TYPE_CHECKING:
    from mmn.inference import Recognizer

__all__ = ["build_parser", "main", "parse_shard"]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like K/N, got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise argparse.ArgumentTypeError(f"--shard K/N needs 0 ≤ K < N, got {text!r}")
    return k, n


def build_parser() -> argparse.ArgumentParser:
    d = option_default
    ap = argparse.ArgumentParser(prog="python -m pipelines.video_to_labels",
                                 description="Label interview videos with micro-actions over time.")
    ap.add_argument("inputs", nargs="+", type=Path, help="video files and/or folders")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--recursive", action="store_true", help="look for videos in sub-folders too")
    add_label_arguments(ap)
    add_pose_arguments(ap)
    add_window_arguments(ap)
    ap.add_argument("--batch-size", type=positive_int, default=d("batch_size"), help="windows per MMN batch")
    ap.add_argument("--export-clips", action="store_true", help="also write KEY.annotated.mp4")
    ap.add_argument("--elan", action="store_true",
                    help="also write KEY.eaf: the labels as ELAN tiers, linked to the video (KEY.events.csv is "
                         "always written)")
    ap.add_argument("--review-top", type=non_negative_int, default=d("review_top"),
                    help="with --elan: mark the N least certain windows of each video on a 'to review' tier "
                         "(review.csv ranks every window of the run)")
    ap.add_argument("--boris", action="store_true",
                    help="also write OUT/labels.boris: a BORIS project of the run (needs --weights)")
    ap.add_argument("--clip-preset", default=d("clip_preset"), choices=CLIP_PRESETS,
                    help="x264 preset of the clips: ultrafast encodes ~2x faster, files ~2.6x larger")
    ap.add_argument("--clip-size", default=d("clip_size"), choices=CLIP_SIZES,
                    help="half: the clips at half width and height (about 3x cheaper to draw and encode)")
    ap.add_argument("--shard", type=parse_shard, help="K/N: process the K-th of N deterministic shares")
    ap.add_argument("--overwrite", action="store_true", help="redo videos that are already done")
    ap.add_argument("--retry-failed", action="store_true", help="retry files that failed before and did not change")
    add_engine_arguments(ap)  # --engine local|ray and the Ray stages' sizes (pipelines.engines.flags)
    return ap


def load_recognizer(args: argparse.Namespace) -> Recognizer:
    """The Recognizer for ``--weights``; raises ValueError (a usage error) naming the problem."""
    from mmn.checkpoint import CheckpointError
    from mmn.inference import Recognizer

    try:
        recognizer = Recognizer.from_checkpoints(args.weights, args.weights_bone, args.device)
    except (CheckpointError, ValueError, RuntimeError, OSError) as e:
        raise ValueError(str(e)) from None
    if recognizer.layout.name != LAYOUT.name:
        raise ValueError(f"{args.weights} is a {recognizer.layout.name} model; video pipelines make "
                         f"{LAYOUT.name} skeletons")
    return recognizer


def _options(ap: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[JobOptions, list[VideoJob], str]:
    """The job options, the videos of this shard and the run tables' suffix; usage errors exit 2."""
    if args.weights_bone and not args.weights:
        ap.error("--weights-bone needs --weights (the joint stream)")
    if args.boris and not args.weights:
        ap.error("--boris needs --weights: a BORIS project holds labels")
    try:
        opts = JobOptions(out=args.out, pose=pose_options(args), windows=window_options(args),
                          threshold=args.threshold, top_k=args.top_k, heatmap=args.heatmap,
                          batch_size=args.batch_size, export_clips=args.export_clips, clip_preset=args.clip_preset,
                          clip_size=args.clip_size,
                          elan=args.elan, review_top=args.review_top, overwrite=args.overwrite)
        ensure_writable_folder(args.out)
        jobs = discover(args.inputs, args.recursive, out_dir=args.out)
    except (ValueError, FolderError, FileNotFoundError) as e:
        ap.error(str(e))
    if not args.shard:
        return opts, jobs, ""
    k, n = args.shard
    return opts, select_shard(jobs, k, n), f".shard-{k}-of-{n}"


def _take(outcome: VideoOutcome, tables: RunTables, labelled: list[tuple[Path, dict]], out: Path) -> bool:
    """Record one outcome; says what a merge of an edited file kept. False: stop (disk full)."""
    if outcome.error is None:
        tables.add_done(outcome.job.key, outcome.status, outcome.doc)
        labelled.append((outcome.job.path, outcome.doc))
        for line in outcome.doc.get("kept_edits", []) if outcome.status == "done" else []:
            tqdm.write(f"kept edits: {line}", file=sys.stderr)
        return True
    e = outcome.error
    tables.add_failed(outcome.job.key, outcome.job.path, e.stage, str(e))
    again = " (unchanged since it last failed; --retry-failed retries)" if outcome.known else ""
    tqdm.write(f"failed [{e.stage}] {e}{again}", file=sys.stderr)
    if e.disk_full:
        tqdm.write(f"stopping: the disk holding {out} is full; free space and rerun the same command to resume",
                   file=sys.stderr)
    return not e.disk_full


def _write_boris(out: Path, suffix: str, labelled: list[tuple[Path, dict]], recognizer: Recognizer) -> None:
    """``OUT/labels.boris``: the run's videos as one BORIS project, a person's edits kept."""
    from pipelines.formats.boris import boris_project, observation_from_labels
    from pipelines.formats.boris_merge import merge_boris
    from pipelines.formats.user_edits import write_keeping_edits

    path = out / f"labels{suffix}.boris"
    project = boris_project([observation_from_labels(doc, video) for video, doc in labelled], recognizer.taxonomy,
                            project_dir=out)
    report = write_keeping_edits(path, json.dumps(project, indent=1, ensure_ascii=False) + "\n", merge_boris)
    if report is not None:
        print(f"kept edits: {report.describe()}", file=sys.stderr)


def _write_run_files(args: argparse.Namespace, tables: RunTables, jobs: list[VideoJob], seen: set[str],
                     labelled: list[tuple[Path, dict]], recognizer: Recognizer | None, suffix: str) -> int:
    """The run tables (and the BORIS project with ``--boris``); 1 where one cannot be written."""
    for job in jobs:
        if job.key not in seen:
            tables.summary.append(summary_row(job.key, "not processed", None))
    try:
        tables.write(args.out, suffix)
        if args.boris and recognizer is not None:
            _write_boris(args.out, suffix, labelled, recognizer)
    except (OSError, AnnotationError) as e:
        print(f"error: could not write the run's files in {args.out}: {getattr(e, 'strerror', None) or e}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    opts, jobs, suffix = _options(ap, args)
    recognizer = None
    if args.weights:
        try:
            recognizer = load_recognizer(args)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        print(f"note: {NO_WEIGHTS_REASON}", file=sys.stderr)

    tables, labelled, seen, status = RunTables(), [], set(), 0
    try:
        with terminate_as_interrupt(), \
                tqdm(total=len(jobs), desc="videos", unit="video", position=0, dynamic_ncols=True) as bar, \
                contextlib.closing(engine_outcomes(args, jobs, opts, recognizer, suffix)) as outcomes:
            for outcome in outcomes:
                seen.add(outcome.job.key)
                bar.update(1)
                if not _take(outcome, tables, labelled, args.out):
                    break
    except KeyboardInterrupt:
        print("\ninterrupted: finished videos are kept; rerun the same command to resume", file=sys.stderr)
        status = 130
    finally:
        written = _write_run_files(args, tables, jobs, seen, labelled, recognizer, suffix)  # after Ctrl-C too
        status = status or written
    if status:
        return status
    failed = len(tables.failures)
    done = sum(1 for row in tables.summary if row[1] in ("done", "already done"))
    skipped = tables.skipped_windows()
    print(f"{done} of {len(jobs)} video(s) labelled into {args.out}; {skipped} window(s) skipped, subject absent"
          + (f" (see windows{suffix}.csv)" if skipped else "")
          + (f"; {failed} failed (see failures{suffix}.csv)" if failed else ""), file=sys.stderr)
    return 1 if failed or done < len(jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
