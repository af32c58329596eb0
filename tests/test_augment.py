"""STCA and the masking augmentations: each step alone, then in the training chain.

The chain tests are the ones the released 2D trainer would have failed: there the affine
transform, the jitter and the reversal were computed on an array the model never received.
"""
import math

import numpy as np
import pytest
import torch

from core.layouts import MA52_44, MSR_ACTION3D_20
from mmn.model import MMN, MMNConfig
from mmn.preprocess import (
    BoneModality,
    Compose,
    FormatInputs,
    RandomSampleFrames,
    ReorderJoints,
    UniformSampleFrames,
    normalise_steps,
)
from mmn.training.augment import (
    AxisMask,
    RandomRotation,
    RandomScaling,
    RandomTranslation,
    TemporalBlockDropout,
    TemporalJitter,
    reseed,
    stca_steps,
    train_pipeline,
)
from mmn.training.datasets import SkeletonDataset, read_pyskl


def _clip(T=64, V=20, seed=0):
    """A normalised clip in [-1, 1], as STCA sees it."""
    return np.random.default_rng(seed).uniform(-1, 1, (T, V, 2)).astype(np.float32)


def _run(step, kp):
    return step({"keypoint": kp.copy()})["keypoint"]


@pytest.fixture(scope="module")
def msr_clip(msr_pkl):
    clips, _ = read_pyskl(msr_pkl, "xsub_train")
    return clips[0].keypoint  # (54, 20, 2) pixels


# ---------------------------------------------------------------- each step alone

@pytest.mark.parametrize("make", [
    lambda p, s: RandomRotation(15, p, s), lambda p, s: RandomScaling(0.9, 1.1, p, s),
    lambda p, s: RandomTranslation(0.1, p, s), lambda p, s: AxisMask(p, s),
    lambda p, s: TemporalBlockDropout(4, 16, p, s),
])
def test_probability_zero_is_identity_and_one_always_changes(make):
    kp = _clip()
    np.testing.assert_array_equal(_run(make(0.0, 0), kp), kp)
    for seed in range(5):
        out = _run(make(1.0, seed), kp)
        assert out.shape == kp.shape and out.dtype == np.float32 and not np.array_equal(out, kp)


def test_probability_is_respected():
    step, kp = RandomScaling(0.9, 1.1, p=0.2, seed=0), _clip(T=4)
    fired = sum(not np.array_equal(_run(step, kp), kp) for _ in range(2000))
    assert 340 < fired < 460  # 2000 · 0.2 = 400 ± 3σ


def test_rotation_is_rigid_about_the_origin_within_15_degrees():
    kp = _clip()
    angles = []
    for seed in range(50):
        out = _run(RandomRotation(15, 1.0, seed), kp)
        np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(kp, axis=-1), rtol=1e-5)
        ang = np.degrees(np.arctan2(out[..., 1], out[..., 0]) - np.arctan2(kp[..., 1], kp[..., 0]))
        ang = (ang + 180) % 360 - 180
        assert np.ptp(ang) < 1e-2  # one angle for every point of every frame
        angles.append(float(ang.mean()))
    assert max(map(abs, angles)) <= 15 + 1e-3 and max(angles) > 10 and min(angles) < -10


def test_scaling_is_one_isotropic_factor_in_range():
    kp = _clip()
    factors = []
    for seed in range(50):
        ratio = _run(RandomScaling(0.9, 1.1, 1.0, seed), kp) / kp
        assert np.ptp(ratio) < 1e-5
        factors.append(float(ratio.mean()))
    assert 0.9 <= min(factors) and max(factors) <= 1.1 and np.ptp(factors) > 0.1


def test_translation_is_one_offset_per_axis_within_range():
    kp = _clip()
    shifts = []
    for seed in range(50):
        d = _run(RandomTranslation(0.1, 1.0, seed), kp) - kp
        assert np.ptp(d[..., 0]) < 1e-6 and np.ptp(d[..., 1]) < 1e-6
        shifts.append(d[0, 0])
    shifts = np.array(shifts)
    assert np.abs(shifts).max() <= 0.1 + 1e-6 and np.abs(shifts).max() > 0.08
    assert not np.allclose(shifts[:, 0], shifts[:, 1])  # the axes draw separately


