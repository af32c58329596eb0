"""The default (MediaPipe) pipeline on the three real MA-52 clips bundled in examples/videos.

MediaPipe runs once per clip (module-scoped fixture, about 4 s a clip) with smoothing off; the
default smoothing is then applied to the same arrays (it is the last post-processing step),
and one clip is also extracted end to end with the defaults to check that this is the same.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mediapipe")

from core.layouts import MA52_44  # noqa: E402
from pose.extract import extract_skeleton  # noqa: E402
from pose.keypoint_tables import ESTIMATED, FILLED, MISSING  # noqa: E402
from pose.measure import amplitude, jitter, lag, part_motion_energy  # noqa: E402
from pose.postprocess import SmoothingConfig, smooth  # noqa: E402
from pose.skeleton_file import Skeleton, read_skeleton, write_skeleton  # noqa: E402
from pose.video import iter_frames, probe_video  # noqa: E402
from tests.cli import run_cli  # noqa: E402
from tests.data import VIDEOS_DIR as VIDEOS  # noqa: E402

NODDING, TURNING, SHAKING = "0019_02_0078.mp4", "0010_02_0101.mp4", "0030_01_0002.mp4"
CLIPS = (SHAKING, NODDING, TURNING)

HEAD = tuple(sorted(dict(MA52_44.parts)["face"] + (17,)))  # face joints and the head top
PARTS = {**{p: js for p, js in MA52_44.parts if p != "face"}, "head": HEAD}
PARTS["torso"] = tuple(j for j in PARTS["torso"] if j != 17)


def _smoothed(s: Skeleton, config: SmoothingConfig | None = None) -> np.ndarray:
    return smooth(s.keypoints, s.scores, s.flags, s.timestamps, config or SmoothingConfig(),
                  s.meta["video"]["fps"])


@pytest.fixture(scope="module")
def raw() -> dict[str, Skeleton]:
    """Each clip through MediaPipe, gap filling, no smoothing."""
    return {c: extract_skeleton(VIDEOS / c, smoothing=None) for c in CLIPS}


@pytest.fixture(scope="module")
def default(raw) -> dict[str, Skeleton]:
    """The same with the default smoothing applied (what extract_skeleton returns)."""
    out = {}
    for c, s in raw.items():
        out[c] = Skeleton(_smoothed(s), s.scores, s.timestamps, s.flags, s.meta, s.layout)
    return out


def test_default_extraction_equals_raw_plus_default_smoothing(default):
    s = extract_skeleton(VIDEOS / NODDING)
    np.testing.assert_allclose(s.keypoints, default[NODDING].keypoints, atol=1e-4)
    assert s.meta["postprocess"]["smoothing"]["method"] == "savgol"
    assert s.meta["postprocess"]["smoothing"]["window_frames"] == 9


@pytest.mark.parametrize("clip", CLIPS)
def test_one_skeleton_per_decoded_frame(raw, clip):
    s = raw[clip]
    decoded = sum(1 for _ in iter_frames(VIDEOS / clip, decode=False))
    info = probe_video(VIDEOS / clip)
    assert s.keypoints.shape == (decoded, 44, 2) and s.scores.shape == (decoded, 44)
    assert decoded == info.frame_count and 47 <= decoded <= 75
    assert s.keypoints.dtype == np.float32
    np.testing.assert_allclose(s.timestamps, np.arange(decoded) / info.fps, atol=1e-3)
    assert s.meta["video"]["decoded_frames"] == decoded
    assert s.meta["subject"]["frames_with_subject"] == decoded


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("which", ["raw", "default"])
def test_all_joints_finite_and_inside_the_frame(raw, default, clip, which):
    s = (raw if which == "raw" else default)[clip]
    w, h = s.meta["video"]["width"], s.meta["video"]["height"]
    kp = s.keypoints
    assert np.isfinite(kp).all()
    assert not (s.flags & MISSING).any()
    assert (kp[..., 0] >= 0).all() and (kp[..., 0] < w).all()
    assert (kp[..., 1] >= 0).all() and (kp[..., 1] < h).all()
    assert ((s.scores > 0) & (s.scores <= 1)).all()


@pytest.mark.parametrize("clip", CLIPS)
def test_vertical_order_in_every_frame(default, clip):
    y = default[clip].keypoints[..., 1]  # image y grows downwards
    assert (y[:, 17] < y[:, 0]).all(), "head top above nose"
    assert (y[:, 0] < y[:, 18]).all(), "nose above neck"
    assert (y[:, 18] < y[:, 19]).all(), "neck above hip centre"
    assert (y[:, 13] < y[:, 15]).all() and (y[:, 14] < y[:, 16]).all(), "knees above ankles"


@pytest.mark.parametrize("clip", CLIPS)
def test_sides_are_the_subjects_own(default, clip):
    """The subjects face the camera: their left shoulder and hip are on the image's right."""
    x = default[clip].keypoints[..., 0]
    assert (x[:, 5] > x[:, 6]).all() and (x[:, 11] > x[:, 12]).all()
    # each hand root sits on its own wrist (the hand model's wrist agrees with the pose wrist)
    kp = default[clip].keypoints
    assert np.linalg.norm(kp[:, 32] - kp[:, 9], axis=-1).max() < 40
    assert np.linalg.norm(kp[:, 38] - kp[:, 10], axis=-1).max() < 40


