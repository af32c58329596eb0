"""The app's engine on a real clip without a checkpoint: skeleton, motion-energy heat and
annotated video still come out, the labels say why they are absent, the figures still draw."""
from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pytest

from app.config import AppConfig
from app.engine import Settings, analyse
from app.ui import window_views
from app.validate import Limits, check_upload
from pipelines.drawing import figures
from pipelines.formats.labels_doc import NO_WEIGHTS_REASON
from pose.skeleton_file import read_skeleton
from tests.data import VIDEOS_DIR

CLIP = VIDEOS_DIR / "0010_02_0101.mp4"  # the shortest real clip: 47 frames


@pytest.fixture(scope="module")
def no_checkpoint(tmp_path_factory):
    up = tmp_path_factory.mktemp("uploads")
    shutil.copy(CLIP, up / CLIP.name)
    video = check_upload(up / CLIP.name, Limits(50 << 20, 60), [up])
    work = tmp_path_factory.mktemp("work")
    calls = []
    a = analyse(video, Settings(window_s=1.0, stride_s=0.5), None, AppConfig(), work,
                lambda p, desc, **kw: calls.append(desc))
    return a, work, calls


def test_outputs_without_checkpoint(no_checkpoint):
    a, work, calls = no_checkpoint
    assert not a.has_labels and a.heat_source == "motion_energy"
    doc = json.loads(a.outputs.labels.read_text())
    assert doc["labels_absent_reason"] == NO_WEIGHTS_REASON and doc["model"] is None
    assert doc["windows"] and not any("top_k" in w for w in doc["windows"]) and doc["segments"] == []
    assert doc["video"]["path"] == doc["video"]["file_name"] == CLIP.name  # no server path in the download
    # nor in the ELAN file, which links the video by its name (beside the .eaf), as the job wrote it
    eaf = a.outputs.eaf.read_text()
    assert f'MEDIA_URL="file:///{CLIP.name}"' in eaf and f'RELATIVE_MEDIA_URL="./{CLIP.name}"' in eaf
    assert str(work) not in eaf and "uploads" not in eaf
    # the page draws its own figures: the folder job's whole-video pictures are not made
    assert doc["outputs"]["heatmap_png"] is None and not a.outputs.heatmap.exists()
    assert read_skeleton(a.outputs.skeleton).keypoints.shape == (47, 44, 2)
    with av.open(str(a.outputs.clip)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].frames in (0, 47)
    assert a.heat.shape == (47, 44) and 0 <= a.heat.min() and a.heat.max() <= 1
    assert calls[0].startswith("1/4") and any(c.startswith("3/4 Computing motion energy") for c in calls)
    assert any(c.startswith("4/4") for c in calls)


def test_window_views_without_labels(no_checkpoint, tmp_path):
    a, _, _ = no_checkpoint
    table, hm, sk, tl = window_views(a.state(), 0.8, tmp_path)
    assert "no labels" in table
    assert len(figures.read_row_labels(open(hm, "rb").read())) == 44
    for p in (hm, sk, tl):
        assert open(p, "rb").read(4) == b"\x89PNG"
    assert np.isfinite(a.keypoints).any()
