"""Do two source trees write the same outputs? (A restructuring must change none.)

    python benchmarks/compare_outputs.py BEFORE_TREE AFTER_TREE [--work DIR] [--reuse]

For each tree it runs the README's main command on the bundled clips,

    python -m pipelines.video_to_labels VIDEOS --out OUT --export-clips

and a labelled run with ELAN files on the real clips beside broken files (a truncated clip,
an empty file, a text file named ``.mp4``),

    python -m pipelines.video_to_labels CLIPS --out OUT --weights WEIGHTS --elan

with the same input folders for both trees (the labels documents record the input paths).
Then it compares the output folders: the same file names; JSON equal apart from timing
fields (``timing_s``); CSV tables equal row by row as parsed (line endings do not matter);
HDF5 files equal dataset by dataset (arrays exactly, attributes as JSON); ELAN files byte for
byte apart from the two stamps every write makes anew (the document's URN, a random uuid4,
and the header's DATE); every other file (PNG, MP4) byte for byte. It prints one line per
difference and a verdict, and exits 1 when anything differs. ``--reuse`` keeps the output
folders of an earlier call with the same ``--work`` (a tree's runs are redone only where its
folder is missing).

The data (the real clips and the checkpoint) come from ``MMN_SHARED`` (default ``../shared``).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"timing_s"}


def shared_dir() -> Path:
    return Path(os.environ.get("MMN_SHARED") or ROOT.parent / "shared").resolve()


def make_inputs(work: Path, tree: Path) -> dict[str, Path]:
    """The two input folders (made once under ``work``): the bundled clips, and the real
    clips with three broken files."""
    bundled, clips = work / "inputs" / "bundled", work / "inputs" / "clips"
    if not bundled.is_dir():
        bundled.mkdir(parents=True)
        for clip in sorted((tree / "examples" / "videos").glob("*.mp4")):
            shutil.copy(clip, bundled / clip.name)
    if not clips.is_dir():
        clips.mkdir(parents=True)
        videos = shared_dir() / "fixtures" / "videos"
        for clip in sorted(videos.glob("*.mp4")):
            shutil.copy(clip, clips / clip.name)
        _truncated(videos / "0030_01_0002.mp4", clips / "cut_short.mp4")
        (clips / "empty.mp4").write_bytes(b"")
        (clips / "notes.mp4").write_text("this is a text file, not a video\n")
    return {"bundled": bundled, "clips": clips}


def _truncated(src: Path, dst: Path, keep: float = 0.6) -> None:
    """A faststart copy of ``src`` cut at ``keep`` of its bytes (a download cut short)."""
    import av

    tmp = dst.with_suffix(".full.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), "w", options={"movflags": "+faststart"}) as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        for packet in inp.demux(s_in):
            if packet.dts is not None:
                packet.stream = s_out
                out.mux(packet)
    data = tmp.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    tmp.unlink()


def run_tree(tree: Path, inputs: dict[str, Path], out: Path) -> dict[str, float]:
    """Both runs of one tree into ``out/bundled`` and ``out/clips``; returns their seconds."""
    weights = shared_dir() / "fixtures" / "mmn_ma52" / "weights.pt"
    runs = {"bundled": [str(inputs["bundled"]), "--export-clips"],
            "clips": [str(inputs["clips"]), "--weights", str(weights), "--elan"]}
    seconds = {}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    for name, args in runs.items():
        dest = out / name
        if dest.is_dir():
            shutil.rmtree(dest)
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", _RUN, *args, "--out", str(dest)], cwd=tree, env=env,
                             capture_output=True, text=True)
        seconds[name] = time.perf_counter() - t0
        module = res.stdout.strip().splitlines()[0] if res.stdout.strip() else "?"
        if not module.startswith(str(tree)):
            raise SystemExit(f"{tree}: the run imported pipelines from {module}, not from the tree")
        if res.returncode not in (0, 1):
            raise SystemExit(f"{tree} {name}: exit status {res.returncode}\n{res.stderr[-3000:]}")
        (out / f"{name}.exit_status").write_text(str(res.returncode))
    return seconds


# the CLI, run from the tree's folder, after saying where pipelines was imported from. An editable
# install of the project (pip install -e) adds an import hook that would find a module missing
# from the tree in the installed checkout: it is removed first, so each tree runs only its own code.
_RUN = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in repr(f)]; "
        "sys.path_hooks[:] = [h for h in sys.path_hooks if '__editable__' not in repr(h)]; "
        "sys.path_importer_cache.clear(); sys.path.insert(0, '.'); "
        "import pipelines; print(pipelines.__file__, flush=True); "
        "from pipelines.video_to_labels import main; sys.argv[0] = 'video_to_labels'; sys.exit(main(sys.argv[1:]))")


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _attr_value(v: object) -> object:
    """An HDF5 attribute as JSON (a JSON text parsed), without its time of writing."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str) and v[:1] in "{[":
        try:
            v = json.loads(v)
        except ValueError:
            return v
        if isinstance(v, dict) and isinstance(v.get("created"), dict):
            v = {**v, "created": {k: x for k, x in v["created"].items() if k != "utc"}}  # when it was written
    return v


def _h5_items(path: Path) -> dict[str, object]:
    import h5py

    items: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: object) -> None:
            attrs = {k: _attr_value(v) for k, v in obj.attrs.items()}
            items[name + "@attrs"] = json.loads(json.dumps(attrs, default=str))
            if isinstance(obj, h5py.Dataset):
                items[name] = obj[()]
        visit("/", f)
        f.visititems(visit)
    return items


def _same_h5(a: Path, b: Path) -> str | None:
    ia, ib = _h5_items(a), _h5_items(b)
    if set(ia) != set(ib):
        return f"datasets differ: {sorted(set(ia) ^ set(ib))}"
    diffs = []
    for k in ia:
        va, vb = ia[k], ib[k]
        if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
            va, vb = np.asarray(va), np.asarray(vb)
            nan = va.dtype.kind == "f"
            if va.dtype != vb.dtype or va.shape != vb.shape or not np.array_equal(va, vb, equal_nan=nan):
                diffs.append(f"{k}: arrays differ")
        elif _without_timing(va) != _without_timing(vb):
            diffs.append(f"{k}: attributes differ")
    return "; ".join(diffs) or None


def _video_difference(a: Path, b: Path) -> str:
    """How two clips whose bytes differ differ once decoded."""
    import av

    def frames(p: Path) -> list[np.ndarray]:
        with av.open(str(p)) as c:
            return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]

    fa, fb = frames(a), frames(b)
    if len(fa) != len(fb) or any(x.shape != y.shape for x, y in zip(fa, fb)):
        return f"bytes differ; {len(fa)} and {len(fb)} frames"
    worst = max((int(np.abs(x.astype(np.int16) - y).max()) for x, y in zip(fa, fb)), default=0)
    changed = sum(1 for x, y in zip(fa, fb) if not np.array_equal(x, y))
    return f"bytes differ; decoded, {changed} of {len(fa)} frames differ, by at most {worst} grey levels"