def test_nodding_moves_the_head_most_vertically(default):
    kp = default[NODDING].keypoints
    energy = {p: part_motion_energy(kp, js, vertical_only=True) for p, js in PARTS.items()}
    others = max(v for p, v in energy.items() if p != "head")
    assert energy["head"] > 1.2 * others, energy


def test_turning_head_moves_the_face_more_than_the_legs(default):
    kp = default[TURNING].keypoints
    face = part_motion_energy(kp, dict(MA52_44.parts)["face"], vertical_only=False)
    legs = max(part_motion_energy(kp, PARTS[p], vertical_only=False) for p in ("left leg", "right leg"))
    assert face > 3 * legs, (face, legs)


def test_shaking_body_moves_the_shoulders_more_than_the_ankles(default):
    kp = default[SHAKING].keypoints
    shoulders = part_motion_energy(kp, (5, 6), vertical_only=False)
    ankles = part_motion_energy(kp, (15, 16), vertical_only=False)
    assert shoulders > 1.2 * ankles, (shoulders, ankles)


def test_smoothing_halves_still_joint_jitter_and_keeps_the_nod():
    still = (15, 16, 24, 25)  # ankles and heels of the seated, nodding subject
    # the estimator's own jitter, every frame estimated (quality fast interpolates every second
    # frame, which already lowers it: docs/pose-speed.md)
    s = extract_skeleton(VIDEOS / NODDING, smoothing=None, estimator_options={"quality": "full"})
    r, d = s.keypoints, _smoothed(s)
    assert jitter(d, still) <= 0.5 * jitter(r, still)
    a_raw, a_smooth = amplitude(r[:, 0, 1]), amplitude(d[:, 0, 1])
    assert a_raw > 5  # there is a nod to keep (pixels)
    assert abs(a_smooth - a_raw) <= 0.2 * a_raw
    assert abs(lag(r[:, 0, 1], d[:, 0, 1])) <= 0.5  # Savitzky–Golay: no lag


def test_one_euro_lags_more_than_savgol(raw):
    r = raw[NODDING].keypoints
    euro = _smoothed(raw[NODDING], SmoothingConfig(method="one_euro"))
    sg = _smoothed(raw[NODDING])
    assert lag(r[:, 0, 1], euro[:, 0, 1]) > lag(r[:, 0, 1], sg[:, 0, 1])
    assert jitter(euro, (15, 16, 24, 25)) < jitter(r, (15, 16, 24, 25))


def test_face_and_hand_fallbacks_are_flagged(raw):
    face6 = list(range(26, 32))
    # the face mesh fails on the pixelated faces of these two clips: pose-landmark estimates
    for clip in (TURNING, SHAKING):
        fl, sc = raw[clip].flags, raw[clip].scores
        assert (fl[:, face6] & ESTIMATED).all()
        assert (sc[:, face6] <= 0.5).all()
    # ... and succeeds on the nodding clip: mesh points, not estimates, with higher scores
    assert not (raw[NODDING].flags[:, face6] & ESTIMATED).any()
    assert (raw[NODDING].scores[:, face6] > 0.5).all()
    # left hand never found by the hand model in the nodding clip: pose-landmark fallback
    hand_l, hand_r = list(range(32, 38)), list(range(38, 44))
    assert (raw[NODDING].flags[:, hand_l] & ESTIMATED).all()
    assert (raw[NODDING].scores[:, hand_l[1:]] <= 0.5).all()
    assert not (raw[NODDING].flags[:, hand_r] & ESTIMATED).any()
    # head top, neck, hip centre and small toes are always estimates for MediaPipe
    for s in raw.values():
        assert (s.flags[:, [17, 18, 19, 22, 23]] & ESTIMATED).all()
        assert not (s.flags & FILLED).any()  # pose found in every frame: nothing to fill


def test_metadata_names_the_video_backend_subject_and_parameters(raw):
    m = raw[TURNING].meta
    info = probe_video(VIDEOS / TURNING)
    assert m["video"]["file_name"] == TURNING
    assert m["video"]["sha256_first_mib"] == info.sha256_first_mib
    assert (m["video"]["width"], m["video"]["height"], m["video"]["fps"]) == (1080, 1296, 30.0)
    assert m["video"]["rotation"] == 0
    assert m["backend"]["name"] == "mediapipe" and "0.10.21" in m["backend"]["version"]
    assert m["backend"]["options"]["model_complexity"] == 1
    assert m["layout"] == "ma52_44"
    assert "one subject" in m["subject"]["policy"] and m["subject"]["num_tracks"] == 1
    assert m["postprocess"]["smoothing"] == {"method": "none"}
    assert m["postprocess"]["gap"]["max_gap_frames"] == 8


def test_real_skeleton_round_trips_through_hdf5(default, tmp_path):
    s = default[SHAKING]
    back = read_skeleton(write_skeleton(s, tmp_path / "clip.h5"))
    for name in ("keypoints", "scores", "timestamps", "flags"):
        a, b = getattr(s, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    assert back.meta == s.meta


def test_command_line_writes_h5_and_npy(tmp_path):
    out = run_cli("pose.extract", VIDEOS / TURNING, "-o", tmp_path, "--npy", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    s = read_skeleton(tmp_path / "0010_02_0101.skeleton.h5")
    arr = np.load(tmp_path / "0010_02_0101.npy")
    assert arr.shape == (47, 44, 2) and np.array_equal(arr, s.keypoints)
