"""Benchmark the default pose backend (MediaPipe Holistic) on the real MA-52 clips.

    python benchmarks/bench_pose.py [--videos DIR] [--json OUT.json] [--smoothing]
    python benchmarks/bench_pose.py --compare [--repeats 3] [--long-s 16] [--extra-videos DIR ...]

``--compare`` (docs/pose-speed.md) times the pose stage (``extract_skeleton``) with
``quality="full"`` (the configuration before the fast default) and the default (``fast``)
alternately in one process, on each clip and on a ``--long-s`` clip made by concatenating
them: frames/s per clip and their ratio, with the SGEMM calibration and the load average
before and after (other processes on the cores slow everything; alternating makes the ratio
robust to slow drifts). It also compares the two skeletons: the median joint distance per
joint group in torso lengths, missing joints, frames with the hand model's hands, and the
model-free motion heat per body part.

Prints a table of frames/s and writes the numbers, with the machine's description and its
load average (other processes on the cores slow everything down), to JSON:

- decode: OpenCV decoding alone;
- estimate: decoding + MediaPipe Holistic (the pose backend);
- extract: the whole ``extract_skeleton`` (estimate + 44-joint mapping + subject + post-processing);
- CPU ms/frame: process CPU time (all threads) per frame while estimating, which other load
  inflates much less than wall time.

``--smoothing`` also measures, on each clip, what each smoothing setting does: the jitter of
joints that should be still, the nod/turn amplitude at the nose and the lag (frames) against
the unsmoothed track; the defaults in :mod:`pose.postprocess` were chosen from this table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info  # noqa: E402
from pose.estimators import DEFAULT_QUALITY, create_estimator  # noqa: E402
from pose.extract import extract_skeleton  # noqa: E402
from pose.measure import (  # noqa: E402
    AGREEMENT_GROUPS,
    amplitude,
    hand_model_fraction,
    jitter,
    joint_distances,
    lag,
    missing_fraction,
)
from pose.postprocess import SmoothingConfig, smooth  # noqa: E402
from pose.region_motion import RegionMotionEnergy  # noqa: E402
from pose.video import iter_frames  # noqa: E402

DEFAULT_VIDEOS = ROOT / "examples" / "videos"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "pose.json"
REPEATS = 3
# joints that should be still in each clip (the seated subject's feet, or hips while rocking)
STILL = {"0019_02_0078.mp4": (15, 16, 24, 25), "0010_02_0101.mp4": (13, 14, 15, 16, 20, 21, 24, 25),
         "0030_01_0002.mp4": (11, 12, 19)}
CANDIDATES = [
    ("none", SmoothingConfig(method="none")),
    ("savgol 0.23s p2", SmoothingConfig(window_s=0.23, polyorder=2)),
    ("savgol 0.3s p2 (default)", SmoothingConfig()),
    ("savgol 0.3s p3", SmoothingConfig(polyorder=3)),
    ("savgol 0.37s p2", SmoothingConfig(window_s=0.37)),
    ("savgol 0.37s p3", SmoothingConfig(window_s=0.37, polyorder=3)),
    ("one_euro 0.5Hz b0.2", SmoothingConfig(method="one_euro", min_cutoff=0.5, beta=0.2)),
    ("one_euro 1Hz b0.05", SmoothingConfig(method="one_euro", min_cutoff=1.0, beta=0.05)),
    ("one_euro 1.5Hz b0.2", SmoothingConfig(method="one_euro", min_cutoff=1.5, beta=0.2)),
]


def machine() -> dict:
    import cv2
    import mediapipe

    return {**machine_info(), "opencv": cv2.__version__, "mediapipe": mediapipe.__version__}


def _cpu_s() -> float:
    """CPU seconds used by this process, all threads (MediaPipe runs its own)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_speed(videos: list[Path]) -> list[dict]:
    rows = []
    est = create_estimator("mediapipe", quality="full")  # the figures of this table so far; --compare for fast
    try:
        for v in videos:
            t = time.perf_counter()
            n = sum(1 for _ in iter_frames(v))
            decode = time.perf_counter() - t
            est.reset()
            t, c = time.perf_counter(), _cpu_s()
            for _ in est.stream(iter_frames(v)):
                pass
            estimate, estimate_cpu = time.perf_counter() - t, _cpu_s() - c
            # the whole pose stage with and without the per-part pixel motion, interleaved so that
            # drifting load hits both alike; medians of REPEATS
            with_mea, without = [], []
            for _ in range(REPEATS):
                for region_motion, times in ((False, without), (True, with_mea)):
                    t = time.perf_counter()
                    extract_skeleton(v, est, region_motion=region_motion)
                    times.append(time.perf_counter() - t)
            extract, baseline = float(np.median(with_mea)), float(np.median(without))
            frames = [f for _, _, f in iter_frames(v)]
            acc = RegionMotionEnergy()
            kp = extract_skeleton(v, est).keypoints
            t = time.perf_counter()
            for f, frame in enumerate(frames):
                acc.update(frame, kp[f][None])
            mea_ms = 1000 * (time.perf_counter() - t) / n
            rows.append({"video": v.name, "frames": n, "decode_fps": n / decode,
                         "estimate_fps": n / estimate, "extract_fps": n / extract,
                         "extract_fps_without_region_motion": n / baseline,
                         "region_motion_fps_ratio": baseline / extract, "region_motion_ms_per_frame": mea_ms,
                         "estimate_cpu_ms_per_frame": 1000 * estimate_cpu / n})
    finally:
        est.close()
    return rows


