"""Throughput of the folder job: the local engine against ``--engine ray`` with 1 and 2 pose actors.

    python benchmarks/bench_scale.py [--videos DIR] [--copies 4] [--weights W.pt] [--pose-actors 1 2]
        [--json benchmarks/results/scale.json]

A folder of ``copies`` × the clips in ``--videos`` (default: the three bundled MA-52 clips four
times over, under different names: 12 videos) is labelled by each engine from scratch, as
``python -m pipelines.video_to_labels`` runs it (a fresh process, a fresh local Ray). For each
run it reports:

- throughput: seconds of video per second of wall time (``×`` real time is its inverse);
- Ray's start-up: from launching the command to the first video entering a pose actor (of it,
  ``ray.init``: the "ready in" the driver prints), against the local engine's, which starts
  its first video once its imports are done;
- Ray's per-video overhead on the critical path: with one pose actor the videos pass through
  it one after another, so the gaps between one pose task's end and the next one's start,
  and the steady throughput once running;
- the pose seconds each engine spent per second of video (a pose actor shares the cores
  with the model and write stages);
- peak memory: the largest sum of RSS over the command's process tree (driver, Ray's
  processes and workers; shared pages, the object store's included, count once per process).

Beside the figures: :func:`benchmarks.machine.machine_info` (CPU, load average, single-core
SGEMM GFLOP/s) measured in the same run, and the 1-minute load average before and after each
run (another busy process on the cores slows every figure down).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine_info  # noqa: E402


class PeakRSS:
    """The largest sum of RSS over a process and its descendants, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.psutil, self.pid, self.peak, self.procs = psutil, pid, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        ps = self.psutil
        while not self._stop.is_set():
            try:
                root = ps.Process(self.pid)
                procs = [root] + root.children(recursive=True)
            except ps.NoSuchProcess:
                return
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except (ps.NoSuchProcess, ps.AccessDenied):
                    pass
            if total > self.peak:
                self.peak, self.procs = total, len(procs)
            self._stop.wait(0.2)


def _durations(folder: Path) -> dict[str, float]:
    from pose.video import probe_video

    return {p.stem: probe_video(p).duration for p in sorted(folder.glob("*.mp4"))}


