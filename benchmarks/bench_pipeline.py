"""End-to-end speed of video → labels, broken into stages, as a ratio to the video's duration.

    python benchmarks/bench_pipeline.py [--videos DIR] [--weights W.pt] [--repeat-long 3]
        [--json benchmarks/results/pipeline.json]

For each real clip (default: examples/videos) and a longer clip made by concatenating them
(``--repeat-long`` times over), it times:

- decode: OpenCV decoding of every frame alone;
- pose: the pose estimator on already-decoded frames (MediaPipe Holistic by default);
- extract: the whole ``pose.extract_skeleton`` (decode, overlapped with pose on a thread; pose;
  mapping to 44 joints, subject tracking, gap filling and smoothing);
- model: windows through MMN with modulation maps (``pipelines.stages.labelling.label_track``);
- render: drawing and H.264-encoding the annotated clip (decode included), x264 ``veryfast``;
- labels: ``pipelines.video_to_labels.process_video`` wall time without clips (skeleton file
  and labels JSON: the folder job's default);
- +clip: the same with ``export_clips=True`` (the default ``veryfast`` preset);
- +clip uf: the same with ``--clip-preset ultrafast``.

Each ratio is that wall time / video duration: ≤ 1 means real time. Medians of ``--runs``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.machine import machine_info  # noqa: E402
from core.layouts import MA52_44  # noqa: E402
from mmn.inference import Recognizer  # noqa: E402
from pipelines.drawing.render import H264Writer  # noqa: E402
from pipelines.job import JobOptions, PoseOptions, SharedEstimator, VideoJob, process_video  # noqa: E402
from pipelines.stages.classify import classify_windows, usable_windows  # noqa: E402
from pipelines.stages.labelling import label_track  # noqa: E402
from pipelines.stages.windowing import make_windows  # noqa: E402
from pose.extract import extract_skeleton  # noqa: E402
from pose.video import iter_frames, probe_video  # noqa: E402


class _Silent:
    def __init__(self, *_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return None

    def update(self, *_):
        pass


def concatenate(videos: list[Path], out: Path, repeat: int) -> Path:
    """Re-encode the clips one after another, ``repeat`` times over (same size and fps)."""
    first = probe_video(videos[0])
    with H264Writer(out, first.width, first.height, first.fps, crf=18) as w:
        for _ in range(repeat):
            for v in videos:
                for _, _, frame in iter_frames(v):
                    w.write(frame)
    return out


def time_stages(video: Path, recognizer: Recognizer | None, estimator: SharedEstimator) -> dict[str, float]:
    info = probe_video(video)
    t = time.perf_counter()
    frames = [(i, ts, f) for i, ts, f in iter_frames(video)]
    decode = time.perf_counter() - t

    est = estimator.get()
    est.reset()
    t = time.perf_counter()
    for _ in est.stream(iter(frames)):
        pass
    pose = time.perf_counter() - t
    del frames

    t = time.perf_counter()
    skel = extract_skeleton(video, backend=est)
    extract = time.perf_counter() - t

    t = time.perf_counter()
    windows = make_windows(skel.num_frames, info.fps)
    scores = None if recognizer is None else classify_windows(
        skel.keypoints, usable_windows(skel.keypoints, windows), recognizer, heatmap="msm_gamma", batch_size=64)
    label_track(skel.keypoints, info.fps, windows, MA52_44, recognizer and recognizer.taxonomy, scores)
    model = time.perf_counter() - t

    totals = {}
    for key, clips, preset in (("labels", False, "veryfast"), ("clip", True, "veryfast"),
                               ("clip_uf", True, "ultrafast")):
        with tempfile.TemporaryDirectory() as d:
            opts = JobOptions(out=Path(d), export_clips=clips, clip_preset=preset)
            t = time.perf_counter()
            doc = process_video(VideoJob(video, "bench"), opts, recognizer, progress=_Silent, estimator=estimator)
            totals[key] = time.perf_counter() - t
            if key == "clip":
                totals["render"] = doc["timing_s"].get("render", float("nan"))
    return {"frames": skel.num_frames, "duration_s": skel.num_frames / info.fps, "decode": decode, "pose": pose,
            "extract": extract, "model": model, **totals}

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT / "examples" / "videos")
    ap.add_argument("--weights", type=Path, default=Path(os.environ.get("MMN_SHARED") or ROOT.parent / "shared")
                    / "fixtures" / "mmn_ma52" / "weights.pt",
                    help="an MMN checkpoint (timing only; default: the test fixture if present)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--repeat-long", type=int, default=3, help="how many times the long clip repeats the set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    recognizer = Recognizer.from_checkpoints(args.weights, device=args.device) if args.weights.is_file() else None
    videos = sorted(args.videos.glob("*.mp4"))
    estimator = SharedEstimator(PoseOptions())
    results = []
    with tempfile.TemporaryDirectory() as d:
        long_clip = concatenate(videos, Path(d) / "concatenated.mp4", args.repeat_long)
        for video in videos + [long_clip]:
            runs = [time_stages(video, recognizer, estimator) for _ in range(args.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            med["name"] = video.name
            for key in ("labels", "clip", "clip_uf"):
                med[f"ratio_{key}"] = med[key] / med["duration_s"]
            results.append(med)
    estimator.close()

    cols = ("decode", "pose", "extract", "model", "render", "labels", "clip", "clip_uf")
    heads = ("decode", "pose", "extract", "model", "render", "labels", "+clip", "+clip uf")
    print(f"{'video':<18}{'frames':>7}{'dur s':>7}" + "".join(f"{c:>9}" for c in heads)
          + "".join(f"{c:>10}" for c in ("x labels", "x +clip", "x clip uf")))
    for r in results:
        print(f"{r['name']:<18}{r['frames']:>7}{r['duration_s']:>7.2f}" + "".join(f"{r[c]:>9.2f}" for c in cols)
              + "".join(f"{r['ratio_' + k]:>10.2f}" for k in ("labels", "clip", "clip_uf")))
    meta = {"machine": machine_info(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": str(recognizer.device) if recognizer else None, "runs": args.runs,
            "weights": args.weights.name if recognizer else None}
    print(f"(seconds, medians of {args.runs}; x = wall time / video duration, <= 1 is real time; "
          f"load average {meta['machine']['load_average_1m']:.2f})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
