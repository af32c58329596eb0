"""Pipeline building blocks: windows, segments, frame mapping, motion energy, atomic writes, H.264."""
import av
import numpy as np
import pytest

from core.atomic import atomic_path, atomic_write_text, remove_stale_parts
from core.layouts import MA52_44
from pipelines.drawing.render import H264Writer, heat_colours, timeline_image
from pipelines.stages.classify import fill_for_model
from pipelines.stages.motion_energy import motion_energy, normalise_heat
from pipelines.stages.windowing import Window, make_windows, merge_segments, windows_to_frames


def test_windows_cover_every_frame_and_end_at_the_last():
    for n in (1, 30, 59, 60, 61, 75, 1000):
        ws = make_windows(n, 30.0, 2.0, 0.5)
        covered = np.zeros(n, bool)
        for w in ws:
            assert 0 <= w.start < w.end <= n
            covered[w.start:w.end] = True
        assert covered.all(), n
        assert ws[-1].end == n
        if n >= 60:
            assert all(w.length == 60 for w in ws)
            assert all(b.start - a.start <= 15 for a, b in zip(ws, ws[1:]))
    assert make_windows(0, 30.0) == []
    with pytest.raises(ValueError):
        make_windows(10, 30.0, 0, 1)


def test_merge_segments_breaks_on_class_change_and_low_confidence():
    ws = [Window(i, i * 10, i * 10 + 20) for i in range(6)]
    segs = merge_segments(ws, [3, 3, 3, 5, 5, 5], [0.9, 0.8, 0.3, 0.7, 0.9, 0.6], threshold=0.5)
    assert [(s.class_index, s.start, s.end, s.windows) for s in segs] == [(3, 0, 30, (0, 1)), (5, 30, 70, (3, 4, 5))]
    assert segs[0].mean_prob == pytest.approx(0.85)


def test_windows_to_frames_averages_overlaps_and_fills_gaps():
    ws = [Window(0, 0, 10), Window(1, 5, 15)]
    inds = np.array([[0, 4, 9], [0, 4, 9]])  # frames 0, 4, 9 and 5, 9, 14
    vals = np.array([[[1.0], [2.0], [3.0]], [[10.0], [20.0], [30.0]]])
    out = windows_to_frames(ws, inds, vals, 15)
    assert out.shape == (15, 1)
    assert out[0, 0] == 1 and out[4, 0] == 2 and out[5, 0] == 10 and out[14, 0] == 30
    assert out[9, 0] == pytest.approx((3 + 20) / 2)
    assert out[1, 0] == 1 and out[3, 0] == 2  # nearest sampled frame


def test_fill_for_model_interpolates_and_never_leaves_nan():
    clip = np.arange(10 * 3 * 2, dtype=np.float32).reshape(10, 3, 2)
    clip[2:4, 0] = np.nan
    clip[:, 2] = np.nan  # joint missing in the whole window
    out = fill_for_model(clip)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[2, 0], (clip[1, 0] + (clip[4, 0] - clip[1, 0]) / 3))
    np.testing.assert_allclose(out[:, 2], out[:, :2].mean(axis=1))  # still: sits on the others


def test_motion_energy_follows_a_moving_limb_not_a_lone_jittering_joint():
    n, fps, v = 90, 30.0, MA52_44.num_joints
    rng = np.random.default_rng(0)
    kp = np.tile(np.linspace(100, 500, v * 2).reshape(1, v, 2), (n, 1, 1)).astype(np.float64)
    kp[:, 18] = [300, 200]; kp[:, 19] = [300, 400]  # neck and hip centre: 200 px torso
    kp += rng.normal(0, 0.5, kp.shape)  # estimator noise everywhere
    names = MA52_44.joint_names
    arm = [names.index(j) for j in ("left_shoulder", "left_elbow", "left_wrist")]
    wave = 20 * np.sin(np.arange(n) / fps * 2 * np.pi * 1.5)  # a 1.5 Hz wave, 20 px at the wrist
    for k, j in enumerate(arm):
        kp[:, j, 0] += wave * k / 2
    kp[:, names.index("right_knee"), 1] += rng.normal(0, 8, n)  # a knee that jitters on its own
    heat = motion_energy(kp.astype(np.float32), MA52_44, fps)
    assert heat.shape == (n, v) and heat.min() >= 0
    parts = {name: heat[:, list(js)].mean() for name, js in MA52_44.parts}
    assert max(parts, key=parts.get) == "left arm"
    assert heat[:, names.index("right_knee")].mean() < 0.2 * heat[:, names.index("left_elbow")].mean()
    # a still skeleton with noise only has (nearly) no heat
    still = motion_energy(kp[:, :, :] * 0 + kp[:1] + rng.normal(0, 0.5, kp.shape), MA52_44, fps)
    assert still.mean() < 0.05 * heat[:, arm].mean()
    h = normalise_heat(heat)
    assert h.min() >= 0 and h.max() <= 1


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and not list(tmp_path.glob(".*.part"))
    (tmp_path / ".a.json.0123abcd.part").write_text("stale")
    assert remove_stale_parts([target]) == 1 and not list(tmp_path.glob(".*.part"))


def test_h264_writer_is_browser_playable_and_atomic(tmp_path):
    out = tmp_path / "clip.mp4"
    with H264Writer(out, 64, 48, 29.97) as w:
        for i in range(12):
            w.write(np.full((48, 64, 3), i * 20, np.uint8))
        assert not out.exists()  # only renamed on close
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert (s.width, s.height) == (64, 48) and abs(float(s.average_rate) - 29.97) < 0.01
        assert sum(1 for _ in c.decode(video=0)) == 12
    with pytest.raises(RuntimeError):
        with H264Writer(tmp_path / "broken.mp4", 64, 48, 30) as w:
            w.write(np.zeros((48, 64, 3), np.uint8))
            raise RuntimeError("boom")
    assert not (tmp_path / "broken.mp4").exists() and not list(tmp_path.glob(".*.part"))


def test_colours_and_timeline():
    c = heat_colours(np.array([0.0, 1.0]))
    assert c.shape == (2, 3) and c[1].sum() > c[0].sum()
    strip = timeline_image(np.array([[255, 0, 0], [0, 0, 255]], np.uint8), np.array([0.0, 1.0]), 100, 20)
    assert strip.shape == (20, 100, 3) and strip[0, 10, 0] == 255 and strip[0, 90, 2] == 255


def test_h264_writer_uses_the_requested_x264_preset(tmp_path):
    """--clip-preset reaches x264: ultrafast turns CABAC off, veryfast keeps it (x264 writes its
    settings into the stream's SEI)."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), np.uint8) for _ in range(5)]
    sei = {}
    for preset in ("ultrafast", "veryfast"):
        with H264Writer(tmp_path / f"{preset}.mp4", 64, 48, 30, preset=preset) as w:
            for f in frames:
                w.write(f)
        data = (tmp_path / f"{preset}.mp4").read_bytes()
        sei[preset] = data[data.index(b"cabac="):][:7]
    assert sei == {"ultrafast": b"cabac=0", "veryfast": b"cabac=1"}
