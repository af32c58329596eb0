"""The folder job against a careless user and a hostile file (issue: reliability and security).

Each test reproduces one failure seen on the earlier code: stale results taken as done,
shards deleting each other's temporary files, a full disk, Ctrl-C, unusable output folders,
bad checkpoints and flags, the job eating its own outputs, leftovers of failed videos. Full
and read-only disks are small tmpfs mounts made here (root is needed; CI runs as root).
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core.atomic import temp_path_beside
from core.taxonomy import Taxonomy
from mmn import MMN, MMNConfig, save_checkpoint
from pipelines.discovery import discover
from pipelines.job import Outputs
from tests.cli import run_cli, start_cli
from tests.data import ROOT, VIDEOS_DIR

SHORT = VIDEOS_DIR / "0019_02_0078.mp4"   # 50 frames: the cheapest real clip
OTHER = VIDEOS_DIR / "0010_02_0101.mp4"


def _run(*args, timeout=600):
    return run_cli("pipelines.video_to_labels", *args, timeout=timeout)


def _doc(out: Path, key: str) -> dict:
    return json.loads((out / f"{key}.labels.json").read_text())


@contextlib.contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}): the full/read-only disk cases need root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(folder: Path, leave_bytes: int) -> None:
    """Fill ``folder``'s file system until about ``leave_bytes`` are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    (folder / "filler.bin").write_bytes(b"\0" * max(0, free - leave_bytes))


def _parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# ------------------------------------------------------------------ 2. stale results


@pytest.mark.slow
def test_rerun_redoes_what_changed_and_reuses_the_pose(tmp_path, golden_weights):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "talk.mp4").write_bytes(SHORT.read_bytes())
    assert _run(inp, "--out", out).returncode == 0                       # README flow: first without weights
    assert _doc(out, "talk")["model"] is None
    skel_mtime = (out / "talk.skeleton.h5").stat().st_mtime_ns
    res = _run(inp, "--out", out, "--weights", golden_weights, "--device", "cpu")   # then with them
    assert res.returncode == 0, res.stderr[-2000:]
    doc = _doc(out, "talk")
    assert doc["model"]["streams"][0]["file"] == "weights.pt" and all("top_k" in w for w in doc["windows"])
    assert (out / "talk.skeleton.h5").stat().st_mtime_ns == skel_mtime     # pose inputs unchanged: reused
    assert "pose talk" not in res.stderr
    res = _run(inp, "--out", out, "--weights", golden_weights, "--device", "cpu", "--window", "1.0", "--stride", "0.25")
    assert res.returncode == 0 and _doc(out, "talk")["windowing"]["window_s"] == 1.0
    assert "already done" not in (out / "summary.csv").read_text()
    res = _run(inp, "--out", out, "--weights", golden_weights, "--device", "cpu", "--window", "1.0", "--stride", "0.25")
    assert "already done" in (out / "summary.csv").read_text()             # same options: nothing to do
    # a different video under the same name is a different input: redone, pose included
    (inp / "talk.mp4").write_bytes(OTHER.read_bytes())
    res = _run(inp, "--out", out, "--weights", golden_weights, "--device", "cpu", "--window", "1.0", "--stride", "0.25")
    assert res.returncode == 0
    doc = _doc(out, "talk")
    assert doc["video"]["frame_count"] == 47 and doc["job"]["input"]["size"] == OTHER.stat().st_size
    assert (out / "talk.skeleton.h5").stat().st_mtime_ns != skel_mtime


@pytest.mark.slow
def test_same_stem_other_extension_is_its_own_video(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "clip.mp4").write_bytes(SHORT.read_bytes())
    assert _run(inp, "--out", out).returncode == 0
    (inp / "clip.mkv").write_bytes(OTHER.read_bytes())          # added beside the finished clip.mp4
    assert sorted(j.key for j in discover([inp])) == ["clip-mkv", "clip-mp4"]
    assert _run(inp, "--out", out).returncode == 0
    assert _doc(out, "clip-mkv")["video"]["frame_count"] == 47 and _doc(out, "clip-mp4")["video"]["frame_count"] == 50


