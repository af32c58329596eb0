"""The annotated clip at half size (issue 23 item 4): a real clip drawn and encoded at half its
width and height, every frame kept, the skeleton scaled with the frame."""
import av
import cv2
import numpy as np
import pytest

from core.layouts import MA52_44
from pipelines.drawing.render import CLIP_SIZES, FrameAnnotation, heat_colours, render_annotated_clip
from pose.video import iter_frames
from tests.data import VIDEOS_DIR

CLIP = VIDEOS_DIR / "0019_02_0078.mp4"  # 50 frames, 1080x1296


def _render(tmp_path, size):
    frames = [f for _, _, f in iter_frames(CLIP)]
    n, (h, w) = len(frames), frames[0].shape[:2]
    kp = np.full((n, MA52_44.num_joints, 2), np.nan, np.float32)
    nose = MA52_44.joint_names.index("nose")
    kp[:, nose] = [w * 0.25, h * 0.75]  # one joint, drawn hot, on a known spot
    heat = np.zeros((n, MA52_44.num_joints), np.float32)
    heat[:, nose] = 1.0
    out = render_annotated_clip(iter(frames), tmp_path / f"{size}.mp4", fps=30.0, keypoints=kp,
                                scores=np.ones((n, MA52_44.num_joints), np.float32), heat=heat,
                                annotations=[FrameAnnotation()] * n, timeline_colours=np.full((n, 3), 90, np.uint8),
                                size=size)
    with av.open(str(out)) as c:
        decoded = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    return frames, decoded


def test_half_size_clip_keeps_every_frame_and_the_skeleton_in_place(tmp_path):
    frames, half = _render(tmp_path, "half")
    h, w = frames[0].shape[:2]
    assert len(half) == len(frames) and half[0].shape[:2] == (h // 2, w // 2)
    hot = heat_colours(np.array([1.0]))[0].astype(int)
    y, x = int(h * 0.75) // 2, int(w * 0.25) // 2
    for got in (half[0], half[-1]):
        assert np.abs(got[y, x].astype(int) - hot).max() < 40, got[y, x]  # the joint, where it was, halved
    # elsewhere it is the source frame, downscaled (H.264 at the default quality)
    plain = cv2.resize(frames[10], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    assert np.abs(half[10][200:260, 300:400].astype(int) - plain[200:260, 300:400]).mean() < 4


def test_clip_size_names_are_checked(tmp_path):
    assert set(CLIP_SIZES) == {"full", "half"}
    with pytest.raises(ValueError, match="clip size"):
        _render(tmp_path, "quarter")
