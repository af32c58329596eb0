"""Classify pre-extracted skeleton clips with one or two MMN checkpoints.

    python -m mmn.classify --weights J.pt [--weights-bone B.pt] INPUT... [--json] [--top-k 5]

INPUT: ``.npy`` files of shape (L, V, 2) in pixels (one clip each), or data pickles of the
authors' release / pyskl (a dict with ``annotations``, or a list of annotation dicts, each with
``keypoint`` (M, T, V, 2); the first person is used). The layout follows the checkpoint
(44 joints → MA-52, 22 → iMiGUE). Prints one line per clip with the top-k classes (codes and
body levels for MA-52); ``--json`` prints one JSON object per clip including raw logits.
Exit status: 0 all inputs classified, 1 some inputs failed (each reported), 2 usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.cli import positive_int
from core.safe_pickle import load_data_pickle
from mmn.checkpoint import CheckpointError
from mmn.inference import DEVICES, Recognizer


def iter_clips(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(clip name, (L, V, 2) float32 keypoints) for each clip in an input file."""
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable .npy array ({e})") from None
        yield path.stem, arr
    elif path.suffix in (".pkl", ".pickle"):
        data = load_data_pickle(path)
        annotations = data.get("annotations") if isinstance(data, dict) else data
        if not isinstance(annotations, list):
            raise ValueError(f"{path}: expected a list of annotations or a dict with 'annotations'")
        for i, ann in enumerate(annotations):
            if not isinstance(ann, dict) or "keypoint" not in ann:
                raise ValueError(f"{path}: annotation {i} has no 'keypoint'")
            kp = np.asarray(ann["keypoint"])
            if kp.ndim != 4:
                raise ValueError(f"{path}: annotation {i} keypoint has shape {kp.shape}, expected (M, T, V, 2)")
            yield str(ann.get("frame_dir", f"{path.stem}[{i}]")), kp[0, ..., :2]
    else:
        raise ValueError(f"{path}: unsupported input type (expected .npy or .pkl)")


def format_line(name: str, records: list[dict]) -> str:
    parts = []
    for r in records:
        label = f"{r['code']} {r['name']} [{r['body']}]" if "code" in r else f"{r['index']} {r['name']}"
        parts.append(f"{label} {r['prob']:.3f}")
    return f"{name}\t" + " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmn.classify", description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", type=Path, help=".npy (L, V, 2) clips or data pickles")
    ap.add_argument("--weights", required=True, type=Path, help="joint-stream checkpoint")
    ap.add_argument("--weights-bone", type=Path, help="bone-stream checkpoint (adds the 2S ensemble)")
    ap.add_argument("--device", default="auto", choices=DEVICES)
    ap.add_argument("--top-k", type=positive_int, default=5)
    ap.add_argument("--batch-size", type=positive_int, default=64)
    ap.add_argument("--json", action="store_true", help="one JSON object per clip, with raw logits")
    args = ap.parse_args(argv)

    try:
        rec = Recognizer.from_checkpoints(args.weights, args.weights_bone, args.device)
    except (CheckpointError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    failed = 0
    for path in args.inputs:
        try:
            clips = list(iter_clips(path))
            pred = rec.predict([c for _, c in clips], batch_size=args.batch_size)
        except (ValueError, OSError) as e:
            msg = str(e) if str(path) in str(e) else f"{path}: {e}"
            print(f"error: {msg}", file=sys.stderr)
            failed += 1
            continue
        for (name, _), logits, probs in zip(clips, pred.logits, pred.probs):
            records = rec.taxonomy.top_k_records(probs, args.top_k)
            if args.json:
                print(json.dumps({"clip": name, "file": str(path), "streams": rec.modalities,
                                  "top_k": records, "logits": [float(v) for v in logits]}))
            else:
                print(format_line(name, records))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
