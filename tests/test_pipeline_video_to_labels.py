"""pipelines.video_to_labels end to end on the real MA-52 clips, plus broken files."""
import csv
import json
import shutil
from pathlib import Path

import av
import cv2
import jsonschema
import numpy as np
import pytest

from core.layouts import MA52_44
from pipelines.discovery import VideoJob, discover, select_shard
from pipelines.drawing.figures import grouped_joint_order, read_row_labels
from pose.skeleton_file import read_skeleton
from tests.cli import run_cli
from tests.data import LABELS_SCHEMA, VIDEOS_DIR

CLIPS = sorted(p.name for p in VIDEOS_DIR.glob("*.mp4"))
CLI = "pipelines.video_to_labels"
SCHEMA = json.loads(LABELS_SCHEMA.read_text())


def _check_pictures(out: Path, stem: str) -> np.ndarray:
    """KEY.heatmap.png has one labelled row per joint, grouped by body part, and KEY.timeline.png
    is a picture; returns the heatmap as an RGB array."""
    png = (out / f"{stem}.heatmap.png").read_bytes()
    order, _ = grouped_joint_order(MA52_44)
    assert read_row_labels(png) == [MA52_44.joint_names[j] for j in order]
    timeline = cv2.imread(str(out / f"{stem}.timeline.png"))
    assert timeline is not None and timeline.shape[1] >= 1000
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def inputs(labelled) -> Path:
    return labelled.inputs


@pytest.fixture(scope="module")
def first_run(labelled):
    """The session's labelled folder (conftest): the clips, broken files and a readme.txt,
    with the golden checkpoint and ``--export-clips``."""
    return labelled.result, labelled.out


@pytest.mark.slow  # the session's labelled folder
def test_exit_status_and_failures(first_run):
    res, out = first_run
    assert res.returncode == 1, res.stderr[-3000:]
    failures = {Path(r["file"]).name: r for r in _csv(out / "failures.csv")}
    assert set(failures) == {"cut_short.mp4", "empty.mp4", "notes.mp4"}
    assert "empty" in failures["empty.mp4"]["reason"]
    assert "truncated" in failures["cut_short.mp4"]["reason"] and "cut_short.mp4" in failures["cut_short.mp4"]["reason"]
    assert "cannot be opened as a video" in failures["notes.mp4"]["reason"]
    # nothing partial is left behind for the failed videos: only the failure record
    assert [p.name for p in out.glob("cut_short.*")] == ["cut_short.failed.json"]
    assert not list(out.glob(".*.part"))


@pytest.mark.slow  # the session's labelled folder
def test_three_videos_labelled_with_valid_windows(first_run):
    _, out = first_run
    summary = {r["video"]: r for r in _csv(out / "summary.csv")}
    assert [summary[Path(c).stem]["status"] for c in CLIPS] == ["done"] * 3
    rows = _csv(out / "windows.csv")
    for name in CLIPS:
        doc = json.loads((out / f"{Path(name).stem}.labels.json").read_text())
        jsonschema.validate(doc, SCHEMA)
        n = doc["video"]["frame_count"]
        covered = np.zeros(n, bool)
        for w in doc["windows"]:
            covered[w["start_frame"]:w["end_frame"]] = True
            probs = [r["prob"] for r in w["top_k"]]
            assert len(probs) == 5 and probs == sorted(probs, reverse=True)
            assert sum(w["body"]["level_probs"]) == pytest.approx(1, abs=1e-4)  # all 52 probabilities
            assert len(w["joint_heat"]) == 44
        assert covered.all()
        assert doc["model"]["streams"][0]["sha256"] and doc["labels_absent_reason"] is None
        assert doc["heatmap"]["source"] == "msm_gamma" and len(doc["heatmap"]["per_joint_mean"]) == 44
        assert sum(r["video"] == Path(name).stem for r in rows) == len(doc["windows"])
        skel = read_skeleton(out / f"{Path(name).stem}.skeleton.h5")
        assert skel.keypoints.shape == (n, 44, 2)
        assert doc["outputs"]["heatmap_png"] == f"{Path(name).stem}.heatmap.png"
        _check_pictures(out, Path(name).stem)


