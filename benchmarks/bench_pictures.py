"""What the cheap outputs of a video cost: the two pictures, and the annotated clip per frame.

    python benchmarks/bench_pictures.py [--videos DIR ...] [--rounds 7] [--clip-rounds 2]
        [--skeletons DIR] [--json benchmarks/results/pictures.json]

For each real clip (default: examples/videos) the skeleton is made once (``pose.extract``,
or read from ``--skeletons DIR/<stem>.skeleton.h5``) with its model-free heat, then:

- pictures: ``KEY.heatmap.png`` and ``KEY.timeline.png`` as the pipeline draws them (same
  arguments as ``pipelines.stages.write.write_pictures``, PNG bytes included), by matplotlib
  (``figures.mpl_joint_heatmap``, ``figures.mpl_timeline``) and by :mod:`pipelines.drawing.raster`, alternating in
  ``--rounds`` rounds after one untimed warm-up each; median ms;
- the same two pictures as the first of a fresh process (their imports, fonts and caches
  included; loading the skeleton and the heat excluded), once per drawer;
- clip: ``render_annotated_clip`` (x264 ``veryfast``) at ``full`` and ``half`` size and
  decoding alone, alternating in ``--clip-rounds`` rounds; the clip's added cost per frame is
  (render − decode) / frames, median over rounds.

Prints the machine (CPU, load average before and after, single-core SGEMM) and a table; writes
the JSON. Timings on a loaded machine are slower in proportion: read the load average.
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

import numpy as np  # noqa: E402

from benchmarks.machine import machine_info  # noqa: E402
from core.atomic import atomic_write_text  # noqa: E402
from core.layouts import MA52_44  # noqa: E402
from pipelines.drawing import figures, raster  # noqa: E402
from pipelines.drawing.render import CLIP_SIZES, FrameAnnotation, render_annotated_clip  # noqa: E402
from pipelines.stages.motion_energy import motion_energy, normalise_heat  # noqa: E402
from pose.skeleton_file import Skeleton, read_skeleton, write_skeleton  # noqa: E402
from pose.video import iter_frames  # noqa: E402

NOTE = "no labels: run with --weights"


def load_skeleton(video: Path, skeletons: Path | None) -> Skeleton:
    if skeletons is not None and (skeletons / f"{video.stem}.skeleton.h5").is_file():
        return read_skeleton(skeletons / f"{video.stem}.skeleton.h5")
    from pose.extract import extract_skeleton

    return extract_skeleton(video)


DRAWERS = {"mpl": (figures.mpl_joint_heatmap, figures.mpl_timeline), "raster": (raster.joint_heatmap, raster.timeline)}


def draw_both(drawer: str, name: str, skel: Skeleton, energy: np.ndarray) -> tuple[float, float, int, int]:
    """ms for the heatmap and the timeline (PNG bytes made), and their PNG sizes."""
    fps = float(skel.meta["video"]["fps"])
    n = len(energy)
    parts = {p: skel.region_motion[:, i] for i, (p, _) in enumerate(MA52_44.parts)} \
        if skel.region_motion is not None else None
    windows = [{"index": 0, "start_frame": 0, "end_frame": n, "start_s": 0.0, "end_s": n / fps}]
    joint_heatmap, timeline = DRAWERS[drawer]
    t0 = time.perf_counter()
    hm = joint_heatmap(normalise_heat(energy), fps, 0, MA52_44, "motion_energy", vmax=1.0,
                              title=f"{name} · per-joint motion energy (model-free)")
    t1 = time.perf_counter()
    tl = timeline(n / fps, [], windows, energy.sum(axis=1), fps, note=NOTE,
                         title=f"{name} · micro-actions over time", body_levels=[], region_motion=parts)
    t2 = time.perf_counter()
    return 1000 * (t1 - t0), 1000 * (t2 - t1), len(hm.png), len(tl.png)


COLD = """
import sys, time
t = time.perf_counter()
sys.path.insert(0, {root!r})
from benchmarks.bench_pictures import draw_both
from core.layouts import MA52_44
from pipelines.stages.motion_energy import motion_energy
from pose.skeleton_file import read_skeleton
skel = read_skeleton({path!r})
energy = motion_energy(skel.keypoints, MA52_44, float(skel.meta["video"]["fps"]), skel.flags)
t_ready = time.perf_counter()
draw_both({drawer!r}, "cold", skel, energy)
print(1000 * (time.perf_counter() - t_ready))
"""


def cold_ms(drawer: str, skel_path: Path) -> float:
    """The first two pictures of a fresh process (imports of the drawing code, fonts), ms."""
    import subprocess

    code = COLD.format(root=str(ROOT), path=str(skel_path), drawer=drawer)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def time_clip(video: Path, skel: Skeleton, energy: np.ndarray, size: str | None, out: Path) -> float:
    """Wall seconds to decode (size None) or decode, draw and encode the clip at ``size``."""
    n = skel.num_frames
    t = time.perf_counter()
    frames = (frame for _, _, frame in iter_frames(video))
    if size is None:
        for _ in frames:
            pass
    else:
        render_annotated_clip(frames, out / f"{video.stem}.{size}.mp4", fps=float(skel.meta["video"]["fps"]),
                              keypoints=skel.keypoints, scores=skel.scores, heat=normalise_heat(energy),
                              annotations=[FrameAnnotation()] * n,
                              timeline_colours=np.full((n, 3), 90, np.uint8), energy=energy.sum(axis=1),
                              banner=NOTE, size=size)
    return time.perf_counter() - t


def bench_video(video: Path, args: argparse.Namespace, out: Path) -> dict:
    skel = load_skeleton(video, args.skeletons)
    fps = float(skel.meta["video"]["fps"])
    energy = motion_energy(skel.keypoints, MA52_44, fps, skel.flags)
    times: dict[str, list[float]] = {k: [] for k in ("mpl_heatmap", "mpl_timeline", "raster_heatmap",
                                                     "raster_timeline")}
    sizes = {}
    for key in DRAWERS:  # warm-up: imports, fonts, caches
        draw_both(key, video.name, skel, energy)
    for _ in range(args.rounds):
        for key in DRAWERS:
            hm, tl, hm_bytes, tl_bytes = draw_both(key, video.name, skel, energy)
            times[f"{key}_heatmap"].append(hm)
            times[f"{key}_timeline"].append(tl)
            sizes[key] = {"heatmap_bytes": hm_bytes, "timeline_bytes": tl_bytes}
    skel_path = out / f"{video.stem}.skeleton.h5"
    write_skeleton(skel, skel_path)
    cold = {key: round(cold_ms(key, skel_path), 1) for key in DRAWERS}
    clip: dict[str, list[float]] = {"decode": [], **{s: [] for s in CLIP_SIZES}}
    for _ in range(args.clip_rounds):
        for size in (None, *CLIP_SIZES):
            clip["decode" if size is None else size].append(time_clip(video, skel, energy, size, out))
    n = skel.num_frames
    per_frame = {s: [1000 * (c - d) / n for c, d in zip(clip[s], clip["decode"])] for s in CLIP_SIZES}
    return {"video": video.name, "frames": n, "width": skel.meta["video"]["width"],
            "height": skel.meta["video"]["height"],
            "pictures_ms": {k: round(statistics.median(v), 1) for k, v in times.items()},
            "pictures_ms_all": {k: [round(x, 1) for x in v] for k, v in times.items()}, "png_bytes": sizes,
            "first_two_pictures_of_a_process_ms": cold,
            "clip_added_ms_per_frame": {s: round(statistics.median(v), 2) for s, v in per_frame.items()},
            "clip_bytes": {s: (out / f"{video.stem}.{s}.mp4").stat().st_size for s in CLIP_SIZES},
            "decode_ms_per_frame": round(1000 * statistics.median(clip["decode"]) / n, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", nargs="+", type=Path, default=[ROOT / "examples" / "videos"],
                    help="video files or folders of .mp4 files")
    ap.add_argument("--skeletons", type=Path, default=None, help="folder with <stem>.skeleton.h5 to reuse")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--clip-rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "pictures.json")
    args = ap.parse_args(argv)
    videos = [v for p in args.videos for v in (sorted(p.glob("*.mp4")) if p.is_dir() else [p])]
    if not videos:
        ap.error("no videos found")
    machine = machine_info()
    print(f"machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, load {machine['load_average_1m']:.2f}, "
          f"SGEMM {machine['sgemm_gflops_1core']} GFLOP/s (1 core)")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for video in videos:
            rows.append(bench_video(video, args, Path(d)))
            r = rows[-1]
            p, c, f = r["pictures_ms"], r["clip_added_ms_per_frame"], r["first_two_pictures_of_a_process_ms"]
            print(f"{r['video']:28s} {r['width']}x{r['height']} {r['frames']:4d} fr | "
                  f"heatmap mpl {p['mpl_heatmap']:6.1f} raster {p['raster_heatmap']:5.1f} ms | "
                  f"timeline mpl {p['mpl_timeline']:6.1f} raster {p['raster_timeline']:5.1f} ms | "
                  f"first pair in a process mpl {f['mpl']:.0f} raster {f['raster']:.0f} ms | "
                  f"clip +ms/frame full {c['full']:5.2f} half {c['half']:5.2f} (decode {r['decode_ms_per_frame']:.2f})")
    load_after = os.getloadavg()[0]
    print(f"load average after: {load_after:.2f}")
    doc = {"machine": machine, "load_average_1m_after": load_after, "rounds": args.rounds,
           "clip_rounds": args.clip_rounds, "videos": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
