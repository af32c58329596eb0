"""Edited interviews: shot cuts found in the pose pass, the subject followed across them, and
the windows that remain skipped counted where a user sees them (issue 20, item 8)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import cv2
import jsonschema
import numpy as np
import pytest

from pipelines.formats.labels_doc import cuts_section
from pipelines.formats.tables import SUMMARY_HEADER, RunTables
from pose.region_motion import RegionMotionEnergy
from pose.shot_cuts import CutConfig, cut_frames_of, cuts_record, detect_cuts
from pose.subject import SubjectTracker, select_subject
from tests.cli import run_cli
from tests.data import LABELS_SCHEMA, VIDEOS_DIR

W, H = 1080, 1296
FPS = 30
SHOT = 120  # frames per shot: each clip played forwards and backwards (no cut inside a shot)
# three MA-52 clips of three different people (one person in frame at every moment), each as
# filmed by another camera: (clip, scale, x shift, y shift) of the affine re-framing
SHOTS = (("0030_01_0002.mp4", 1.0, 0, 0),      # the main camera: a man in a blue shirt, centre left
         ("0019_02_0078.mp4", 0.55, 607, 150),  # a wide camera from the side: a man in a white shirt, right
         ("0010_02_0101.mp4", 0.7, -194, 250))  # a third camera: a young man in black, left
CUTS = [SHOT, 2 * SHOT]


# --------------------------------------------------------------------------- the cut detector


def _steady_signal(n: int, seed: int = 0) -> np.ndarray:
    """A within-shot frame difference: a seated person moving, 0.5-3 grey levels per pixel, with
    a burst of fast movement (a fidget) that is no cut."""
    rng = np.random.default_rng(seed)
    d = 1.2 + 0.4 * np.sin(np.arange(n) / 7.0) + rng.gamma(2.0, 0.2, n)
    d[190:235] += 4.0  # 1.5 s of large movement: a plateau, not a spike
    d[0] = np.nan       # no frame before the first
    return d


def test_detector_finds_spikes_far_above_the_local_median_and_nothing_else():
    d = _steady_signal(400)
    assert detect_cuts(d) == []
    cut = d.copy()
    cut[[90, 300]] = [35.0, 22.0]       # hard cuts: most pixels change at once
    cut[301] = 9.0                        # the encoder's second frame after a cut: one cut, not two
    assert detect_cuts(cut) == [90, 300]
    # small spikes (< min_difference) and a spike inside a fast movement (< ratio x median) are not cuts
    weak = d.copy()
    weak[120] = 6.0
    weak[212] = 14.0
    assert detect_cuts(weak) == []
    assert detect_cuts(weak, CutConfig(min_difference=5.0)) == [120]
    # NaN (frames not decoded) and short inputs are fine
    assert detect_cuts(np.full(10, np.nan)) == [] and detect_cuts(np.array([np.nan])) == []


def test_cuts_record_and_its_readers():
    d = _steady_signal(200)
    d[150] = 40.0
    ts = np.arange(200) / 25.0
    rec = cuts_record(d, ts)
    assert rec["frames"] == [150] and rec["times_s"] == [6.0] and rec["difference"] == [40.0]
    assert rec["local_median"][0] < 3.0 and json.loads(json.dumps(rec)) == rec
    assert cut_frames_of({"shot_cuts": rec}) == [150]
    assert cut_frames_of({}) is None and cut_frames_of({"shot_cuts": None}) is None
    assert cuts_section([150], 25.0) == [{"frame": 150, "time_s": 6.0}] and cuts_section(None, 25.0) is None
    with pytest.raises(ValueError, match="ratio"):
        CutConfig(ratio=1.0)


def test_frame_difference_is_measured_with_region_motion():
    """The whole frame's mean difference comes from the integral image region motion makes."""
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (64, 80, 3), np.uint8)]
    frames.append(frames[0].copy())
    frames.append(np.clip(frames[0].astype(int) + 8, 0, 255).astype(np.uint8))  # brighter by 8
    frames.append(rng.integers(0, 255, (64, 80, 3), np.uint8))                  # another picture
    mea = RegionMotionEnergy(scale=1)
    kp = np.full((44, 2), 20.0)
    for f in frames:
        mea.update(f, kp)
    d = mea.frame_difference()
    assert d.shape == (4,) and np.isnan(d[0]) and d[1] == 0.0
    assert 7.0 <= d[2] <= 8.0 and d[3] > 40.0
    assert detect_cuts(np.r_[d, np.zeros(20)], CutConfig(window=3)) == [3]


