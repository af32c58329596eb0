"""Streaming post-processing equals the whole-track chain, on real skeletons.

The real tracks are MediaPipe's raw picks on the bundled clips (examples/videos) and the real
clips in MMN_SHARED (extracted once per distinct file, cached in a pytest temporary folder):
``extract_skeleton`` with no gap filling, no smoothing and no score threshold, i.e. the track
before post-processing. They are then post-processed whole (:func:`pose.postprocess.postprocess`)
and frame by frame (:class:`pose.postprocess.StreamPostprocessor`); the two must be equal.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pose.keypoint_tables import FILLED, MISSING
from pose.postprocess import GapConfig, SmoothingConfig, StreamPostprocessor, TrackBlock, postprocess
from tests.data import VIDEOS_DIR

EXAMPLES = VIDEOS_DIR
EXAMPLE_CLIPS = sorted(p.name for p in EXAMPLES.glob("*.mp4"))
SHARED_CLIPS = ("0010_02_0101.mp4", "0019_02_0078.mp4", "0030_01_0002.mp4")
METHODS = ("savgol", "one_euro", "none")
RAW_GAP = GapConfig(min_score=0.0, max_gap_s=0.0)  # no threshold, no filling: the raw pick


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def raw_tracks(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """sha256 of a clip → its raw track (keypoints, scores, flags, timestamps, fps), extracted
    once per distinct file and cached as .npz in a pytest temporary folder."""
    pytest.importorskip("mediapipe")
    from pose.extract import extract_skeleton

    cache = tmp_path_factory.mktemp("raw_tracks")
    clips = [EXAMPLES / c for c in EXAMPLE_CLIPS]
    if VIDEOS_DIR.is_dir():
        clips += sorted(VIDEOS_DIR.glob("*.mp4"))
    tracks = {}
    for clip in clips:
        key = _sha(clip)
        npz = cache / f"{key}.npz"
        if not npz.exists():
            s = extract_skeleton(clip, smoothing=None, gap=RAW_GAP, region_motion=False)
            np.savez(npz, keypoints=s.keypoints, scores=s.scores, flags=s.flags,
                     timestamps=s.timestamps, fps=s.meta["video"]["fps"])
        with np.load(npz) as z:
            tracks[key] = {k: z[k] for k in z.files}
    return tracks


def _track(raw_tracks, clip: Path) -> dict[str, np.ndarray]:
    return raw_tracks[_sha(clip)]


def _stream_frame_by_frame(t: dict[str, np.ndarray], fps: float, gap=None, smoothing=None):
    """Push the track one frame at a time (a frame without the subject as present=False);
    check the emission schedule; return the concatenated output and the processor."""
    st = StreamPostprocessor(fps, gap, smoothing)
    blocks = []
    for i in range(len(t["timestamps"])):
        absent = bool((t["flags"][i] & MISSING).all())
        blk = st.push(None if absent else t["keypoints"][i], None if absent else t["scores"][i],
                      float(t["timestamps"][i]), flags=None if absent else t["flags"][i], present=not absent)
        expected_emitted = max(0, i + 1 - st.lookahead_frames)
        assert st.emitted == expected_emitted and (len(blk) == 0 or blk.stop == expected_emitted)
        assert st.held_frames <= 2 * st.lookahead_frames + 1  # bounded memory
        blocks.append(blk)
    tail = st.flush()
    assert len(tail) == min(len(t["timestamps"]), st.lookahead_frames)
    return TrackBlock.concat(blocks + [tail], 44), st


def _assert_same(batch, out: TrackBlock) -> None:
    kp, sc, fl = batch[:3]
    np.testing.assert_array_equal(out.keypoints, kp)  # NaN where MISSING, in both
    np.testing.assert_array_equal(out.scores, sc)
    np.testing.assert_array_equal(out.flags, fl)
    assert out.keypoints.dtype == kp.dtype and out.flags.dtype == fl.dtype


def _with_gaps(t: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The real track with runs of 1 to 14 frames knocked out of some joints (at the start, in
    the middle and at the end), and a few whole frames without the subject."""
    rng = np.random.default_rng(seed)
    kp, sc, fl = t["keypoints"].copy(), t["scores"].copy(), t["flags"].copy()
    n = len(sc)
    for j in range(0, 44, 3):
        for start in (0, int(rng.integers(5, n - 20)), n - int(rng.integers(1, 12))):
            length = int(rng.integers(1, 15))
            kp[start:start + length, j] = np.nan
            sc[start:start + length, j] = 0
            fl[start:start + length, j] = MISSING
    for f in rng.choice(np.arange(10, n - 10), 3, replace=False):
        kp[f], sc[f], fl[f] = np.nan, 0, MISSING
    return {**t, "keypoints": kp, "scores": sc, "flags": fl}