def bench_smoothing(videos: list[Path]) -> list[dict]:
    rows = []
    for v in videos:
        raw = extract_skeleton(v, smoothing=None)
        fps = raw.meta["video"]["fps"]
        mp_filtered = extract_skeleton(v, smoothing=None,
                                       estimator_options={"smooth_landmarks": True}).keypoints
        r = raw.keypoints
        still = STILL.get(v.name, (15, 16))
        j0, a0 = jitter(r, still), amplitude(r[:, 0, 1])
        tracks = [("mediapipe smooth_landmarks", mp_filtered)]
        tracks += [(name, smooth(r, raw.scores, raw.flags, raw.timestamps, cfg, fps)) for name, cfg in CANDIDATES]
        for name, k in tracks:
            rows.append({"video": v.name, "method": name, "still_joints": list(still),
                         "jitter_px": jitter(k, still), "jitter_ratio": jitter(k, still) / j0,
                         "nose_amplitude_px": amplitude(k[:, 0, 1]),
                         "nose_amplitude_ratio": amplitude(k[:, 0, 1]) / a0,
                         "nose_peak_to_peak_ratio": float(np.ptp(k[:, 0, 1]) / np.ptp(r[:, 0, 1])),
                         "lag_frames": lag(r[:, 0, 1], k[:, 0, 1])})
    return rows


def long_clip(videos: list[Path], seconds: float, out: Path) -> Path:
    """``out``: an H.264 clip of ``seconds`` made of ``videos`` one after another, repeated
    (all must share the first one's frame size and rate), for timings where start-up and the
    first frames weigh as little as on real recordings."""
    import av

    with av.open(str(videos[0])) as first:
        s0 = first.streams.video[0]
        width, height, rate = s0.codec_context.width, s0.codec_context.height, s0.average_rate
    total, n = int(round(seconds * float(rate))), 0
    with av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        while n < total:
            for v in videos:
                with av.open(str(v)) as src:
                    for frame in src.decode(video=0):
                        if n >= total:
                            break
                        if (frame.width, frame.height) != (width, height):
                            raise ValueError(f"{v}: {frame.width}x{frame.height}, not {width}x{height}")
                        dst.mux(stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"),
                                                                        format="rgb24")))
                        n += 1
        dst.mux(stream.encode())
    return out


def part_heat(skel) -> dict[str, float]:
    """The model-free motion heat per body part (mean over frames), as the labels JSON has it."""
    from pipelines.stages.labelling import heat_summary
    from pipelines.stages.motion_energy import motion_energy

    v = skel.meta["video"]
    heat = motion_energy(skel.keypoints, skel.layout, v["fps"], skel.flags, frame_size=(v["width"], v["height"]))
    return heat_summary(heat, skel.layout, "model-free")["per_part_mean"]