def _run(cmd: list[str], out: Path) -> dict:
    load_before = os.getloadavg()[0]
    t0, launched = time.perf_counter(), time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as mem:
        _, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    docs = {p.name.removesuffix(".labels.json"): json.loads(p.read_text()) for p in out.glob("*.labels.json")}
    run = {"wall_s": round(wall, 2), "peak_rss_mib": round(mem.peak / 2 ** 20), "processes_at_peak": mem.procs,
           "load_1m_before": round(load_before, 2), "load_1m_after": round(os.getloadavg()[0], 2),
           "pose_s_sum": round(sum(d["timing_s"]["pose"] for d in docs.values()), 2),
           "videos": len(docs), "launched_unix": launched}
    ready = re.search(r"ready in ([0-9.]+) s", stderr)
    if ready:
        run["ray_init_s"] = float(ready.group(1))
    stages = out / "stages.csv"
    if stages.is_file():
        with open(stages, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["status"] == "done"]
        starts = sorted(float(r["pose_start_unix"]) for r in rows)
        spans = sorted((float(r["pose_start_unix"]), float(r["pose_start_unix"]) + float(r["pose_s"])) for r in rows)
        # the gaps between one pose task's end and the next one's start mean something only
        # when one actor runs them one after another
        gaps = [b[0] - a[1] for a, b in zip(spans, spans[1:])] if "--pose-actors" in cmd and \
            cmd[cmd.index("--pose-actors") + 1] == "1" else []
        run.update(startup_s=round(starts[0] - launched, 2),
                   pose_gap_s_median=round(sorted(gaps)[len(gaps) // 2], 3) if gaps else None,
                   processing_s=round(max(float(r["end_unix"]) for r in rows) - starts[0], 2),
                   nodes=len({r["pose_node"] for r in rows}))
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=Path, default=ROOT / "examples" / "videos")
    ap.add_argument("--copies", type=int, default=4, help="each clip this many times, under different names")
    ap.add_argument("--weights", type=Path, default=ROOT.parent / "shared" / "fixtures" / "mmn_ma52" / "weights.pt")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pose-actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    args = ap.parse_args()

    machine = machine_info()
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        src = Path(tmp) / "videos"
        src.mkdir()
        for k in range(args.copies):
            for clip in sorted(args.videos.glob("*.mp4")):
                shutil.copy(clip, src / f"copy{k}_{clip.name}")
        seconds = sum(_durations(src).values())
        base = [sys.executable, "-m", "pipelines.video_to_labels", str(src), "--device", args.device]
        if args.weights.is_file():
            base += ["--weights", str(args.weights)]
        runs = {}
        empty = Path(tmp) / "empty"
        empty.mkdir()
        # the local engine's own start (imports, the checkpoint): the same command on no video
        start = _run(base[:3] + [str(empty)] + base[4:] + ["--out", str(Path(tmp) / "start")], Path(tmp) / "start")
        plans = [("local", [])]
        for n in args.pose_actors:
            # the stages' reservations must fit the cores: MMN 0.5 and the writers 0.5 CPU
            pose_cpus = min(1.0, max(0.25, (cpus - 1.0) / n))
            plans.append((f"ray_{n}_pose_actor{'s' if n > 1 else ''}",
                          ["--engine", "ray", "--pose-actors", str(n), "--pose-cpus", f"{pose_cpus:g}"]))
        for name, extra in plans:
            out = Path(tmp) / name
            print(f"{name} …", file=sys.stderr, flush=True)
            run = _run(base + ["--out", str(out)] + extra, out)
            run["throughput_video_s_per_s"] = round(seconds / run["wall_s"], 3)
            if "processing_s" in run:
                run["steady_throughput_video_s_per_s"] = round(seconds / run["processing_s"], 3)
            run["pose_s_per_video_s"] = round(run["pose_s_sum"] / seconds, 3)
            run["args"] = extra
            runs[name] = run
    local = runs["local"]
    local["processing_s"] = round(local["wall_s"] - start["wall_s"], 2)
    summary = {"local_startup_s": start["wall_s"],
               "local_steady_throughput_video_s_per_s": round(seconds / local["processing_s"], 3)}
    for name, r in runs.items():
        if name.startswith("ray_"):
            summary[name] = {
                # launch → first video in a pose actor, less what the local engine needs to start
                "ray_startup_overhead_s": round(r["startup_s"] - start["wall_s"], 2),
                # first video in → last video out, against the local engine's processing time
                "ray_overhead_per_video_s": round((r["processing_s"] - local["processing_s"]) / r["videos"], 3),
                "speedup_vs_local_wall": round(local["wall_s"] / r["wall_s"], 3),
                "speedup_vs_local_steady": round(local["processing_s"] / r["processing_s"], 3)}
    result = {"meta": {"machine": machine, "videos": len(list(args.videos.glob("*.mp4"))) * args.copies,
                       "video_seconds": round(seconds, 2), "device": args.device,
                       "weights": args.weights.name if args.weights.is_file() else None,
                       "date": time.strftime("%Y-%m-%d")},
              "runs": runs, "summary": summary}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))

    print(f"machine: {machine['cpu']}, {machine['logical_cpus']} CPUs, SGEMM {machine['sgemm_gflops_1core']} "
          f"GFLOP/s on 1 core, load {machine['load_average_1m']:.2f}")
    print(f"{result['meta']['videos']} videos, {seconds:.1f} s of video")
    print(f"{'engine':<22}{'wall s':>8}{'video s/s':>11}{'steady':>8}{'start s':>9}{'init s':>8}{'gap s':>8}"
          f"{'pose s/video s':>16}{'peak MiB':>10}{'load':>12}")
    for name, r in runs.items():
        print(f"{name:<22}{r['wall_s']:>8.1f}{r['throughput_video_s_per_s']:>11.3f}"
              f"{r.get('steady_throughput_video_s_per_s', float('nan')):>8.3f}{r.get('startup_s', float('nan')):>9.1f}"
              f"{r.get('ray_init_s', float('nan')):>8.1f}{r.get('pose_gap_s_median') or float('nan'):>8.3f}"
              f"{r['pose_s_per_video_s']:>16.2f}{r['peak_rss_mib']:>10}"
              f"{r['load_1m_before']:>6.2f}→{r['load_1m_after']:<5.2f}")
    print(json.dumps(summary, indent=1))
    print(f"written {args.json}")


if __name__ == "__main__":
    main()