# ------------------------------------------------------------------ 3. one video's leftovers only


def test_cleaning_one_key_never_touches_another_keys_temporary_files(tmp_path):
    theirs = [temp_path_beside(tmp_path / name) for name in
              ("ab.annotated.mp4", "talk_c10.skeleton.h5", "a.labels.json.bak", "a.x.labels.json")]
    mine = [temp_path_beside(p) for p in Outputs.for_key(tmp_path, "a").all()]
    mine += [temp_path_beside(p) for p in Outputs.for_key(tmp_path, "talk_c1").all()]
    per_key = len(Outputs.for_key(tmp_path, "a").all())
    assert Outputs.for_key(tmp_path, "a").clean_leftovers() == per_key
    assert Outputs.for_key(tmp_path, "talk_c1").clean_leftovers() == per_key
    assert all(p.exists() for p in theirs) and not any(p.exists() for p in mine)


@pytest.mark.slow
def test_concurrent_shards_in_one_folder_do_not_break_each_other(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    (inp / "a.mp4").write_bytes(SHORT.read_bytes())
    (inp / "ab.mp4").write_bytes(OTHER.read_bytes())
    # shard 1 (key "ab") renders while shard 0 (key "a") starts on the same folder
    args = ["--out", out, "--export-clips"]
    p1 = start_cli("pipelines.video_to_labels", inp, *args, "--shard", "1/2")
    try:
        time.sleep(4)
        r0 = _run(inp, *args, "--shard", "0/2")
        _, err1 = p1.communicate(timeout=600)
    finally:
        p1.kill()
        p1.wait()
    assert r0.returncode == 0 and p1.returncode == 0, err1[-2000:]
    assert "Traceback" not in err1
    for key in ("a", "ab"):
        assert (out / f"{key}.annotated.mp4").stat().st_size > 10_000
    assert _parts(out) == []


# ------------------------------------------------------------------ 4. a full disk


def test_disk_full_while_writing_the_skeleton_is_a_failure_row(tmp_path):
    with tmpfs(tmp_path / "disk", "512k") as out:
        _fill(out, 24 * 1024)                                # the skeleton (~40 kB) cannot fit
        res = _run(SHORT, OTHER, "--out", out)
        assert res.returncode == 1, res.stderr[-2000:]      # not 139 (a segmentation fault)
        assert "Traceback" not in res.stderr and "No space left on device" in res.stderr
        rows = (out / "failures.csv").read_text().splitlines()
        assert len(rows) == 2 and ",pose," in rows[1] and "skeleton.h5" in rows[1]
        summary = (out / "summary.csv").read_text()
        assert "failed" in summary and "not processed" in summary   # the run stopped cleanly
        assert _parts(out) == [] and not list(out.glob("*.skeleton.h5"))


@pytest.mark.slow
def test_disk_full_while_rendering_is_a_failure_row(tmp_path):
    with tmpfs(tmp_path / "disk", "320k") as out:       # skeleton and pictures fit, the clip does not
        res = _run(SHORT, "--out", out, "--export-clips")
        assert res.returncode == 1, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
        rows = (out / "failures.csv").read_text().splitlines()
        assert len(rows) == 2 and ",render," in rows[1] and "No space left on device" in rows[1]
        assert _parts(out) == [] and sorted(p.name for p in out.glob("0019*")) == ["0019_02_0078.failed.json"]


def test_write_skeleton_on_a_full_disk_raises_oserror_not_a_crash(tmp_path):
    script = ("import numpy as np, sys\nfrom pose.skeleton_file import Skeleton, write_skeleton\n"
              "n = 3000\ns = Skeleton(np.random.rand(n, 44, 2).astype(np.float32), np.ones((n, 44), np.float32), "
              "np.arange(n) / 30.0, np.zeros((n, 44), np.uint8))\n"
              "try:\n    write_skeleton(s, sys.argv[1])\nexcept OSError as e:\n    print('OSError', e.errno)\n")
    with tmpfs(tmp_path / "disk", "40k") as out:
        res = subprocess.run([sys.executable, "-c", script, str(out / "x.skeleton.h5")], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and res.stdout.strip() == "OSError 28", (res.returncode, res.stderr[-1000:])
        assert os.listdir(out) == []


# ------------------------------------------------------------------ 5. Ctrl-C


def test_ctrl_c_while_writing_skeletons_is_not_swallowed(tmp_path):
    script = ("import numpy as np, sys\nfrom pose.skeleton_file import Skeleton, write_skeleton\n"
              "n = 20000\ns = Skeleton(np.random.rand(n, 44, 2).astype(np.float32), np.ones((n, 44), np.float32), "
              "np.arange(n) / 30.0, np.zeros((n, 44), np.uint8))\nprint('ready', flush=True)\n"
              "for i in range(10000):\n    write_skeleton(s, sys.argv[1])\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "x.skeleton.h5")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # never leave it writing after a failed assertion
        proc.wait()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err and "Exception ignored" not in err
    assert _parts(tmp_path) == []


@pytest.mark.slow
def test_ctrl_c_stops_the_folder_job_with_130_and_keeps_nothing_partial(tmp_path):
    out = tmp_path / "out"
    proc = start_cli("pipelines.video_to_labels", OTHER, SHORT, "--out", out)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(out.glob("*.labels.json")):  # after the first video
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and _parts(out) == []
    assert "0010_02_0101,done" in (out / "summary.csv").read_text()


# ------------------------------------------------------------------ 6-9. usage errors, before any work


def test_unusable_output_folders_are_usage_errors(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = {a_file: "is a file", a_file / "sub": "is a file", Path("/proc/mmn-out"): "cannot write there"}
    for out, message in cases.items():
        res = _run(SHORT, "--out", out, timeout=60)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, res.stderr
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as ro:
        res = _run(SHORT, "--out", ro, timeout=60)
        assert res.returncode == 2 and "Read-only file system" in res.stderr and "Traceback" not in res.stderr


def test_a_text_file_as_checkpoint_is_a_named_error_everywhere(tmp_path):
    from app.engine import ModelError, Models

    weights = tmp_path / "weights.pt"
    weights.write_text("these are not weights\n")
    res = _run(SHORT, "--out", tmp_path / "out", "--weights", weights, timeout=120)
    assert res.returncode == 2 and "weights.pt: " in res.stderr and "Traceback" not in res.stderr
    np.save(tmp_path / "clip.npy", np.zeros((10, 44, 2), np.float32))
    res = run_cli("mmn.classify", "--weights", weights, tmp_path / "clip.npy", timeout=120)
    assert res.returncode == 2 and "weights.pt: " in res.stderr and "KeyError" not in res.stderr
    with pytest.raises(ModelError, match="weights.pt: "):
        Models(weights)


@pytest.mark.slow
def test_checkpoint_without_a_taxonomy_stops_the_run_one_with_its_own_is_used(tmp_path):
    model = MMN(MMNConfig(num_joints=44, num_classes=10)).eval()
    plain = tmp_path / "plain10.pt"
    torch.save(model.state_dict(), plain)
    res = _run(SHORT, "--out", tmp_path / "a", "--weights", plain, timeout=120)
    assert res.returncode == 2 and "carries no class list" in res.stderr
    from core.layouts import MA52_44
    names = [f"lab code {i}" for i in range(10)]
    own = save_checkpoint(tmp_path / "own10.pt", model, taxonomy=Taxonomy.from_class_names(names, "lab"),
                          layout=MA52_44, modality="joint")
    res = _run(SHORT, "--out", tmp_path / "b", "--weights", own, "--device", "cpu")
    assert res.returncode == 0, res.stderr[-2000:]
    doc = _doc(tmp_path / "b", "0019_02_0078")
    assert doc["model"]["taxonomy"] == {"name": "lab", "num_classes": 10, "body_levels": None}
    assert all(r["name"] in names and "code" not in r and "body" not in r for w in doc["windows"] for r in w["top_k"])


@pytest.mark.parametrize("flag,value", [("--batch-size", "0"), ("--batch-size", "-1"), ("--top-k", "0"),
                                        ("--window", "0"), ("--stride", "-0.5"), ("--threshold", "1.5"),
                                        ("--window", "nan")])
def test_numeric_flags_are_checked_before_any_work(tmp_path, flag, value):
    res = _run(SHORT, "--out", tmp_path / "out", flag, value, timeout=60)
    assert res.returncode == 2 and flag in res.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag,value", [("--batch-size", "-1"), ("--top-k", "0")])
def test_classify_numeric_flags(tmp_path, golden_weights, flag, value):
    np.save(tmp_path / "clip.npy", np.zeros((10, 44, 2), np.float32))
    res = run_cli("mmn.classify", "--weights", golden_weights, tmp_path / "clip.npy", flag, value, timeout=120)
    assert res.returncode == 2 and flag in res.stderr


# ------------------------------------------------------------------ 10. the app bounds work, not only seconds


def _high_rate_video(path: Path, frames: int, fps: int, size=(64, 48)) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), i % 255, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_app_refuses_many_frames_in_few_seconds(tmp_path):
    from app.validate import Limits, UploadError, check_upload

    clip = _high_rate_video(tmp_path / "fast.mp4", 12_000, 1000)
    assert clip.stat().st_size < 2_000_000
    with pytest.raises(UploadError, match="more than the limit of 1800 frames"):
        check_upload(clip, Limits(50 << 20, 60.0), [tmp_path])
    big = _high_rate_video(tmp_path / "big.mp4", 3, 30, size=(4096, 2304))
    with pytest.raises(UploadError, match="larger than the limit"):
        check_upload(big, Limits(50 << 20, 60.0), [tmp_path])


# ------------------------------------------------------------------ 11-12. own outputs, leftovers, logs


@pytest.mark.slow
def test_output_folder_equal_to_the_input_folder(tmp_path):
    (tmp_path / "talk.mp4").write_bytes(SHORT.read_bytes())
    for _ in range(2):
        assert _run(tmp_path, "--out", tmp_path, "--export-clips").returncode == 0
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["talk.annotated.mp4", "talk.mp4"]
    assert (tmp_path / "summary.csv").read_text().splitlines()[1].startswith("talk,already done")


def test_a_failed_video_leaves_only_its_failure_record_and_no_ffmpeg_noise(tmp_path):
    nobody = _high_rate_video(tmp_path / "nobody.mp4", 30, 30, size=(320, 240))
    data = SHORT.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    out.mkdir()
    (out / "nobody.skeleton.h5").write_bytes(b"stale")                 # from an earlier run
    res = _run(nobody, tmp_path / "cut.mp4", "--out", out)
    assert res.returncode == 1
    assert sorted(p.name for p in out.glob("nobody.*")) == ["nobody.failed.json"]
    assert "no person detected" in (out / "failures.csv").read_text()
    noise = [line for line in res.stderr.splitlines() if line.lstrip().startswith("[") and " @ 0x" in line]
    assert noise == [], noise[:3]


def test_tiny_frames_audio_only_and_odd_names_each_get_their_own_row(tmp_path):
    """Found by trying: a 2×2-pixel video crashed the whole run in the pixel-motion pass."""
    import av

    inp = tmp_path / "in"
    inp.mkdir()
    _high_rate_video(inp / "tiny.mp4", 10, 30, size=(2, 2))
    with av.open(str(inp / "audio_only.mp4"), "w") as c:
        s = c.add_stream("aac", rate=44100)
        for _ in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 44100
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    (inp / "new\nline ü [x].mp4").write_bytes(SHORT.read_bytes())
    (inp / "folder.mp4").mkdir()
    os.mkfifo(inp / "fifo.mp4")
    res = _run(inp, "--out", tmp_path / "out")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    failures = (tmp_path / "out" / "failures.csv").read_text()
    assert "tiny.mp4,pose," in failures and "audio_only.mp4,probe," in failures
    assert _doc(tmp_path / "out", "new\nline ü [x]")["video"]["frame_count"] == 50