def agreement(full, fast) -> dict:
    """How far ``fast``'s skeleton is from ``full``'s (same video): median distance per group
    (torso lengths), missing joints and hand-model hands (fractions), heat per part."""
    d = joint_distances(full.keypoints, fast.keypoints)
    groups = {}
    for group, joints in AGREEMENT_GROUPS:
        values = d[:, list(joints)]
        groups[group] = float(np.median(values[np.isfinite(values)])) if np.isfinite(values).any() else None
    return {"median_distance": groups, "missing": [missing_fraction(full.flags), missing_fraction(fast.flags)],
            "hand_model": [hand_model_fraction(full.flags), hand_model_fraction(fast.flags)],
            "heat": {"full": part_heat(full), "fast": part_heat(fast)}}


def bench_compare(videos: list[Path], repeats: int) -> list[dict]:
    """Per clip: frames/s of ``full`` and of the default, timed alternately (the order flips every
    repeat; medians), and :func:`agreement` of their skeletons."""
    qualities = ("full", DEFAULT_QUALITY)
    ests = {q: create_estimator("mediapipe", quality=q) for q in qualities}
    rows = []
    try:
        for v in videos:
            times: dict[str, list[float]] = {q: [] for q in qualities}
            skels = {}
            for r in range(repeats):
                for q in (qualities if r % 2 == 0 else qualities[::-1]):
                    t = time.perf_counter()
                    skels[q] = extract_skeleton(v, ests[q])
                    times[q].append(time.perf_counter() - t)
            n = skels["full"].num_frames
            fps = {q: n / float(np.median(times[q])) for q in qualities}
            rows.append({"video": v.name, "frames": n, "fps": fps, "ratio": fps[DEFAULT_QUALITY] / fps["full"],
                         "times_s": times, **agreement(skels["full"], skels[DEFAULT_QUALITY]),
                         "load_average_1m": os.getloadavg()[0]})
            print(f"{v.name:32s} {n:5d} {fps['full']:8.1f} {fps[DEFAULT_QUALITY]:8.1f} {rows[-1]['ratio']:6.2f}  "
                  + "  ".join(f"{g} {x:.4f}" if x is not None else f"{g} -" for g, x in
                              rows[-1]["median_distance"].items())
                  + f"  load {rows[-1]['load_average_1m']:.2f}", flush=True)
    finally:
        for est in ests.values():
            est.close()
    return rows


