"""Benchmark live mode: latency, drops and frames per second of a 30 fps source paced as a camera.

    python benchmarks/bench_live.py [--weights W.pt] [--seconds 30] [--json OUT.json]

Makes two 30 fps sources from the bundled MA-52 clips, played one after another until
``--seconds`` are filled: at their own size (1080×1296) and scaled to 640×480 (the picture
scaled to 400×480, centred, with black bars: the person is not distorted). Each runs
through the real command, ``python -m pipelines.live CLIP --realtime --weights W --out DIR``
(the file paced at its frame rate, as a camera delivers it), and the table gives, per source:

- windows: arrived / expected on the file job's grid (every window must arrive);
- latency p50 / p95 / max: seconds from the arrival of a window's last received frame to its
  JSON line (``latency_s``); it includes the post-processing look-ahead (0.4 s at 30 fps);
- dropped: frames dropped before pose because pose was behind (rate of all frames);
- pose fps: frames received and estimated per second of source time.

The single-core SGEMM calibration and the load average (other processes on the cores slow
every figure down) are measured in the same run, before and after, and written with the
figures to JSON (default ``benchmarks/results/live.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info  # noqa: E402

FPS = 30.0
SIZES = {"1080x1296": None, "640x480": (640, 480)}


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` scaled to fit ``size`` (w, h), centred on black."""
    import cv2

    w, h = size
    s = min(w / frame.shape[1], h / frame.shape[0])
    small = cv2.resize(frame, (round(frame.shape[1] * s), round(frame.shape[0] * s)), interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def make_source(path: Path, seconds: float, size: tuple[int, int] | None) -> int:
    """The bundled clips one after another (resized to ``size``) for ``seconds`` at 30 fps, as
    an H.264 mp4; returns the frame count."""
    from pose.sources import Recorder
    from pose.video import iter_frames

    clips = sorted((ROOT / "examples" / "videos").glob("*.mp4"))
    frames = [f for clip in clips for _, _, f in iter_frames(clip)]
    if size is not None:
        frames = [_fit(f, size) for f in frames]
    h, w = frames[0].shape[:2]
    n = int(round(seconds * FPS))
    rec = Recorder(path, w, h, FPS, preset="ultrafast", crf=18)
    for i in range(n):
        rec.write(frames[i % len(frames)], i / FPS)
    rec.close()
    return n


def run_live(clip: Path, weights: Path | None, out: Path, extra: list[str]) -> dict:
    """``python -m pipelines.live CLIP --realtime`` and what its lines and labels JSON say."""
    from pipelines.stages.windowing import make_windows

    jsonl = out.with_suffix(".jsonl")
    cmd = [sys.executable, "-m", "pipelines.live", str(clip), "--realtime", "--device", "cpu", "--out", str(out),
           "--jsonl", str(jsonl), *extra] + (["--weights", str(weights)] if weights else [])
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"pipelines.live failed ({res.returncode}):\n{res.stderr}")
    lines = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    live = json.loads(next(out.glob("*.labels.json")).read_text())["live"]
    total = live["frames_received"] + live["frames_dropped"]
    expected = [w.index for w in make_windows(total, FPS)]
    lat = np.array([r["latency_s"] for r in lines])
    return {"frames": total, "windows_expected": len(expected), "windows_arrived": len(lines),
            "every_window": [r["index"] for r in lines] == expected, "labelled": sum("top_k" in r for r in lines),
            "latency_s": {q: round(float(np.percentile(lat, p)), 3) for q, p in (("p50", 50), ("p95", 95),
                                                                                   ("max", 100))},
            "frames_dropped": live["frames_dropped"], "drop_rate": live["drop_rate"],
            "pose_fps": round(live["frames_received"] / (total / FPS), 2), "wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", type=Path, help="MMN checkpoint (default: the golden one in MMN_SHARED if there)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each source (s)")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "live.json")
    args = ap.parse_args(argv)
    weights = args.weights
    if weights is None:
        shared = Path(os.environ.get("MMN_SHARED") or ROOT.parent / "shared")
        golden = shared / "fixtures" / "mmn_ma52" / "weights.pt"
        weights = golden if golden.is_file() else None
    result = {"machine": machine_info(), "weights": weights.name if weights else None, "seconds": args.seconds,
              "sources": {}}
    print(f"machine: {result['machine']['cpu']}, {result['machine']['logical_cpus']} CPUs, load "
          f"{result['machine']['load_average_1m']:.2f}, SGEMM {result['machine']['sgemm_gflops_1core']} GFLOP/s "
          f"(1 core); checkpoint: {result['weights'] or 'none (model-free)'}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes:
            clip = Path(tmp) / f"source-{name}.mp4"
            make_source(clip, args.seconds, SIZES[name])
            out = Path(tmp) / f"session-{name}"
            r = result["sources"][name] = run_live(clip, weights, out, [])
            r["load_average_1m_after"] = round(os.getloadavg()[0], 2)
            lat = r["latency_s"]
            print(f"{name:>10}: windows {r['windows_arrived']}/{r['windows_expected']} "
                  f"({'all' if r['every_window'] else 'MISSING SOME'}), latency p50 {lat['p50']} s, "
                  f"p95 {lat['p95']} s, max {lat['max']} s; dropped {r['frames_dropped']}/{r['frames']} "
                  f"({r['drop_rate']:.1%}); "
                  f"pose {r['pose_fps']} fps; load after {r['load_average_1m_after']}")
    result["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    from benchmarks.machine import sgemm_gflops

    result["machine"]["sgemm_gflops_1core_at_end"] = round(sgemm_gflops(), 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    from core.atomic import atomic_write_text

    atomic_write_text(args.json, json.dumps(result, indent=1))
    print(f"SGEMM at the end {result['machine']['sgemm_gflops_1core_at_end']} GFLOP/s; written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
