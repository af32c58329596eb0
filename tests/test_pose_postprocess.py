"""Post-processing steps on synthetic tracks whose right answer is known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import savgol_filter

from pose.keypoint_tables import ESTIMATED, FILLED, MISSING
from pose.postprocess import (
    GapConfig,
    SmoothingConfig,
    drop_low_confidence,
    fill_gaps,
    one_euro_smooth,
    postprocess,
    savgol_smooth,
)


def _track(n: int = 40, v: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    kp = np.stack([np.stack([10 + 2 * t + j, 50 - 0.5 * t + 3 * j], -1) for j in range(v)], 1)
    kp = kp.astype(np.float32)
    sc = rng.uniform(0.6, 1.0, (n, v)).astype(np.float32)
    fl = np.zeros((n, v), np.uint8)
    return kp, sc, fl, t / 30.0


def _remove(kp, sc, fl, frames, joint):
    kp, sc, fl = kp.copy(), sc.copy(), fl.copy()
    kp[frames, joint] = np.nan
    sc[frames, joint] = 0
    fl[frames, joint] = MISSING
    return kp, sc, fl


def test_drop_low_confidence_marks_missing():
    kp, sc, fl, _ = _track()
    sc[5, 1] = 0.01
    fl[5, 1] = ESTIMATED
    kp[7, 2] = np.nan
    k, s, f = drop_low_confidence(kp, sc, fl, min_score=0.05)
    assert np.isnan(k[5, 1]).all() and s[5, 1] == 0 and f[5, 1] == MISSING
    assert np.isnan(k[7, 2]).all() and f[7, 2] == MISSING
    assert np.array_equal(k[6], kp[6]) and f[6].tolist() == [0, 0, 0]


def test_short_gap_interpolated_long_gap_left_missing():
    kp, sc, fl, _ = _track()
    kp, sc, fl = _remove(kp, sc, fl, slice(10, 14), 0)   # 4 frames: filled
    kp, sc, fl = _remove(kp, sc, fl, slice(20, 35), 1)   # 15 frames: too long
    full, _, _, _ = _track()
    k, s, f = fill_gaps(kp, sc, fl, max_gap=8, fill_score_factor=0.5)
    np.testing.assert_allclose(k[10:14, 0], full[10:14, 0], atol=1e-4)  # linear motion is exact
    assert (f[10:14, 0] == FILLED).all()
    assert np.allclose(s[10:14, 0], 0.5 * min(sc[9, 0], sc[14, 0]))
    assert np.isnan(k[20:35, 1]).all() and (f[20:35, 1] == MISSING).all() and (s[20:35, 1] == 0).all()
    assert np.array_equal(k[:, 2], kp[:, 2])  # untouched joint


def test_edge_gaps_are_held_when_short_and_not_otherwise():
    kp, sc, fl, _ = _track()
    kp, sc, fl = _remove(kp, sc, fl, slice(0, 3), 0)
    kp, sc, fl = _remove(kp, sc, fl, slice(37, 40), 1)
    k, s, f = fill_gaps(kp, sc, fl, max_gap=5)
    assert np.allclose(k[0:3, 0], kp[3, 0]) and (f[0:3, 0] == FILLED).all()
    assert np.allclose(k[37:40, 1], kp[36, 1])
    k2, _, f2 = fill_gaps(kp, sc, fl, max_gap=5, hold_edges=False)
    assert np.isnan(k2[0:3, 0]).all() and (f2[0:3, 0] == MISSING).all()


def test_filled_from_estimates_stays_flagged_estimated():
    kp, sc, fl, _ = _track()
    fl[:, 0] = ESTIMATED
    kp, sc, fl = _remove(kp, sc, fl, slice(10, 12), 0)
    _, _, f = fill_gaps(kp, sc, fl, max_gap=4)
    assert (f[10:12, 0] == FILLED | ESTIMATED).all()


def test_savgol_equals_the_classic_filter_with_equal_weights():
    rng = np.random.default_rng(1)
    kp, sc, fl, _ = _track(60, 2)
    kp = kp + rng.normal(0, 2, kp.shape).astype(np.float32)
    out = savgol_smooth(kp, sc, fl, window=9, polyorder=2, confidence_weighted=False)
    ref = savgol_filter(kp.astype(np.float64), 9, 2, axis=0)
    np.testing.assert_allclose(out[4:-4], ref[4:-4], atol=1e-3)  # interior: identical
    assert np.isfinite(out).all()


def test_savgol_keeps_polynomial_motion_and_removes_noise():
    t = np.arange(50, dtype=np.float64)
    clean = np.stack([0.05 * t ** 2, 3 * t], -1)[:, None].astype(np.float32)
    fl = np.zeros((50, 1), np.uint8)
    sc = np.ones((50, 1), np.float32)
    np.testing.assert_allclose(savgol_smooth(clean, sc, fl, 9, 2), clean, atol=1e-3)
    noisy = clean + np.random.default_rng(2).normal(0, 1, clean.shape).astype(np.float32)
    err_raw = np.abs(noisy - clean).mean()
    err_sm = np.abs(savgol_smooth(noisy, sc, fl, 9, 2) - clean).mean()
    assert err_sm < 0.6 * err_raw


def test_savgol_confidence_weighting_discounts_a_low_score_outlier():
    kp, sc, fl, _ = _track(30, 1)
    sc[:] = 1.0
    kp[15, 0, 1] += 40  # a wrong, unconfident detection
    sc[15, 0] = 0.05
    weighted = savgol_smooth(kp, sc, fl, 9, 2, confidence_weighted=True)
    plain = savgol_smooth(kp, sc, fl, 9, 2, confidence_weighted=False)
    truth = _track(30, 1)[0]
    assert abs(weighted[14, 0, 1] - truth[14, 0, 1]) < 0.25 * abs(plain[14, 0, 1] - truth[14, 0, 1])


def test_smoothing_never_crosses_or_fills_a_gap():
    kp, sc, fl, ts = _track()
    kp[20:, 0] += 100  # a jump across the gap must not leak into either side
    kp, sc, fl = _remove(kp, sc, fl, slice(15, 20), 0)
    for f in (lambda *a: savgol_smooth(*a[:3], 9, 2), one_euro_smooth):
        out = f(kp, sc, fl, ts)
        before = f(kp[:15], sc[:15], fl[:15], ts[:15])  # the track as if it ended at the gap
        assert np.isnan(out[15:20, 0]).all()
        np.testing.assert_allclose(out[:15, 0], before[:, 0], atol=1e-4)
        assert np.isfinite(out[20:, 0]).all() and (out[20:, 0, 0] > 100).all()


def test_one_euro_follows_a_ramp_with_lag_and_settles_on_a_constant():
    n = 60
    ts = np.arange(n) / 30.0
    y = np.where(np.arange(n) < 30, 0.0, 50.0)
    kp = np.stack([y, y], -1)[:, None].astype(np.float32)
    sc, fl = np.ones((n, 1), np.float32), np.zeros((n, 1), np.uint8)
    out = one_euro_smooth(kp, sc, fl, ts, min_cutoff=1.0, beta=0.0)
    assert out[30, 0, 0] < 50 and out[31, 0, 0] < out[40, 0, 0]  # causal: it lags the step
    assert abs(out[-1, 0, 0] - 50) < 1 and np.allclose(out[:30], 0)


def test_postprocess_chain_records_parameters():
    kp, sc, fl, ts = _track()
    kp, sc, fl = _remove(kp, sc, fl, slice(10, 12), 0)
    k, s, f, params = postprocess(kp, sc, fl, ts, fps=30.0)
    assert params["steps"] == ["drop_low_confidence", "fill_gaps", "smooth"]
    assert params["gap"]["max_gap_frames"] == 8
    assert params["smoothing"] == {"method": "savgol", "window_s": 0.3, "polyorder": 2,
                                   "confidence_weighted": True, "window_frames": 9}
    assert np.isfinite(k).all() and (f[10:12, 0] == FILLED).all()
    _, _, _, p2 = postprocess(kp, sc, fl, ts, 30.0, GapConfig(max_gap_s=0.0),
                              SmoothingConfig(method="none"))
    assert p2["smoothing"] == {"method": "none"} and p2["gap"]["max_gap_frames"] == 0


def test_smoothing_config_validation_and_coercion():
    with pytest.raises(ValueError, match="savgol"):
        SmoothingConfig(method="kalman")
    assert SmoothingConfig.from_any(None).method == "none"
    assert SmoothingConfig.from_any("one_euro").method == "one_euro"
    assert SmoothingConfig.from_any({"window_s": 0.5}).window_frames(30) == 15
    assert SmoothingConfig().window_frames(25) == 9  # 7.5 -> 8 -> odd
    with pytest.raises(TypeError):
        SmoothingConfig.from_any(3)


def test_measurements_on_known_signals():
    from pose.measure import amplitude, jitter, lag, part_motion_energy

    t = np.arange(60, dtype=np.float64)
    wave = 10 * np.sin(2 * np.pi * t / 20)
    assert lag(wave, np.interp(t - 2, t, wave)) == pytest.approx(2.0, abs=0.11)   # 2 frames late
    assert lag(wave, wave) == pytest.approx(0.0, abs=1e-9)
    assert amplitude(wave) == pytest.approx(2 * 10 * np.sin(np.pi * 0.4), rel=0.05)
    kp = np.zeros((4, 2, 2))
    kp[:, 0, 0] = [0, 1, 2, 3]  # joint 0 moves 1 px a frame, joint 1 is still
    assert jitter(kp, [0]) == 1.0 and jitter(kp, [1]) == 0.0
    assert part_motion_energy(kp, [0, 1]) == 0.25 and part_motion_energy(kp, [0, 1], vertical_only=True) == 0.0
