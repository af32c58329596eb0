"""The model-free heat points at the body part that moves (issue: honest pictures without a
checkpoint). Checked against pixel motion energy (MEA) on the real interview clips, against
the action on the real MSR Action3D skeletons, and the MEA accumulator on made frames."""
import json

import numpy as np
import pytest

from core.layouts import MA52_44, MSR_ACTION3D_20
from mmn.training.datasets import read_pyskl
from pipelines.discovery import VideoJob
from pipelines.job import JobOptions, process_video
from pipelines.stages.motion_energy import motion_energy
from pose.region_motion import RegionMotionEnergy
from tests.data import VIDEOS_DIR

CLIPS = sorted(VIDEOS_DIR.glob("*.mp4"))


@pytest.fixture(scope="module")
def unlabelled_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("heat")
    opts = JobOptions(out=out, pictures=False)
    return {clip.stem: process_video(VideoJob(clip, clip.stem), opts, None, progress=_quiet) for clip in CLIPS}


class _quiet:
    def __init__(self, total, desc):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass


@pytest.mark.slow
def test_skeleton_heat_and_pixel_motion_name_the_same_part_on_every_real_clip(unlabelled_runs):
    assert len(unlabelled_runs) == 3
    for key, doc in unlabelled_runs.items():
        motion = doc["motion"]
        pixels = motion["pixels_per_part_mean"]
        heat = doc["heatmap"]["per_part_mean"]
        assert motion["hottest_part"]["pixels"] == max(pixels, key=pixels.get)
        assert motion["hottest_part"]["heat"] == max(heat, key=heat.get) == motion["hottest_part"]["pixels"], key
        # interviews: the face moves most in the bundled clips (nodding, turning the head, shaking the body)
        assert motion["hottest_part"]["pixels"] == "face", (key, pixels)
        assert set(doc["windows"][0]["region_motion"]) == {name for name, _ in MA52_44.parts}


@pytest.mark.slow
def test_motion_csv_holds_both_series_per_frame(unlabelled_runs, tmp_path_factory):
    doc = unlabelled_runs["0019_02_0078"]
    out = next(tmp_path_factory.getbasetemp().glob("heat*"))
    rows = (out / "0019_02_0078.motion.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:2] == ["frame", "time_s"] and "heat_face" in header and "pixels_face" in header
    assert len(rows) - 1 == doc["video"]["frame_count"]
    face = [float(r.split(",")[header.index("pixels_face")]) for r in rows[2:]]
    assert np.mean(face) == pytest.approx(doc["motion"]["pixels_per_part_mean"]["face"], rel=0.02)
    json.dumps(doc)  # JSON-ready (no NaN objects)


def test_not_biased_to_one_part_real_msr_actions(msr_pkl):
    """Arm actions heat an arm, kicks a leg, on the real MSR Action3D skeletons (15 fps)."""
    clips, names = read_pyskl(msr_pkl, "xsub_val")
    kicks = {names.index("forward kick"), names.index("side kick")}
    arm_actions = {names.index(n) for n in ("high arm wave", "horizontal arm wave", "hammer", "hand catch",
                                            "forward punch", "draw x", "draw tick", "draw circle", "hand clap",
                                            "two hand wave", "side-boxing")}
    hits = {"arm": [], "leg": []}
    for c in clips:
        if c.label not in kicks | arm_actions:
            continue
        heat = motion_energy(c.keypoint, MSR_ACTION3D_20, fps=15.0)
        parts = {name: heat[:, list(js)].mean() for name, js in MSR_ACTION3D_20.parts}
        hottest = max(parts, key=parts.get)
        if c.label in kicks:
            hits["leg"].append(hottest.endswith("leg"))
        else:
            hits["arm"].append(hottest.endswith("arm"))
    assert len(hits["leg"]) >= 20 and len(hits["arm"]) >= 100
    assert np.mean(hits["arm"]) >= 0.95 and np.mean(hits["leg"]) >= 0.85, {k: np.mean(v) for k, v in hits.items()}


def test_region_motion_accumulator_finds_the_part_whose_pixels_change():
    """A patch that flickers inside the left arm's box and nowhere else: left arm is hottest,
    the unit is grey levels per pixel, frame 0 has no difference."""
    rng = np.random.default_rng(1)
    kp = np.array([500.0, 520.0]) + rng.normal(0, 30, (MA52_44.num_joints, 2))   # everybody else
    left_arm = list(dict(MA52_44.parts)["left arm"])
    kp[left_arm] = np.array([150.0, 150.0]) + rng.normal(0, 30, (len(left_arm), 2))
    kp[MA52_44.joint_names.index("neck")] = [500, 420]
    kp[MA52_44.joint_names.index("hip_centre")] = [500, 620]
    x0, y0 = kp[left_arm].min(axis=0).astype(int)
    x1, y1 = kp[left_arm].max(axis=0).astype(int)
    acc = RegionMotionEnergy(MA52_44)
    for f in range(6):
        frame = np.full((720, 720, 3), 100, np.uint8)
        frame[y0:y1, x0:x1] = 100 + 80 * (f % 2)
        acc.update(frame, kp[None])
    out = acc.result()
    assert out.shape == (6, len(MA52_44.parts)) and np.isnan(out[0]).all()
    means = dict(zip([n for n, _ in MA52_44.parts], np.nanmean(out[1:], axis=0)))
    assert max(means, key=means.get) == "left arm" and 20 < means["left arm"] <= 80