def run_compare(args: argparse.Namespace) -> dict:
    import tempfile

    videos = sorted(args.videos.glob("*.mp4"))
    extra = [p for d in args.extra_videos for p in sorted(d.glob("*.mp4"))]
    info = machine()
    print(f"machine: {info['cpu']} ({info['logical_cpus']} logical CPUs), single-core SGEMM "
          f"{info['sgemm_gflops_1core']} GFLOP/s, load average {info['load_average_1m']:.2f}"
          + ("  (above 2.5: other work on the cores; repeat when quieter)" if info["load_average_1m"] > 2.5 else ""))
    print(f"{'video':32s} {'frames':>5s} {'full f/s':>8s} {DEFAULT_QUALITY + ' f/s':>8s} {'ratio':>6s}  "
          "median joint distance (torso lengths)")
    with tempfile.TemporaryDirectory() as tmp:
        clips = videos + extra
        if args.long_s > 0:
            clips.append(long_clip(videos, args.long_s, Path(tmp) / f"concatenated_{args.long_s:g}s.mp4"))
        rows = bench_compare(clips, args.repeats)
    total = {q: sum(r["frames"] for r in rows) / sum(r["frames"] / r["fps"][q] for r in rows)
             for q in ("full", DEFAULT_QUALITY)}
    info["load_average_1m_at_end"] = os.getloadavg()[0]
    print(f"{'all':32s} {sum(r['frames'] for r in rows):5d} {total['full']:8.1f} {total[DEFAULT_QUALITY]:8.1f} "
          f"{total[DEFAULT_QUALITY] / total['full']:6.2f}   load average at end {info['load_average_1m_at_end']:.2f}")
    return {"machine": info, "default": DEFAULT_QUALITY, "repeats": args.repeats, "clips": rows,
            "overall_fps": total, "overall_ratio": total[DEFAULT_QUALITY] / total["full"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--smoothing", action="store_true", help="also measure the smoothing settings")
    ap.add_argument("--compare", action="store_true",
                    help=f"time quality full and {DEFAULT_QUALITY} alternately and compare their skeletons")
    ap.add_argument("--repeats", type=int, default=REPEATS, help="--compare: timings per clip and quality")
    ap.add_argument("--long-s", type=float, default=16.0,
                    help="--compare: also time a clip of this many seconds made of the clips (0: none)")
    ap.add_argument("--extra-videos", type=Path, nargs="*", default=[],
                    help="--compare: more folders of clips (any size), e.g. $MMN_SHARED/fixtures/wild")
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)  # MediaPipe keeps ~1.3 cores busy; decoding on one thread beside it
    if args.compare:
        result = run_compare(args)
        out = args.json if args.json != DEFAULT_JSON else DEFAULT_JSON.with_name("pose_compare.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {out}")
        return 0
    videos = sorted(args.videos.glob("*.mp4"))
    if not videos:
        print(f"no .mp4 files in {args.videos}", file=sys.stderr)
        return 1
    result = {"machine": machine(), "backend": "mediapipe (Holistic, model_complexity=1)"}
    result["speed"] = bench_speed(videos)
    total = sum(r["frames"] for r in result["speed"])
    for key in ("decode_fps", "estimate_fps", "extract_fps", "extract_fps_without_region_motion"):
        result[f"overall_{key}"] = total / sum(r["frames"] / r[key] for r in result["speed"])
    print(f"machine: {result['machine']['cpu']} ({result['machine']['logical_cpus']} logical CPUs), "
          f"load average at start {result['machine']['load_average_1m']}")
    result["overall_estimate_cpu_ms_per_frame"] = sum(
        r["estimate_cpu_ms_per_frame"] * r["frames"] for r in result["speed"]) / total
    print(f"{'video':20s} {'frames':>6s} {'decode f/s':>11s} {'estimate f/s':>13s} {'extract f/s':>12s} "
          f"{'CPU ms/frame':>13s}")
    for r in result["speed"]:
        print(f"{r['video']:20s} {r['frames']:6d} {r['decode_fps']:11.1f} {r['estimate_fps']:13.1f} "
              f"{r['extract_fps']:12.1f} {r['estimate_cpu_ms_per_frame']:13.1f}")
    print(f"{'all':20s} {total:6d} {result['overall_decode_fps']:11.1f} "
          f"{result['overall_estimate_fps']:13.1f} {result['overall_extract_fps']:12.1f} "
          f"{result['overall_estimate_cpu_ms_per_frame']:13.1f}")
    keep = result["overall_extract_fps"] / result["overall_extract_fps_without_region_motion"]
    mea_ms = sum(r["region_motion_ms_per_frame"] * r["frames"] for r in result["speed"]) / total
    result["region_motion_fps_kept"] = keep
    print(f"pose stage with per-part pixel motion: {100 * keep:.1f}% of the frames/s without it "
          f"(accumulator alone {mea_ms:.2f} ms/frame); single-core SGEMM "
          f"{result['machine']['sgemm_gflops_1core']} GFLOP/s")
    if args.smoothing:
        result["smoothing"] = bench_smoothing(videos)
        print(f"\n{'video':18s} {'method':28s} {'jitter':>7s} {'x raw':>6s} {'nose amp':>9s} "
              f"{'x raw':>6s} {'p2p x':>6s} {'lag fr':>7s}")
        for r in result["smoothing"]:
            print(f"{r['video']:18s} {r['method']:28s} {r['jitter_px']:7.2f} {r['jitter_ratio']:6.2f} "
                  f"{r['nose_amplitude_px']:9.2f} {r['nose_amplitude_ratio']:6.2f} "
                  f"{r['nose_peak_to_peak_ratio']:6.2f} {r['lag_frames']:+7.1f}")
    result["machine"]["load_average_1m_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
