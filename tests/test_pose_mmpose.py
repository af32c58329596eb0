"""The mmpose backend with random weights on a real clip: wiring, shapes, mapping, checkpoints.

No trained weights can be fetched here, so the model is RTMW-m built from the config shipped in
the mmpose package with random initialisation; what is tested is everything around it.
Needs the mmpose extra (see the README); skipped only when mmpose is not importable.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("mmpose")
torch = pytest.importorskip("torch")

from pose.estimators import create_estimator  # noqa: E402
from pose.estimators.mmpose_wholebody import PoseCheckpointError, resolve_config  # noqa: E402
from pose.extract import extract_skeleton  # noqa: E402
from pose.keypoint_tables import COCO_WB133, ESTIMATED  # noqa: E402
from pose.video import iter_frames  # noqa: E402
from tests.data import VIDEOS_DIR  # noqa: E402

pytestmark = pytest.mark.mmpose

CLIP = VIDEOS_DIR / "0010_02_0101.mp4"
CONFIG = "rtmw-m_8xb1024-270e_cocktail14-256x192.py"


@pytest.fixture(scope="module")
def estimator():
    torch.manual_seed(0)
    est = create_estimator("mmpose", config=CONFIG, random_init=True, num_threads=2)
    yield est
    est.close()


def _frames(n: int):
    out = []
    for item in iter_frames(CLIP):
        out.append(item)
        if len(out) == n:
            break
    return out


@pytest.mark.slow
def test_random_rtmw_runs_on_a_real_clip(estimator):
    s = extract_skeleton(CLIP, estimator)
    n = sum(1 for _ in iter_frames(CLIP, decode=False))
    assert s.keypoints.shape == (n, 44, 2) and s.scores.shape == (n, 44) and n == 47
    assert s.keypoints.dtype == np.float32 and np.isfinite(s.keypoints).all()
    assert (s.flags[:, [17, 18, 19]] & ESTIMATED).all()  # not in COCO-WholeBody: estimated
    assert not (s.flags[:, [0, 5, 20, 22, 26, 32, 43]] & ESTIMATED).any()  # native joints
    b = s.meta["backend"]
    assert b["name"] == "mmpose" and b["version"] == "mmpose 1.3.2"
    assert b["keypoint_format"] == "coco_wholebody_133"
    assert b["options"]["config"] == CONFIG and b["options"]["random_init"] is True
    assert b["options"]["device"] in ("cpu", "cuda")


def test_native_output_shapes_boxes_and_mapping(estimator):
    estimator.reset()
    (i0, t0, f0), (i1, t1, f1) = _frames(2)
    p0 = estimator.process(f0, i0, t0)
    assert p0.keypoints.shape == (1, 133, 2) and p0.scores.shape == (1, 133)
    assert ((p0.scores >= 0) & (p0.scores <= 1)).all()
    np.testing.assert_array_equal(p0.boxes, [[0, 0, 1080, 1296]])  # first frame: whole frame
    p1 = estimator.process(f1, i1, t1)
    assert p1.boxes.shape == (1, 4)  # tracked box around frame 0's skeleton (or the whole frame)
    assert (p1.boxes[0, :2] >= 0).all() and p1.boxes[0, 2] <= 1080 and p1.boxes[0, 3] <= 1296
    kp, sc, fl = COCO_WB133.map(p0.keypoints, p0.scores)
    assert kp.shape == (1, 44, 2)
    np.testing.assert_array_equal(kp[0, 20], p0.keypoints[0, 17])    # left big toe
    np.testing.assert_array_equal(kp[0, 29], p0.keypoints[0, 68])    # left eye outer (face 45)
    np.testing.assert_array_equal(kp[0, 38], p0.keypoints[0, 112])   # right hand root


def test_checkpoint_loads_weights_only_with_sha256(estimator, tmp_path):
    meta = {"dataset_meta": estimator.model.dataset_meta}  # holds numpy arrays (sigmas...)
    assert any(isinstance(v, np.ndarray) for v in meta["dataset_meta"].values())
    ckpt = tmp_path / "rtmw-m-random.pth"
    torch.save({"state_dict": estimator.model.state_dict(), "meta": meta}, ckpt)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    loaded = create_estimator("mmpose", config=CONFIG, checkpoint=ckpt, checkpoint_sha256=digest[:8])
    (i, t, f), = _frames(1)
    estimator.reset()
    a, b = estimator.process(f, i, t), loaded.process(f, i, t)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    assert loaded.options()["checkpoint"] == ckpt.name and loaded.options()["random_init"] is False
    with pytest.raises(PoseCheckpointError, match="does not match the expected"):
        create_estimator("mmpose", config=CONFIG, checkpoint=ckpt, checkpoint_sha256="0" * 64)
    partial = tmp_path / "partial.pth"
    sd = estimator.model.state_dict()
    torch.save({"state_dict": {k: v for k, v in list(sd.items())[:10]}}, partial)
    with pytest.raises(PoseCheckpointError, match="does not fit the config's model"):
        create_estimator("mmpose", config=CONFIG, checkpoint=partial)


def test_checkpoint_is_required_unless_random_init_is_asked_for():
    with pytest.raises(ValueError, match="needs checkpoint=PATH"):
        create_estimator("mmpose", config=CONFIG)
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_config("no-such-config.py")


def test_detector_boxes_feed_a_batch_of_crops():
    """An mmdet RTMDet person detector (random weights, config shipped with mmpose)."""
    torch.manual_seed(0)
    est = create_estimator("mmpose", config=CONFIG, random_init=True,
                           det_config="rtmdet_nano_320-8xb32_coco-person.py",
                           det_score_threshold=0.0, max_people=3)
    (i, t, f), = _frames(1)
    p = est.process(f, i, t)
    assert 1 <= p.num_people <= 3
    assert p.keypoints.shape == (p.num_people, 133, 2) and p.boxes.shape == (p.num_people, 4)
    assert est.options()["detector"] == "rtmdet_nano_320-8xb32_coco-person.py"
