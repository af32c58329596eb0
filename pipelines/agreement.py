"""Measure labels against human coders: MMA-52 detection AP, frame kappa, precision/recall/F1.

    python -m pipelines.agreement PRED... --gold GOLD... --out DIR [--tier NAME]
        [--taxonomy ma52|imigue|CHECKPOINT] [--fps 30]

``PRED``: labels documents (``KEY.labels.json``) or the output folders holding them, an MMA-52
submission CSV (``video_id,t_start,t_end,class,score``), or another coder's annotation files
(inter-rater agreement). ``GOLD``: annotation files — ELAN ``.eaf`` (the tier ``--tier``), CSV
spans (``video,start_s,end_s,label``), BORIS tabular or aggregated events exports (``.tsv``/
``.csv``) or a BORIS project (``.boris``; ``--tier`` is a subject there, all merged without it).
Writes ``DIR/detections.csv`` (the predictions as submission rows), ``DIR/agreement.json``
(scores computed from exactly those rows) and ``DIR/agreement.png``. The rules, and the MMA-52
evaluator's quirks that the AP keeps, are in docs/agreement.md; the library is
:mod:`pipelines.evaluation.report`.

Exit status: 0 written, 2 usage error or bad input (the message names the file and the problem).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.atomic import FolderError, ensure_writable_folder
from core.cli import positive_float
from pipelines.evaluation.report import FRAME_RATE, run_agreement
from pipelines.formats.spans import AnnotationError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pipelines.agreement",
                                 description="Score labels (or another coder's annotations) against gold "
                                             "annotations: MMA-52 detection mAP, Cohen's kappa over frames, "
                                             "precision/recall/F1 at tIoU 0.5.")
    ap.add_argument("pred", nargs="+", type=Path,
                    help="labels JSON files or output folders, an MMA-52 submission CSV, or annotation files")
    ap.add_argument("--gold", nargs="+", type=Path, required=True,
                    help="gold annotation files: .eaf, CSV spans, BORIS exports (.tsv/.csv) or .boris projects")
    ap.add_argument("--out", type=Path, required=True, help="folder for detections.csv, agreement.json, agreement.png")
    ap.add_argument("--tier", help="ELAN tier, or BORIS subject, on both sides (default: ELAN's only tier with "
                                   "annotations, else 'micro-action'; all BORIS subjects)")
    ap.add_argument("--taxonomy", help="ma52, imigue (any case) or a checkpoint file: the classes where PRED names "
                                       "none (default: the labels' own; MA-52 for a submission; two coders' files: "
                                       "one class per distinct value)")
    ap.add_argument("--fps", type=positive_float, default=FRAME_RATE,
                    help="frame rate of the frame-agreement grid where no labels JSON gives the video's")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        ensure_writable_folder(args.out)
        doc = run_agreement(args.pred, args.gold, args.out, tier=args.tier, taxonomy=args.taxonomy, fps=args.fps)
    except (AnnotationError, FolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    det, frames = doc["detection"], doc["frames"]
    print(f"mAP {det['mAP']} (tIoU 0.1-0.9, classes with gold)"
          + (f", all classes {det['mAP_all_classes']}" if "mAP_all_classes" in det else "")
          + f"; frame kappa {frames['kappa']}, agreement {frames['percent_agreement']}%")
    for side, values in doc["unmatched"].items():
        if values:
            print(f"unmatched {side} values (not scored): {json.dumps(values, ensure_ascii=False)}", file=sys.stderr)
    skipped = doc["skipped"]
    if skipped["videos_without_gold"] or skipped["point_events"]:
        print(f"skipped: {len(skipped['videos_without_gold'])} predicted video(s) without gold, "
              f"{skipped['point_events']} BORIS point event(s)", file=sys.stderr)
    print(f"wrote {Path(args.out) / 'agreement.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