@pytest.mark.slow  # the session's labelled folder
def test_annotated_clip_is_h264_with_source_geometry_and_overlay_on_skeleton(first_run):
    _, out = first_run
    name = "0019_02_0078"
    src = cv2.VideoCapture(str(VIDEOS_DIR / f"{name}.mp4"))
    src_n, src_fps = int(src.get(cv2.CAP_PROP_FRAME_COUNT)), src.get(cv2.CAP_PROP_FPS)
    src_frames = []
    while True:
        ok, f = src.read()
        if not ok:
            break
        src_frames.append(f)
    with av.open(str(out / f"{name}.annotated.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert abs(float(s.average_rate) - src_fps) < 1e-3
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == len(src_frames) == src_n
    assert frames[0].shape == src_frames[0].shape
    skel = read_skeleton(out / f"{name}.skeleton.h5")
    i = len(frames) // 2
    diff = np.abs(frames[i].astype(int) - src_frames[i].astype(int)).sum(axis=2)
    pts = skel.keypoints[i].round().astype(int)
    on_joints = np.mean([diff[y, x] for x, y in pts])
    h, w = diff.shape
    background = diff[h // 3:h // 3 + 40, w - 60:w - 20].mean()  # wall to the subject's left
    assert on_joints > 60, on_joints
    assert background < 15, background


def _copy_of(first_run, tmp_path: Path) -> Path:
    """The first run's outputs in a folder of this test's own (the module's run stays as it was)."""
    return Path(shutil.copytree(first_run[1], tmp_path / "out"))


@pytest.mark.slow  # the session's labelled folder, and more whole-folder runs
def test_second_run_does_no_work_and_overwrite_redoes(first_run, inputs, golden_weights, tmp_path):
    out = _copy_of(first_run, tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.labels.json")}
    res = run_cli(CLI, inputs, "--out", out, "--weights", golden_weights, "--export-clips")
    assert res.returncode == 1  # the three broken files still fail
    assert "pose " not in res.stderr and "render " not in res.stderr  # no per-frame work
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.labels.json")} == stamps
    assert [r["status"] for r in _csv(out / "summary.csv") if r["status"] != "failed"] == ["already done"] * 3
    assert len(_csv(out / "failures.csv")) == 3 and res.stderr.count("unchanged since it last failed") == 3
    res = run_cli(CLI, inputs, "--out", out, "--weights", golden_weights, "--export-clips", "--overwrite")
    assert res.returncode == 1
    assert all(p.stat().st_mtime_ns > stamps[p.name] for p in out.glob("*.labels.json"))


@pytest.mark.slow  # the session's labelled folder, and more whole-folder runs
def test_shards_cover_the_input_exactly_once(first_run, inputs, golden_weights, tmp_path):
    out = _copy_of(first_run, tmp_path)
    seen = []
    for k in range(2):
        res = run_cli(CLI, inputs, "--out", out, "--weights", golden_weights, "--export-clips", "--shard", f"{k}/2")
        assert res.returncode in (0, 1)
        seen += [r["video"] for r in _csv(out / f"summary.shard-{k}-of-2.csv")]
    assert sorted(seen) == sorted([Path(c).stem for c in CLIPS] + ["cut_short", "empty", "notes"])
    jobs = [VideoJob(Path(f"{i}.mp4"), f"v{i:03d}") for i in range(101)]
    parts = [select_shard(list(reversed(jobs)), k, 3) for k in range(3)]
    assert sorted(j.key for p in parts for j in p) == sorted(j.key for j in jobs)
    assert run_cli(CLI, inputs, "--out", out, "--shard", "2/2").returncode == 2


@pytest.mark.slow  # the session's labelled folder
def test_without_weights_skeletons_clips_and_heat_but_no_labels(first_run, tmp_path):
    _, labelled = first_run
    name = "0030_01_0002"
    shutil.copy(labelled / f"{name}.skeleton.h5", tmp_path / f"{name}.skeleton.h5")  # resume: reuse the pose
    res = run_cli(CLI, VIDEOS_DIR / f"{name}.mp4", "--out", tmp_path, "--export-clips")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stderr.count("no MMN checkpoint given") == 1
    doc = json.loads((tmp_path / f"{name}.labels.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["model"] is None and "checkpoint" in doc["labels_absent_reason"]
    assert doc["segments"] == [] and all("top_k" not in w for w in doc["windows"])
    assert doc["heatmap"]["source"] == "motion_energy" and max(doc["heatmap"]["per_joint_mean"]) > 0
    assert (tmp_path / f"{name}.annotated.mp4").stat().st_size > 10_000
    heatmap = _check_pictures(tmp_path, name)
    assert len(np.unique(heatmap.reshape(-1, 3), axis=0)) > 100  # a real heat picture, not a blank grid


def test_discover_keys_and_usage_errors(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("x.mp4", "a/x.mp4", "a/b/y.MOV", "a/notes.txt"):
        (tmp_path / p).write_bytes(b"0")
    assert [j.key for j in discover([tmp_path], recursive=False)] == ["x"]
    assert sorted(j.key for j in discover([tmp_path], recursive=True)) == ["a__b__y", "a__x", "x"]
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "missing"], recursive=False)
    assert run_cli(CLI, tmp_path / "missing.mp4", "--out", tmp_path / "o").returncode == 2