# --------------------------------------------------------------------------- the subject across cuts


def _box(cx: float, cy: float, w: float, h: float, t: int = 0) -> np.ndarray:
    j = (t % 3) - 1  # the box jitters by a pixel, as a detector's does
    return np.array([cx - w / 2 + j, cy - h / 2, cx + w / 2 + j, cy + h / 2], np.float32)


def _three_shots(passer_by: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Boxes of an edited interview: shot 0 (frames 0-99) the subject centre left, shot 1
    (100-199) small on the right (another camera), shot 2 (200-299) large on the left; with
    ``passer_by`` someone else walks across shot 1 (frames 130-159) beside the subject."""
    boxes, scores = [], []
    for t in range(300):
        if t < 100:
            people = [_box(450, 650, 300, 900, t)]
        elif t < 200:
            people = [_box(900, 500, 170, 500, t)]
            if passer_by and 130 <= t < 160:
                people.append(_box(20 * (t - 130), 700, 150, 600))
        else:
            people = [_box(250, 700, 230, 700, t)]
        boxes.append(np.stack(people))
        scores.append(np.full(len(people), 0.9))
    return boxes, scores


def test_tracks_that_follow_a_cut_continue_the_subject_but_a_passer_by_does_not():
    boxes, scores = _three_shots(passer_by=True)
    pick, meta = select_subject(boxes, scores, W, H)  # cuts unknown: one shot's track only
    assert sorted(pick) == list(range(100))
    pick, meta = select_subject(boxes, scores, W, H, cuts=[100, 200])
    assert sorted(pick) == list(range(300))
    for t, p in pick.items():  # never the passer-by
        assert boxes[t][p][2] - boxes[t][p][0] != 150
    assert meta["max_people_in_frame"] == 2 and len(meta["joined_at_cuts"]) == 2
    # the same with a multi-person estimator: two people were seen at once, so not "every track"
    pick, meta = select_subject(boxes, scores, W, H, cuts=[100, 200], multi_person=True)
    assert sorted(pick) == list(range(300)) and meta["rule"] == "best track, joined"


def test_a_stranger_after_a_cut_is_not_the_subject_while_the_subject_is_in_view():
    """After the cut the subject and a stranger are both in view: the stranger overlaps the
    subject in time, so only one of them continues it (the larger, more central one)."""
    boxes, scores = [], []
    for t in range(200):
        if t < 100:
            people = [_box(540, 650, 300, 900, t)]
        else:
            people = [_box(700, 650, 320, 950, t), _box(100, 600, 120, 400, t)]
        boxes.append(np.stack(people))
        scores.append(np.full(len(people), 0.9))
    pick, meta = select_subject(boxes, scores, W, H, cuts=[100])
    assert sorted(pick) == list(range(200))
    assert all(boxes[t][p][0] > 300 for t, p in pick.items())


def test_a_track_that_does_not_follow_a_cut_is_not_joined():
    """MediaPipe-like (one person a frame): it jumps to someone elsewhere for frames 40-59,
    far from any cut; the subject is lost there, the jump is not taken for the subject."""
    boxes = [np.stack([_box(80, 500, 150, 600) if 40 <= t < 60 else _box(540, 650, 300, 900, t)])
             for t in range(200)]
    pick, meta = select_subject(boxes, [np.ones(1)] * 200, W, H, cuts=[150])
    assert sorted(pick) == [t for t in range(200) if not 40 <= t < 60]


def test_a_track_across_a_cut_is_split_there():
    """A person after the cut close enough to be linked to the one before it is still split at
    the cut; with a multi-person estimator that never saw two people at once every track is
    the subject."""
    boxes, scores = _three_shots(passer_by=False)
    tracker = SubjectTracker(W, H, multi_person=True)
    for t, (b, s) in enumerate(zip(boxes, scores)):
        tracker.update(t, b, s)
    pick, meta = tracker.choose([100, 200])
    assert sorted(pick) == list(range(300)) and meta["rule"].startswith("every track")
    assert meta["num_tracks"] == 3 and meta["shot_cuts"] == 2

    same_place = [np.stack([_box(540, 650, 300, 900, t)]) for t in range(100)]
    tracker = SubjectTracker(W, H)
    for t, b in enumerate(same_place):
        tracker.update(t, b, np.ones(1))
    _, meta = tracker.choose()
    assert meta["num_tracks"] == 1
    pick, meta = tracker.choose([50])
    assert meta["num_tracks"] == 2 and sorted(pick) == list(range(100))


def test_skipped_windows_are_counted_in_the_summary():
    def window(i: int, **kw) -> dict:
        return {"index": i, "start_frame": 15 * i, "end_frame": 15 * i + 60, "start_s": i / 2, "end_s": i / 2 + 2,
                **kw}

    absent = "subject absent in more than half of the window"
    doc = {"segments": [], "video": {"file_name": "a.mp4", "frame_count": 90, "duration_s": 3.0, "fps": 30.0},
           "windows": [window(0, top_k=[{"index": 1, "name": "x", "prob": 0.9}]), window(1, skipped=absent),
                       window(2, skipped=absent)],
           "heatmap": {"source": "motion_energy", "hottest_joints": ["nose"]},
           "motion": {"hottest_part": {"heat": "face", "pixels": None}}}
    tables = RunTables()
    tables.add_done("a", "done", doc)
    tables.add_done("b", "done", {**doc, "windows": doc["windows"][:1]})
    tables.add_failed("c", Path("c.mp4"), "decode", "broken")
    assert tables.skipped_windows() == 2
    col = SUMMARY_HEADER.index("skipped_windows")
    assert [row[col] for row in tables.summary] == [2, 0, ""]


# --------------------------------------------------------------------------- a real edited interview


def _clip_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def _ping_pong(frames: list[np.ndarray], n: int) -> list[np.ndarray]:
    """``n`` frames of the clip played forwards, backwards, forwards…: a longer shot, no cut."""
    out: list[np.ndarray] = []
    forwards = True
    while len(out) < n:
        seq = frames if forwards else frames[::-1]
        out.extend(seq[1:] if out else seq)
        forwards = not forwards
    return out[:n]


def make_three_shot_video(path: Path) -> Path:
    """Three real MA-52 clips of three people, each re-framed as by another camera (scaled and
    shifted, the edges continued) and played for :data:`SHOT` frames, joined by hard cuts at
    :data:`CUTS`; H.264 at 30 fps, 1080x1296 like the clips."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "20"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for clip, scale, dx, dy in SHOTS:
            frames = _clip_frames(VIDEOS_DIR / clip)
            assert frames[0].shape[:2] == (H, W), f"{clip}: expected {W}x{H} frames"
            m = np.array([[scale, 0, dx], [0, scale, dy]], np.float64)
            for f in _ping_pong(frames, SHOT):
                f = cv2.warpAffine(f, m, (W, H), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")))
        out.mux(stream.encode())
    return path


@pytest.mark.slow
def test_an_edited_interview_keeps_its_labels_and_lists_its_cuts(tmp_path, golden_weights):
    """Before the fix only the first camera's person was the subject: 7 of 21 windows labelled."""
    videos = tmp_path / "in"
    videos.mkdir()
    make_three_shot_video(videos / "interview.mp4")
    out = tmp_path / "out"
    res = run_cli("pipelines.video_to_labels", videos, "--out", out, "--weights", golden_weights, "--device", "cpu",
                  timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads((out / "interview.labels.json").read_text())
    jsonschema.validate(doc, json.loads(LABELS_SCHEMA.read_text()))
    windows = doc["windows"]
    labelled = [w for w in windows if "top_k" in w]
    skipped = [w for w in windows if "skipped" in w]
    assert len(labelled) + len(skipped) == len(windows)
    assert len(labelled) >= 0.9 * len(windows), f"{len(labelled)} of {len(windows)} windows labelled"
    assert doc["pose"]["subject"]["max_people_in_frame"] == 1

    # the cuts, found within 2 frames of the joins, in the labels JSON and the skeleton file
    found = [c["frame"] for c in doc["cuts"]]
    assert len(found) == len(CUTS) and all(abs(f - c) <= 2 for f, c in zip(found, CUTS)), found
    assert [c["time_s"] for c in doc["cuts"]] == [round(f / FPS, 4) for f in found]
    from pose.skeleton_file import read_skeleton
    skel = read_skeleton(out / "interview.skeleton.h5")
    assert cut_frames_of(skel.meta) == found
    present = np.isfinite(skel.keypoints).all(-1).any(-1)
    for k in range(3):  # every shot's person is the subject
        assert present[k * SHOT:(k + 1) * SHOT].mean() >= 0.9, f"shot {k}"

    # what remains skipped is counted in the summary and on the CLI's last line
    with open(out / "summary.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert int(row["skipped_windows"]) == len(skipped) and int(row["labelled_windows"]) == len(labelled)
    assert res.stderr.strip().splitlines()[-1].startswith(
        f"1 of 1 video(s) labelled into {out}; {len(skipped)} window(s) skipped, subject absent")