@pytest.mark.parametrize("clip", EXAMPLE_CLIPS)
@pytest.mark.parametrize("method", METHODS)
def test_stream_equals_batch_on_real_tracks(raw_tracks, clip, method):
    t = _track(raw_tracks, EXAMPLES / clip)
    fps = float(t["fps"])
    cfg = SmoothingConfig.from_any(method)
    batch = postprocess(t["keypoints"], t["scores"], t["flags"], t["timestamps"], fps, None, cfg)
    out, st = _stream_frame_by_frame(t, fps, None, cfg)
    _assert_same(batch, out)
    np.testing.assert_array_equal(out.timestamps, t["timestamps"])
    assert st.params() == batch[3]
    if method != "none":  # the smoothing did something, so equality is not trivial
        moved = np.abs(out.keypoints - t["keypoints"])
        assert np.nanmax(moved) > 0.5


@pytest.mark.parametrize("clip", SHARED_CLIPS)
def test_stream_equals_batch_on_shared_clips(raw_tracks, clip):
    if not VIDEOS_DIR.is_dir():
        pytest.skip(f"real clips not found at {VIDEOS_DIR}: set MMN_SHARED to the folder holding fixtures/")
    t = _track(raw_tracks, VIDEOS_DIR / clip)
    fps = float(t["fps"])
    batch = postprocess(t["keypoints"], t["scores"], t["flags"], t["timestamps"], fps)
    out, _ = _stream_frame_by_frame(t, fps)
    _assert_same(batch, out)


@pytest.mark.parametrize("clip", EXAMPLE_CLIPS)
@pytest.mark.parametrize("fps", [30.0, 15.0, 60.0])
def test_stream_fills_the_same_gaps_as_batch(raw_tracks, clip, fps):
    """Gaps of every length around the limit, at the edges too, at three frame rates (so three
    look-aheads), pushed frame by frame and in random blocks."""
    t = _with_gaps(_track(raw_tracks, EXAMPLES / clip), seed=len(clip) + int(fps))
    batch = postprocess(t["keypoints"], t["scores"], t["flags"], t["timestamps"], fps)
    filled = (batch[2] & FILLED).astype(bool)
    still_missing = (batch[2] & MISSING).astype(bool) & (t["flags"] & MISSING).astype(bool)
    assert filled.sum() > 20 and still_missing.sum() > 20  # both kinds of gaps are exercised
    out, _ = _stream_frame_by_frame(t, fps)
    _assert_same(batch, out)
    rng = np.random.default_rng(0)
    st = StreamPostprocessor(fps)
    blocks, i, n = [], 0, len(t["timestamps"])
    while i < n:
        k = int(rng.integers(1, 9))
        blocks.append(st.push_many(t["keypoints"][i:i + k], t["scores"][i:i + k], t["flags"][i:i + k],
                                   t["timestamps"][i:i + k]))
        i += k
        assert st.emitted == max(0, min(i, n) - st.lookahead_frames)
    _assert_same(batch, TrackBlock.concat(blocks + [st.flush()], 44))


def test_batch_chain_is_what_extract_skeleton_returns(raw_tracks):
    """The raw tracks really are the input of the chain: post-processing one equals the
    default extraction of its clip."""
    from pose.extract import extract_skeleton

    clip = EXAMPLES / "0019_02_0078.mp4"
    t = _track(raw_tracks, clip)
    s = extract_skeleton(clip, region_motion=False)
    out, _ = _stream_frame_by_frame(t, float(t["fps"]))
    np.testing.assert_array_equal(out.keypoints, s.keypoints)
    np.testing.assert_array_equal(out.flags, s.flags)


@pytest.mark.parametrize("fps, method, frames", [
    (30.0, "savgol", 12), (25.0, "savgol", 10), (30.0, "one_euro", 8), (30.0, "none", 8), (60.0, "savgol", 24),
])
def test_lookahead_is_gap_limit_plus_half_window(fps, method, frames):
    st = StreamPostprocessor(fps, smoothing=SmoothingConfig.from_any(method))
    assert st.lookahead_frames == frames
    assert st.lookahead_s == pytest.approx(frames / fps)
    assert StreamPostprocessor(30.0, GapConfig(max_gap_s=0.0)).lookahead_frames == 4  # smoothing only


def test_push_rejects_bad_frames_and_late_pushes():
    st = StreamPostprocessor(30.0)
    kp, sc = np.zeros((44, 2), np.float32), np.ones(44, np.float32)
    st.push(kp, sc, 0.0)
    with pytest.raises(ValueError, match="timestamps must increase"):
        st.push(kp, sc, 0.0)
    with pytest.raises(ValueError, match="finite"):
        st.push(kp, sc, float("nan"))
    with pytest.raises(ValueError, match="expected keypoints"):
        st.push(np.zeros((40, 2)), np.ones(40), 1.0)
    assert len(st.flush()) == 1
    with pytest.raises(RuntimeError, match="after flush"):
        st.push(kp, sc, 2.0)
    with pytest.raises(ValueError, match="fps"):
        StreamPostprocessor(0.0)