def test_temporal_jitter_moves_indices_by_at_most_3_clamped_and_rereads_frames(msr_clip):
    total = len(msr_clip)
    for seed in range(20):
        sampler = UniformSampleFrames(64)
        base = sampler({"keypoint": msr_clip.copy()})["frame_inds"]
        out = TemporalJitter(UniformSampleFrames(64), 3, 1.0, seed)({"keypoint": msr_clip.copy()})
        inds = out["frame_inds"]
        assert inds.shape == (64,) and inds.min() >= 0 and inds.max() <= total - 1
        assert np.abs(inds - base).max() <= 3
        np.testing.assert_array_equal(out["keypoint"], msr_clip[inds])  # frames follow the indices
        np.testing.assert_allclose(out["index_t"], 2 * inds / total - 1, atol=1e-6)  # and so do the time codes
        assert out["total_frames"] == total
    moved = TemporalJitter(UniformSampleFrames(64), 3, 1.0, 0)({"keypoint": msr_clip.copy()})["frame_inds"]
    assert (moved != base).mean() > 0.5
    # a 3-frame clip: most shifts leave [0, 2] and are clamped to its ends
    short = msr_clip[:3]
    out = TemporalJitter(UniformSampleFrames(64), 3, 1.0, 0)({"keypoint": short.copy()})
    assert set(out["frame_inds"]) <= {0, 1, 2} and (out["frame_inds"] != 1).mean() > 0.7
    np.testing.assert_array_equal(out["keypoint"], short[out["frame_inds"]])


def test_temporal_jitter_without_firing_is_the_plain_sampler(msr_clip):
    a = TemporalJitter(RandomSampleFrames(64, seed=3), 3, 0.0, 0)({"keypoint": msr_clip.copy()})
    b = RandomSampleFrames(64, seed=3)({"keypoint": msr_clip.copy()})
    for key in ("keypoint", "frame_inds", "index_t"):
        np.testing.assert_array_equal(a[key], b[key])


def test_axis_mask_zeroes_exactly_one_axis():
    kp = _clip()
    seen = set()
    for seed in range(20):
        out = _run(AxisMask(1.0, seed), kp)
        zero_axes = [a for a in range(2) if (out[..., a] == 0).all()]
        assert len(zero_axes) == 1
        other = 1 - zero_axes[0]
        np.testing.assert_array_equal(out[..., other], kp[..., other])
        seen.add(zero_axes[0])
    assert seen == {0, 1}


def test_block_dropout_zeroes_one_run_of_4_to_16_whole_frames():
    kp = _clip()
    lengths = set()
    for seed in range(60):
        out = _run(TemporalBlockDropout(4, 16, 1.0, seed), kp)
        dropped = np.flatnonzero((out == 0).all(axis=(1, 2)))
        assert 4 <= len(dropped) <= 16 and np.all(np.diff(dropped) == 1)
        keep = np.setdiff1d(np.arange(64), dropped)
        np.testing.assert_array_equal(out[keep], kp[keep])
        lengths.add(len(dropped))
    assert min(lengths) <= 6 and max(lengths) >= 14


def test_seeded_steps_are_reproducible():
    kp = _clip()
    for cls in (RandomRotation, RandomScaling, RandomTranslation):
        np.testing.assert_array_equal(_run(cls(p=1.0, seed=5), kp), _run(cls(p=1.0, seed=5), kp))
        assert not np.array_equal(_run(cls(p=1.0, seed=5), kp), _run(cls(p=1.0, seed=6), kp))


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="probability"):
        RandomRotation(p=1.5)
    with pytest.raises(ValueError, match="scale range"):
        RandomScaling(1.2, 1.1)
    with pytest.raises(ValueError, match="block length"):
        TemporalBlockDropout(0, 4)
    with pytest.raises(ValueError, match="unknown augment option"):
        train_pipeline(MSR_ACTION3D_20, augment=dict(mixup=True))


# ---------------------------------------------------------------- in the training chain

class _Capture:
    """Records ``keypoint`` as it passes (a spy step)."""

    def __call__(self, results):
        self.keypoint = results["keypoint"].copy()
        return results


def _split_at_modality(pipe: Compose, capture: _Capture) -> Compose:
    """Insert ``capture`` just before the modality steps (bone conversion, body-part reorder)."""
    i = next(i for i, s in enumerate(pipe.steps) if isinstance(s, (BoneModality, ReorderJoints)))
    return Compose(pipe.steps[:i] + [capture] + pipe.steps[i:])


