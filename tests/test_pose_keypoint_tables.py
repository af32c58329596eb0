"""The index tables from Halpe-136, COCO-WholeBody-133 and MediaPipe to the 44 MA-52 joints."""
from __future__ import annotations

import numpy as np
import pytest

from pose.keypoint_tables import (
    COCO_WB133,
    ESTIMATED,
    HALPE136,
    MA52_IDENTITY,
    MEDIAPIPE_HOLISTIC,
    MISSING,
    MP_FACE,
    MP_LHAND,
    MP_RHAND,
    TABLES,
    JointSource,
    table_for,
    table_for_count,
)

# From the shared reference (skeleton-layout.md), written out independently of the code.
HALPE_DOC = [*range(26), 54, 59, 62, 71, 77, 83, 94, 98, 102, 106, 110, 114, 115, 119, 123, 127,
             131, 135]
COCO_DOC = {**{i: i for i in range(17)}, 20: 17, 21: 20, 22: 18, 23: 21, 24: 19, 25: 22,
            26: 51, 27: 56, 28: 59, 29: 68, 30: 74, 31: 80, 32: 91, 33: 95, 34: 99, 35: 103,
            36: 107, 37: 111, 38: 112, 39: 116, 40: 120, 41: 124, 42: 128, 43: 132}


def _person(k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1000, (k, 2)).astype(np.float32), rng.uniform(0.5, 1, k).astype(np.float32)


def test_halpe_table_is_the_documented_subset():
    assert HALPE136.pairs() == list(enumerate(HALPE_DOC))
    kp, sc = _person(136)
    out, s, f = HALPE136.map(kp, sc)
    np.testing.assert_array_equal(out, kp[HALPE_DOC])
    np.testing.assert_array_equal(s, sc[HALPE_DOC])
    assert not f.any()


def test_coco_wholebody_table_matches_the_reference_and_estimates_the_rest():
    assert dict(COCO_WB133.pairs()) == COCO_DOC
    kp, sc = _person(133)
    out, s, f = COCO_WB133.map(kp, sc)
    for j, i in COCO_DOC.items():
        np.testing.assert_array_equal(out[j], kp[i])
    np.testing.assert_allclose(out[18], (kp[5] + kp[6]) / 2, rtol=1e-6)   # neck
    np.testing.assert_allclose(out[19], (kp[11] + kp[12]) / 2, rtol=1e-6)  # hip centre
    eyes, mouth = (kp[1] + kp[2]) / 2, (kp[23 + 48] + kp[23 + 54]) / 2
    np.testing.assert_allclose(out[17], eyes + 1.6 * (eyes - mouth), rtol=1e-5)  # head top
    assert f[[17, 18, 19]].tolist() == [ESTIMATED] * 3 and not f[list(COCO_DOC)].any()
    assert s[17] == pytest.approx(0.8 * sc[[1, 2, 71, 77]].min())


def test_coco_head_top_falls_back_to_eyes_and_nose_without_mouth():
    kp, sc = _person(133)
    sc[23 + 48] = 0  # a mouth corner missing
    out, s, f = COCO_WB133.map(kp, sc)
    eyes = (kp[1] + kp[2]) / 2
    np.testing.assert_allclose(out[17], eyes + 3 * (eyes - kp[0]), rtol=1e-5)
    assert f[17] == ESTIMATED and s[17] < 0.8 * sc[[0, 1, 2]].min()


def test_mediapipe_prefers_models_and_falls_back_to_pose_landmarks():
    kp, sc = _person(543)
    full, s_full, f_full = MEDIAPIPE_HOLISTIC.map(kp, sc)
    np.testing.assert_array_equal(full[26:32], kp[[MP_FACE + m for m in (197, 2, 33, 263, 0, 17)]])
    np.testing.assert_array_equal(full[32:38], kp[[MP_LHAND + k for k in (0, 4, 8, 12, 16, 20)]])
    np.testing.assert_array_equal(full[38:44], kp[[MP_RHAND + k for k in (0, 4, 8, 12, 16, 20)]])
    assert not f_full[26:44].any()
    # face mesh and left hand absent (as on MA-52's pixelated faces)
    kp[MP_FACE:MP_LHAND + 21] = np.nan
    sc[MP_FACE:MP_LHAND + 21] = 0
    out, s, f = MEDIAPIPE_HOLISTIC.map(kp, sc)
    assert (f[26:38] == ESTIMATED).all() and not f[38:44].any()
    np.testing.assert_allclose(out[28], kp[6]) and np.testing.assert_allclose(out[29], kp[3])
    np.testing.assert_allclose(out[26], (kp[1] + kp[4] + kp[0]) / 3, rtol=1e-5)
    np.testing.assert_allclose(out[32], kp[15])        # left hand root = pose left wrist
    np.testing.assert_allclose(out[33], kp[21])        # thumb
    np.testing.assert_allclose(out[34], kp[19])        # index
    np.testing.assert_allclose(out[37], kp[17])        # little (pinky)
    np.testing.assert_allclose(out[35], kp[19] * 2 / 3 + kp[17] / 3, rtol=1e-5)
    assert (s[26:32] <= 0.5).all() and (s[33:38] <= 0.5).all()  # lowered scores
    assert s[32] == pytest.approx(0.9 * sc[15])
    # and the body joints are unchanged
    np.testing.assert_array_equal(out[:17], full[:17])


def test_mediapipe_body_sides_are_the_subjects_own():
    names = MEDIAPIPE_HOLISTIC.layout.joint_names
    pairs = dict(MEDIAPIPE_HOLISTIC.pairs())
    # MediaPipe: 11 left shoulder, 15 left wrist, 23 left hip, 27 left ankle, 29 left heel, 31 left foot index
    for j, mp in {5: 11, 9: 15, 11: 23, 15: 27, 24: 29, 20: 31, 1: 2, 3: 7}.items():
        assert names[j].startswith("left") and pairs[j] == mp


def test_missing_sources_give_missing_joints():
    kp, sc = _person(133)
    kp[5] = np.nan
    sc[5] = 0
    out, s, f = COCO_WB133.map(kp[None], sc[None])  # also with a leading person axis
    assert out.shape == (1, 44, 2)
    assert np.isnan(out[0, 5]).all() and f[0, 5] == MISSING and s[0, 5] == 0
    assert np.isnan(out[0, 18]).all() and f[0, 18] == MISSING  # the neck needs both shoulders


def test_tables_lookup_and_validation():
    assert table_for("halpe_136") is HALPE136 and table_for_count(543) is MEDIAPIPE_HOLISTIC
    assert table_for_count(44) is MA52_IDENTITY and set(TABLES) >= {"coco_wholebody_133"}
    with pytest.raises(ValueError, match="no keypoint table for 20 points"):
        table_for_count(20)
    with pytest.raises(ValueError, match="unknown keypoint format"):
        table_for("coco_17")
    with pytest.raises(ValueError, match="sum to 1"):
        JointSource(((0, 0.5), (1, 0.4)))
    with pytest.raises(ValueError, match=r"expected keypoints \(\.\.\., 133, 2\)"):
        COCO_WB133.map(np.zeros((136, 2)), np.zeros(136))