# what differs between two writes of the same .eaf: the document's URN (a fresh uuid4) and the
# header's DATE (the time of writing), both stamped by pympi-ling / ELAN's format
_EAF_STAMPS = (re.compile(rb"urn:nl-mpi-tools-elan-eaf:[0-9a-fA-F-]+"), re.compile(rb'DATE="[^"]*"'))


def _eaf_without_stamps(path: Path) -> bytes:
    data = path.read_bytes()
    for pattern in _EAF_STAMPS:
        data = pattern.sub(b"<stamp>", data)
    return data


def compare_file(a: Path, b: Path) -> str | None:
    """None when the two files hold the same outputs, else what differs."""
    name = a.name
    if name.endswith(".json"):
        ja, jb = (json.loads(p.read_text(encoding="utf-8")) for p in (a, b))
        return None if _without_timing(ja) == _without_timing(jb) else "JSON differs (timing fields ignored)"
    if name.endswith(".csv"):
        return None if _csv_rows(a) == _csv_rows(b) else "CSV rows differ"
    if name.endswith(".h5"):
        return _same_h5(a, b)
    if name.endswith(".eaf"):
        return None if _eaf_without_stamps(a) == _eaf_without_stamps(b) else "EAF differs (URN and DATE ignored)"
    if a.read_bytes() == b.read_bytes():
        return None
    return _video_difference(a, b) if name.endswith(".mp4") else "bytes differ"


def compare_folders(a: Path, b: Path) -> tuple[int, list[str]]:
    """(files compared, differences) between two output folders."""
    names_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    names_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    diffs = []
    if names_a != names_b:
        diffs.append(f"file names differ: only before {sorted(set(names_a) - set(names_b))}, "
                     f"only after {sorted(set(names_b) - set(names_a))}")
    n = 0
    for name in sorted(set(names_a) & set(names_b)):
        n += 1
        why = compare_file(a / name, b / name)
        if why is not None:
            diffs.append(f"{name}: {why}")
    return n, diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path, help="source tree of the earlier version")
    ap.add_argument("after", type=Path, help="source tree of the later version")
    ap.add_argument("--work", type=Path, default=Path("/tmp/compare_outputs"), help="inputs and outputs go here")
    ap.add_argument("--reuse", action="store_true", help="keep a tree's outputs from an earlier call")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(args.work, args.after.resolve())
    outs = {}
    for label, tree in (("before", args.before.resolve()), ("after", args.after.resolve())):
        out = args.work / label
        outs[label] = out
        if args.reuse and all((out / f"{r}.exit_status").is_file() for r in ("bundled", "clips")):
            print(f"{label}: reusing {out}")
            continue
        seconds = run_tree(tree, inputs, out)
        print(f"{label}: {tree}: " + ", ".join(f"{k} run {v:.0f} s" for k, v in seconds.items()), flush=True)
    total_diffs = []
    for run in ("bundled", "clips"):
        ea, eb = ((outs[x] / f"{run}.exit_status").read_text() for x in ("before", "after"))
        n, diffs = compare_folders(outs["before"] / run, outs["after"] / run)
        if ea != eb:
            diffs.insert(0, f"exit status {ea} before, {eb} after")
        print(f"{run}: {n} files compared, exit status {ea}/{eb}, {len(diffs)} difference(s)")
        for d in diffs:
            print(f"  {run}/{d}")
        total_diffs += diffs
    print("SAME OUTPUTS" if not total_diffs else f"DIFFERENT: {len(total_diffs)} difference(s)")
    return 1 if total_diffs else 0


if __name__ == "__main__":
    sys.exit(main())
