"""Build a training dataset from annotated videos (ELAN files or a CSV of spans).

    python -m pipelines.build_dataset ANNOTATIONS... --out DATA.pkl [--tier NAME] [--videos DIR]
        [--val-fraction 0.2] [--window 2.0 --stride 0.5] [--background NAME] [--seed 0]
        [--pose-backend mediapipe|mmpose|precomputed] [--smoothing savgol]

``ANNOTATIONS``: ``.eaf`` files (one per video, the video linked or found in ``--videos``) and/or
``.csv`` tables of ``video,start_s,end_s,label`` rows. Writes ``DATA.pkl`` (pyskl format, read by
``mmn.train`` with ``data = dict(format='pyskl', path='DATA.pkl', train=dict(split='train'),
val=dict(split='val'))``), ``DATA.report.json`` (what was used and skipped, also printed on
stderr) and the skeleton cache ``DATA.skeletons/``. The rules are those of
:mod:`pipelines.dataset_builder` and :mod:`pipelines.formats.spans`; this module is only the command line.

Exit status: 0 written, 1 nothing usable (every video missing or unreadable, no labelled
window) or the output cannot be written, 2 usage error or malformed annotations (the message
names the file and the line or annotation), 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from core.atomic import FolderError, ensure_writable_folder
from core.cli import unit_interval
from pipelines.cli_flags import add_pose_arguments, add_window_arguments, pose_options, window_options
from pipelines.dataset_builder import BuildOptions, DatasetBuildError, build_training_set, report_path
from pipelines.formats.spans import AnnotationError, check_annotation_file
from pipelines.stages.errors import StageError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pipelines.build_dataset",
                                 description="Turn annotated videos (ELAN .eaf files or a CSV of video,start_s,"
                                             "end_s,label rows) into a pyskl dataset of labelled skeleton windows.")
    ap.add_argument("annotations", nargs="+", type=Path, help=".eaf files and/or .csv tables")
    ap.add_argument("--out", type=Path, required=True, help="the dataset pickle to write (e.g. data.pkl)")
    ap.add_argument("--tier", help="ELAN tier to read (default: the only tier with annotations, else 'micro-action')")
    ap.add_argument("--videos", type=Path, help="folder to look for videos in (ELAN links, CSV video names)")
    ap.add_argument("--val-fraction", type=unit_interval, default=0.2,
                    help="share of the videos (whole videos) that go to the val split")
    add_window_arguments(ap)
    ap.add_argument("--background", help="class name for windows inside no span (default: leave them out)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the train/val split")
    add_pose_arguments(ap)
    return ap


def _progress(total: int, desc: str):
    return tqdm(total=total, desc=desc, unit="frame", leave=False, dynamic_ncols=True)


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        opts = BuildOptions(out=args.out, tier=args.tier, videos_dir=args.videos, val_fraction=args.val_fraction,
                            windows=window_options(args), background=args.background, seed=args.seed,
                            pose=pose_options(args))
        if args.out.is_dir():
            raise FolderError(f"{args.out}: is a folder; --out names the dataset file (e.g. data.pkl)")
        ensure_writable_folder(args.out.parent)
        if args.videos is not None and not args.videos.is_dir():
            raise FolderError(f"--videos {args.videos}: no such folder")
        for path in args.annotations:
            check_annotation_file(path)
    except (ValueError, FolderError) as e:
        ap.error(str(e))
    try:
        report = build_training_set(args.annotations, opts, progress=_progress,
                               say=lambda line: tqdm.write(line, file=sys.stderr))
    except AnnotationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DatasetBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (StageError, OSError) as e:
        print(f"error: could not write: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished skeletons are kept in the cache; rerun the same command", file=sys.stderr)
        return 130
    for line in report.lines():
        print(line, file=sys.stderr)
    print(f"wrote {args.out} ({', '.join(report.label_names)}) and {report_path(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
