"""MMN preprocessing: each step on its own, then the whole chain against the authors' output."""
import numpy as np
import pytest

from core.layouts import IMIGUE_22, MA52_44, MSR_ACTION3D_20, SkeletonLayout
from mmn.preprocess import (
    BoneModality,
    CentreOnJoint,
    Compose,
    FormatInputs,
    MinMaxScale,
    RandomSampleFrames,
    ReorderJoints,
    UniformSampleFrames,
    preprocess_clip,
)


def _clip(L=10, V=5, seed=0):
    return np.random.default_rng(seed).uniform(0, 500, (L, V, 2)).astype(np.float32)


def test_centre_subtracts_frame0_centre_joint():
    kp = _clip()
    out = CentreOnJoint(3)({"keypoint": kp.copy()})["keypoint"]
    np.testing.assert_array_equal(out[0, 3], [0, 0])
    np.testing.assert_allclose(out + kp[0, 3], kp, atol=1e-4)
    assert not np.allclose(out[5, 3], 0)  # later frames are not re-centred


def test_minmax_scales_each_axis_to_unit_range():
    kp = _clip()
    kp[..., 1] *= 3  # different ranges per axis
    out = MinMaxScale()({"keypoint": kp})["keypoint"]
    assert out.dtype == np.float32
    for axis in range(2):
        assert out[..., axis].min() == pytest.approx(-1, abs=1e-6)
        assert out[..., axis].max() == pytest.approx(1, abs=1e-5)


def test_uniform_sampling_indices_and_time_code():
    out = UniformSampleFrames(64)({"keypoint": _clip(L=37)})
    inds = out["frame_inds"]
    np.testing.assert_array_equal(inds, np.floor(np.linspace(0, 36, 64)).astype(int))
    assert out["keypoint"].shape == (64, 5, 2)
    np.testing.assert_allclose(out["index_t"], 2 * inds / 37 - 1, atol=1e-7)  # divided by L
    assert out["index_t"][0] == -1 and out["index_t"][-1] < 1


def test_uniform_sampling_single_frame_clip():
    out = UniformSampleFrames(64)({"keypoint": _clip(L=1)})
    assert out["keypoint"].shape == (64, 5, 2) and (out["frame_inds"] == 0).all()


def test_random_sampling_sorted_in_range_and_repeats_short_clips():
    s = RandomSampleFrames(64, seed=1)
    short = s({"keypoint": _clip(L=20)})
    inds = short["frame_inds"]
    assert (np.diff(inds) >= 0).all() and inds.min() >= 0 and inds.max() <= 19
    assert len(np.unique(inds)) == 20  # 64 draws from range(20)*64: every frame appears here
    long = s({"keypoint": _clip(L=300)})["frame_inds"]
    assert len(np.unique(long)) > 50 and long.max() < 300
    a = RandomSampleFrames(64, seed=2)({"keypoint": _clip(L=300)})["frame_inds"]
    b = RandomSampleFrames(64, seed=3)({"keypoint": _clip(L=300)})["frame_inds"]
    assert not np.array_equal(a, b)


def test_bone_modality_last_bone_wins_and_untouched_joints_zero():
    kp = _clip(V=4)
    out = BoneModality([(0, 1), (0, 2), (3, 2)])({"keypoint": kp})["keypoint"]
    np.testing.assert_allclose(out[:, 0], kp[:, 0] - kp[:, 2])  # last bone of joint 0
    np.testing.assert_allclose(out[:, 3], kp[:, 3] - kp[:, 2])
    assert (out[:, 1] == 0).all() and (out[:, 2] == 0).all()


def test_reorder_and_format():
    kp = _clip(V=3)
    out = Compose([ReorderJoints([2, 0, 1]), FormatInputs()])({"keypoint": kp})
    np.testing.assert_array_equal(out["keypoint"][:, 0], kp[:, 2])
    assert out["inputs"].shape == (2, 10, 3, 1)
    np.testing.assert_array_equal(out["inputs"][:, :, 0, 0], kp[:, 2].T)


@pytest.mark.parametrize("i", range(6))
def test_matches_authors_preprocessing(golden, i):
    raw = golden[f"raw_{i}"]
    joint, index_t = preprocess_clip(raw, MA52_44, "joint")
    bone, index_t_b = preprocess_clip(raw, MA52_44, "bone")
    np.testing.assert_allclose(joint, golden["joint"][i], rtol=0, atol=1e-6)
    np.testing.assert_allclose(bone, golden["bone"][i], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(index_t, golden["index_t"][i])
    np.testing.assert_array_equal(index_t_b, index_t)


def test_bad_clip_shapes_and_nan_are_rejected():
    with pytest.raises(ValueError, match=r"\(L ≥ 1, 44, 2\)"):
        preprocess_clip(np.zeros((10, 22, 2)), MA52_44)
    bad = np.zeros((10, 44, 2)); bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        preprocess_clip(bad, MA52_44)
    with pytest.raises(ValueError, match="modality"):
        preprocess_clip(np.zeros((10, 44, 2)), MA52_44, "velocity")


def test_shipped_layouts_are_consistent():
    for layout, v, centre in ((MA52_44, 44, 19), (IMIGUE_22, 22, 1), (MSR_ACTION3D_20, 20, 6)):
        assert layout.num_joints == v and layout.centre_joint == centre
        assert sorted(layout.partition) == list(range(v))
    assert MA52_44.partition[:8] == (7, 9, 32, 33, 34, 35, 36, 37)
    assert IMIGUE_22.partition == (4, 12, 13, 14, 15, 16, 7, 17, 18, 19, 20, 21, 0, 8, 9, 10, 11, 1, 2, 5, 3, 6)
    assert len(MA52_44.bones) == 44  # 7 + 7 + 4 + 4 + 10 + 6 + 6
    assert SkeletonLayout.from_dict(MA52_44.to_dict()) == MA52_44


def test_user_layout_validation():
    with pytest.raises(ValueError, match="exactly once"):
        SkeletonLayout.from_dict({"name": "x", "num_joints": 3, "bones": [], "centre_joint": 0,
                                  "parts": {"a": [0, 1]}})
    with pytest.raises(ValueError, match="bad bone"):
        SkeletonLayout.from_dict({"name": "x", "num_joints": 3, "bones": [[0, 5]], "centre_joint": 0,
                                  "parts": {"a": [0, 1, 2]}})