def test_stca_reaches_the_model_input(msr_clip):
    """The released code's bug, caught: with STCA on, ``inputs`` (what the model reads) must
    differ from the unaugmented input built from the *same* sampled frames, and the model's
    output must change with it."""
    plain = train_pipeline(MSR_ACTION3D_20, "joint", augment=dict(p=0.0), seed=11)
    stca = train_pipeline(MSR_ACTION3D_20, "joint", augment=dict(p=1.0, jitter_frames=0), seed=11)
    a, b = plain({"keypoint": msr_clip.copy()}), stca({"keypoint": msr_clip.copy()})
    np.testing.assert_array_equal(a["frame_inds"], b["frame_inds"])  # same frames sampled
    assert a["inputs"].shape == b["inputs"].shape == (2, 64, 20, 1)
    assert np.abs(a["inputs"] - b["inputs"]).mean() > 1e-2
    # the change is the clip-wide similarity transform STCA describes: b = s·R·a + t
    pa = a["inputs"][..., 0].reshape(2, -1).T
    pb = b["inputs"][..., 0].reshape(2, -1).T
    A = np.c_[pa, np.ones(len(pa))]
    coef, *_ = np.linalg.lstsq(A, pb, rcond=None)
    np.testing.assert_allclose(A @ coef, pb, atol=1e-4)
    m = coef[:2].T
    s = math.sqrt(abs(np.linalg.det(m)))
    assert 0.9 - 1e-4 <= s <= 1.1 + 1e-4
    np.testing.assert_allclose(m / s @ (m / s).T, np.eye(2), atol=1e-4)  # a rotation …
    assert abs(math.degrees(math.atan2(m[1, 0], m[0, 0]))) <= 15 + 1e-3  # … within ±15°
    assert np.abs(coef[2]).max() <= 0.1 * 1.1 + 1e-4

    torch.manual_seed(0)
    model = MMN(MMNConfig(num_joints=20, num_classes=20, channels=32, depths=(1, 1, 1, 1))).eval()
    with torch.no_grad():
        la = model(torch.from_numpy(a["inputs"])[None], torch.from_numpy(a["index_t"])[None])
        lb = model(torch.from_numpy(b["inputs"])[None], torch.from_numpy(b["index_t"])[None])
    assert not torch.allclose(la, lb, atol=1e-4)


def test_jitter_reaches_inputs_and_time_codes_through_the_dataset(msr_clip):
    from mmn.training.datasets import Clip
    clip = Clip("x", msr_clip, 0)
    no_jit = SkeletonDataset([clip], train_pipeline(MSR_ACTION3D_20, augment=dict(p=0.0)), seed=3)[0]
    jit = SkeletonDataset([clip], train_pipeline(MSR_ACTION3D_20, augment=dict(
        p=1.0, rotate_degrees=0, scale=(1, 1), translate=0)), seed=3)[0]
    assert not torch.equal(no_jit["index_t"], jit["index_t"])
    assert not torch.equal(no_jit["inputs"], jit["inputs"])
    inds = np.round((jit["index_t"].numpy() + 1) * len(msr_clip) / 2).astype(int)
    # the input frames are the normalised raw frames at exactly those time codes
    norm = Compose(normalise_steps(MSR_ACTION3D_20))({"keypoint": msr_clip.copy()})["keypoint"]
    expected = FormatInputs()(ReorderJoints(MSR_ACTION3D_20.partition)({"keypoint": norm[inds]}))["inputs"]
    np.testing.assert_allclose(jit["inputs"].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("layout,modality", [(MSR_ACTION3D_20, "joint"), (MSR_ACTION3D_20, "bone"),
                                             (MA52_44, "joint"), (MA52_44, "bone")])
def test_chain_keeps_shapes_time_codes_and_joint_order(layout, modality, golden_raw):
    raw = golden_raw[2] if layout is MA52_44 else _clip(T=40, V=20, seed=2) * 100 + 200
    capture = _Capture()
    pipe = _split_at_modality(train_pipeline(layout, modality, augment=dict(
        p=1.0, axis_mask=True, block_dropout=True), seed=4), capture)
    out = pipe({"keypoint": raw.copy()})
    v = layout.num_joints
    assert out["inputs"].shape == (2, 64, v, 1) and out["inputs"].dtype == np.float32
    assert out["index_t"].shape == (64,) and out["index_t"].dtype == np.float32
    np.testing.assert_allclose(out["index_t"], 2 * out["frame_inds"] / len(raw) - 1, atol=1e-6)
    assert out["index_t"].min() >= -1 and out["index_t"].max() < 1
    kp = capture.keypoint  # augmented, in storage order, before bone/reorder
    if modality == "bone":
        bone = np.zeros_like(kp)
        for a, b in layout.bones:
            bone[:, a] = kp[:, a] - kp[:, b]
        kp = bone
    # model joint i is storage joint partition[i]
    np.testing.assert_array_equal(out["inputs"][..., 0], kp[:, list(layout.partition)].transpose(2, 0, 1))


def test_reseed_gives_each_process_its_own_stream(msr_clip):
    pipe = train_pipeline(MSR_ACTION3D_20, augment=dict(p=1.0), seed=0)
    reseed(pipe, 1)
    a = pipe({"keypoint": msr_clip.copy()})["inputs"]
    reseed(pipe, 1)
    b = pipe({"keypoint": msr_clip.copy()})["inputs"]
    reseed(pipe, 2)
    c = pipe({"keypoint": msr_clip.copy()})["inputs"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(stca_steps(seed=0)) == 3
