"""The HDF5 skeleton file: exact round trip, validation with clear messages, .npy export."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pose.keypoint_tables import ESTIMATED, FILLED, MISSING
from pose.skeleton_file import SCHEMA_VERSION, Skeleton, SkeletonFileError, export_npy, read_skeleton, write_skeleton
from tests.data import ROOT


def _skeleton(n: int = 12) -> Skeleton:
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 1000, (n, 44, 2)).astype(np.float32)
    sc = rng.uniform(0, 1, (n, 44)).astype(np.float32)
    fl = np.zeros((n, 44), np.uint8)
    fl[:, 17] = ESTIMATED
    if n >= 6:
        fl[3, 5] = FILLED | ESTIMATED
        fl[4:6, 40] = MISSING
        kp[4:6, 40] = np.nan
        sc[4:6, 40] = 0
    ts = np.arange(n) / 29.97
    meta = {"video": {"file_name": "a.mp4", "fps": 29.97, "width": 1080, "height": 1296},
            "backend": {"name": "test", "version": "0"}, "postprocess": {"gap": {"max_gap_s": 0.25}},
            "subject": {"policy": "x", "subject_tracks": [0, 3]}, "float": 0.1 + 0.2}
    return Skeleton(kp, sc, ts, fl, meta)


def test_round_trip_is_exact(tmp_path):
    s = _skeleton()
    back = read_skeleton(write_skeleton(s, tmp_path / "s.h5"))
    for name in ("keypoints", "scores", "timestamps", "flags"):
        a, b = getattr(s, name), getattr(back, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b, equal_nan=True)
    assert back.meta == s.meta and back.layout == s.layout
    assert list(tmp_path.iterdir()) == [tmp_path / "s.h5"]  # no temporary file left


def test_empty_skeleton_round_trips(tmp_path):
    s = _skeleton(0)
    back = read_skeleton(write_skeleton(s, tmp_path / "e.h5"))
    assert back.keypoints.shape == (0, 44, 2)


def test_write_is_atomic_and_refuses_invalid_data(tmp_path):
    target = tmp_path / "s.h5"
    write_skeleton(_skeleton(), target)
    before = target.read_bytes()
    bad = _skeleton()
    bad.keypoints[0, 0] = np.nan  # NaN without the MISSING flag
    with pytest.raises(SkeletonFileError, match="MISSING"):
        write_skeleton(bad, target)
    assert target.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def _rewrite(path: Path, fn) -> None:
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.attrs.__setitem__("schema_version", SCHEMA_VERSION + 1), "unsupported skeleton schema version 2"),
    (lambda f: f.attrs.__setitem__("schema", "something-else"), "not a skeleton file"),
    (lambda f: f.attrs.__setitem__("layout", "coco_17"), "unknown layout 'coco_17'"),
    (lambda f: (f.__delitem__("scores"), f.create_dataset("scores", data=np.zeros((12, 43), np.float32))),
     r"scores must have shape \(12, 44\)"),
    (lambda f: (f.__delitem__("keypoints"), f.create_dataset("keypoints", data=np.zeros((12, 44, 3), np.float32))),
     r"keypoints must have shape \(N, 44, 2\)"),
    (lambda f: (f.__delitem__("timestamps"), f.create_dataset("timestamps", data=np.zeros(11))),
     r"timestamps must have shape \(12,\)"),
    (lambda f: f.__delitem__("flags"), "dataset 'flags' is missing"),
    (lambda f: (f.__delitem__("flags"), f.create_dataset("flags", data=np.full((12, 44), 64, np.uint8))),
     "unknown bits"),
    (lambda f: (f.__delitem__("scores"), f.create_dataset("scores", data=np.zeros((12, 44)))),
     "scores must be float32"),
    (lambda f: f.attrs.__setitem__("num_frames", 3), "num_frames attribute 3"),
    (lambda f: f.attrs.__setitem__("meta", "{not json"), "meta attribute is not valid JSON"),
    (lambda f: f.attrs.__setitem__("joint_names", json.dumps(["a"] * 44)), "joint names do not match"),
])
def test_bad_files_fail_with_a_clear_message(tmp_path, edit, message):
    path = write_skeleton(_skeleton(), tmp_path / "s.h5")
    _rewrite(path, edit)
    with pytest.raises(SkeletonFileError, match=message) as e:
        read_skeleton(path)
    assert str(path) in str(e.value)


def test_not_hdf5_and_missing_files(tmp_path):
    txt = tmp_path / "x.h5"
    txt.write_text("hello")
    with pytest.raises(SkeletonFileError, match="not a readable HDF5 file"):
        read_skeleton(txt)
    with pytest.raises(SkeletonFileError, match="file not found"):
        read_skeleton(tmp_path / "nope.h5")


def test_decreasing_timestamps_are_rejected():
    s = _skeleton()
    s.timestamps[5] = 0.0
    with pytest.raises(SkeletonFileError, match="non-decreasing"):
        s.validate()


def test_export_npy_fills_missing_and_optionally_adds_scores(tmp_path):
    s = _skeleton()
    a = np.load(export_npy(s, tmp_path / "k.npy"))
    assert a.shape == (12, 44, 2) and a.dtype == np.float32
    assert (a[4:6, 40] == 0).all() and np.array_equal(a[0], s.keypoints[0])
    b = np.load(export_npy(s, tmp_path / "ks.npy", with_scores=True, fill=-1))
    assert b.shape == (12, 44, 3) and (b[4, 40] == [-1, -1, 0]).all()
    np.testing.assert_array_equal(b[..., 2], s.scores)


def test_importing_pose_stays_light():
    code = ("import sys, pose, core.layouts, pose.skeleton_file, pose.video, "
            "pose.keypoint_tables, pose.postprocess, pose.subject, pose.extract, pose.estimators;"
            "heavy = [m for m in ('torch', 'mediapipe', 'mmpose', 'mmcv', 'tensorflow') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
