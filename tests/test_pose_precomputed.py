"""Precomputed results (AlphaPose Halpe-136 JSON, pyskl pickles) through extract_skeleton."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from pose.estimators import create_estimator
from pose.extract import extract_skeleton
from pose.keypoint_tables import FILLED, MISSING
from tests.data import VIDEOS_DIR

CLIP = VIDEOS_DIR / "0010_02_0101.mp4"   # 47 frames
N = 47
HALPE_44 = [*range(26), 54, 59, 62, 71, 77, 83, 94, 98, 102, 106, 110, 114, 115, 119, 123, 127, 131, 135]

def _people(k: int, seed: int = 0):
    """Per frame: a large central subject and a small person at the left edge, each a fixed
    random point cloud (a stand-in body) that moves a few pixels from frame to frame."""
    rng = np.random.default_rng(seed)
    drift = rng.normal(0, 3, (N, 1, 2)).cumsum(0)
    subject = rng.uniform([420, 200], [680, 1200], (k, 2)) + drift + rng.normal(0, 1, (N, k, 2))
    other = rng.uniform([10, 300], [200, 900], (k, 2)) + drift + rng.normal(0, 1, (N, k, 2))
    return subject.astype(np.float32), other.astype(np.float32)


def _alphapose_json(path: Path, skip=()) -> np.ndarray:
    subject, other = _people(136)
    dets = []
    for t in range(N):
        if t in skip:
            continue
        people = [subject[t]] + ([other[t]] if 5 <= t < 25 else [])
        for p in people[::-1]:
            kps = np.concatenate([p, np.full((136, 1), 0.8, np.float32)], 1).ravel()
            dets.append({"image_id": f"{t}.jpg", "category_id": 1, "keypoints": kps.tolist(),
                         "score": 2.5, "idx": 0})
    path.write_text(json.dumps(dets))
    return subject


def test_alphapose_json_maps_halpe_and_follows_the_subject(tmp_path):
    missing_short, missing_long = {10, 11, 12}, set(range(30, 42))
    subject = _alphapose_json(tmp_path / "alphapose-results.json", skip=missing_short | missing_long)
    s = extract_skeleton(CLIP, "precomputed", smoothing=None,
                         estimator_options={"path": tmp_path / "alphapose-results.json"})
    assert s.keypoints.shape == (N, 44, 2)
    seen = [t for t in range(N) if t not in missing_short | missing_long]
    np.testing.assert_array_equal(s.keypoints[seen], subject[seen][:, HALPE_44])
    np.testing.assert_allclose(s.scores[seen], 0.8)
    assert (s.flags[seen] == 0).all()  # Halpe has every joint: nothing estimated
    assert (s.flags[sorted(missing_short)] == FILLED).all()
    assert (s.flags[sorted(missing_long)] == MISSING).all() and np.isnan(s.keypoints[sorted(missing_long)]).all()
    assert s.meta["backend"]["keypoint_format"] == "halpe_136"
    assert s.meta["subject"]["max_people_in_frame"] == 2 and s.meta["subject"]["frames_with_subject"] == len(seen)


def test_pyskl_pickle_samples_by_name_or_video_stem(tmp_path):
    subject, _ = _people(133, seed=1)
    score = np.full((1, N, 133), 0.7, np.float32)
    anns = [{"frame_dir": "other_clip", "keypoint": np.zeros((1, N, 133, 2), np.float32),
             "keypoint_score": score, "total_frames": N, "img_shape": (1296, 1080)},
            {"frame_dir": CLIP.stem, "keypoint": subject[None], "keypoint_score": score,
             "total_frames": N, "img_shape": (1296, 1080)}]
    pkl = tmp_path / "wb.pkl"
    pkl.write_bytes(pickle.dumps({"split": {}, "annotations": anns}))
    s = extract_skeleton(CLIP, "precomputed", smoothing=None, estimator_options={"path": pkl})
    assert s.meta["backend"]["keypoint_format"] == "coco_wholebody_133"
    np.testing.assert_array_equal(s.keypoints[:, 26], subject[:, 51])   # nose bridge (face 28)
    np.testing.assert_array_equal(s.keypoints[:, 43], subject[:, 132])  # right little tip
    np.testing.assert_allclose(s.keypoints[:, 18], (subject[:, 5] + subject[:, 6]) / 2, rtol=1e-6)
    # the all-zero sample means "nobody": every joint MISSING
    z = extract_skeleton(CLIP, "precomputed", smoothing=None,
                         estimator_options={"path": pkl, "sample": "other_clip"})
    assert (z.flags == MISSING).all()


def test_unsupported_results_fail_clearly(tmp_path, msr_pkl):
    with pytest.raises(ValueError, match="no keypoint table for 20 points"):
        create_estimator("precomputed", path=msr_pkl, sample=0)
    bad = tmp_path / "r.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="AlphaPose results"):
        create_estimator("precomputed", path=bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        create_estimator("precomputed", path=tmp_path / "none.json")
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(print))  # a global that is not data
    with pytest.raises(ValueError, match="refusing to load global"):
        create_estimator("precomputed", path=evil)


def test_progress_reporting_callable_and_tqdm(tmp_path):
    import io

    from tqdm import tqdm

    _alphapose_json(tmp_path / "r.json")
    calls = []
    extract_skeleton(CLIP, "precomputed", estimator_options={"path": tmp_path / "r.json"},
                     progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (1, N) and calls[-1] == (N, N) and len(calls) == N
    bar = tqdm(total=N, file=io.StringIO())
    extract_skeleton(CLIP, "precomputed", estimator_options={"path": tmp_path / "r.json"}, progress=bar)
    assert bar.n == N
