"""The live engine in process (pipelines.engines.live): the window grid, dropped frames, the
session's files, and the pieces the app's Live tab drives."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from pipelines.engines.live import LiveEngine, LiveOptions, latency_summary, window_grid
from pipelines.engines.live_session import _dropped_runs, _grid_index, _on_grid, write_session
from pipelines.live import session_key
from pipelines.options import JobOptions
from pipelines.stages.windowing import WindowOptions, make_windows
from pose.keypoint_tables import MISSING
from pose.skeleton_file import read_skeleton
from pose.sources import open_source, parse_source
from tests.data import LABELS_SCHEMA, VIDEOS_DIR

CLIP = VIDEOS_DIR / "0030_01_0002.mp4"  # 75 frames, 30 fps


@pytest.mark.parametrize("fps", [25.0, 29.97, 30.0, 60.0])
@pytest.mark.parametrize("window, stride", [(2.0, 0.5), (1.0, 1.0), (3.3, 0.7)])
def test_window_grid_is_the_file_jobs(fps, window, stride):
    """The live grid (length, stride in frames) is the one make_windows cuts a file into."""
    size, step = window_grid(fps, JobOptions(out=Path("."), windows=WindowOptions(window, stride)))
    ref = make_windows(int(fps * 30), fps, window, stride)
    assert all(w.start == i * step and w.length == size for i, w in enumerate(ref[:-1]))


def test_session_keys_name_the_source():
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert session_key(parse_source("clips/interview.mp4"), now) == "interview"
    assert session_key(parse_source("0"), now) == "camera0-20260102T030405Z"
    assert session_key(parse_source("rtsp://10.0.0.5/cam"), now) == "stream-20260102T030405Z"


def test_dropped_frames_go_back_on_the_grid():
    """Received frames at grid positions 0, 1, 4, 5, 9 of 10: the dropped ones are listed as
    runs, get a fill value, or take the value of the frame received before them."""
    pos = np.array([0, 1, 4, 5, 9])
    assert _dropped_runs(pos, 10) == [[2, 4], [6, 9]]
    assert _grid_index(pos, 10).tolist() == [0, 1, 1, 1, 2, 3, 3, 3, 3, 4]
    values = np.arange(5, dtype=np.float32) * 10
    assert np.array_equal(_on_grid(values, pos, 10, None), [0, 10, 10, 10, 20, 30, 30, 30, 30, 40])
    filled = _on_grid(values, pos, 10, np.nan)
    assert np.isnan(filled[[2, 3, 6, 7, 8]]).all() and filled[9] == 40


def test_latency_summary():
    recs = [{"latency_s": v} for v in (0.1, 0.2, 0.3, 0.4, 1.0)] + [{"index": 9}]
    lat = latency_summary(recs)
    assert lat["p50"] == 0.3 and lat["max"] == 1.0 and 0.4 < lat["p95"] < 1.0
    assert latency_summary([]) == {"p50": None, "p95": None, "max": None}


class _Dropping:
    """A real source with every third frame taken away, as a lossy source drops them."""

    def __init__(self, source) -> None:
        self.source = source

    def __iter__(self):
        return (f for f in self.source if f.index % 3 != 1)


def test_windows_with_dropped_frames_are_classified_from_the_frames_they_have(golden_weights, tmp_path):
    """Every third frame of a real clip dropped before pose: every window of the grid still
    comes, classified from its received frames, with the drops counted and not taken for an
    absent subject; the session's files put the dropped frames back on the source's grid."""
    from mmn.inference import Recognizer

    classifier = Recognizer.from_checkpoints(golden_weights, None, "cpu")
    opts = JobOptions(out=tmp_path, pictures=False)
    got: list[dict] = []
    with open_source(CLIP) as source:
        engine = LiveEngine(LiveOptions(job=opts), classifier, source.info, on_window=got.append)
        engine.run(_Dropping(source))
    session = engine.finish()
    assert session.frames_received == 50 and session.frames_dropped == 25
    assert [r["index"] for r in got] == [w.index for w in make_windows(75, 30.0)]
    for r in got:
        expected = sum(1 for f in range(r["start_frame"], r["end_frame"]) if f % 3 != 1)
        assert r["frames"] == expected and r["dropped_frames"] == r["end_frame"] - r["start_frame"] - expected
        assert "skipped" not in r and r["top_k"][0]["prob"] > 0.5 and r["latency_s"] >= 0
    files = write_session(session, opts, classifier, key="dropped", video=CLIP, ended="source ended", realtime=True)
    doc = json.loads(files.outputs.labels.read_text())
    jsonschema.validate(doc, json.loads(LABELS_SCHEMA.read_text()))
    assert doc["video"]["frame_count"] == 75 and doc["live"]["frames_dropped"] == 25
    assert [(w["start_frame"], w["end_frame"]) for w in doc["windows"]] == [(0, 60), (15, 75)]
    assert [w["top_k"][0]["index"] for w in doc["windows"]] == [r["top_k"][0]["index"] for r in got]
    skel = read_skeleton(files.outputs.skeleton)
    assert skel.num_frames == 75 and np.all(np.diff(skel.timestamps) > 0)
    assert (skel.flags[1::3] & MISSING).all() and np.isfinite(skel.keypoints[0::3]).any()
    assert skel.meta["live"]["dropped"][:2] == [[1, 2], [4, 5]]
    assert files.outputs.events.is_file() and files.outputs.motion.is_file()


def test_a_pushed_session_gets_every_window_and_counts_what_it_dropped(tmp_path):
    """The app's way in (LiveRunner): a real clip's frames pushed at 30 fps; without a
    checkpoint the windows carry the model-free motion; every window of the grid arrives by
    stop(), received + dropped = pushed, every pushed frame is in the recording, and the
    overlay is the latest frame drawn."""
    import time

    from pipelines.engines.live_feed import LiveRunner
    from pose.video import iter_frames

    opts = JobOptions(out=tmp_path, pictures=False)
    runner = LiveRunner(LiveOptions(job=opts), None, width=1080, height=1296, fps=30.0, source="test pushes",
                        record=tmp_path / "pushed.mp4", overlay=True)
    seen, picture = [], None
    for _, t, frame in iter_frames(CLIP):
        runner.push(frame, t)
        seen += runner.poll()
        picture = runner.overlay() if picture is None else picture
        time.sleep(1 / 30)
    session = runner.stop()
    assert runner.recording == tmp_path / "pushed.mp4" and sum(1 for _ in iter_frames(runner.recording)) == 75
    picture = runner.overlay() if picture is None else picture
    assert picture is not None and picture.shape == (720, 600, 3) and picture.std() > 10
    seen += runner.poll()
    assert [r["index"] for r in seen] == [w.index for w in make_windows(75, 30.0)]
    assert all("top_k" not in r and len(r["joint_heat"]) == 44 for r in seen)
    assert session.frames_received + session.frames_dropped == 75 and session.frames_received > 0
    files = write_session(session, opts, None, key="pushed", video=runner.recording, ended="stopped",
                          realtime=True, recording=runner.recording)
    doc = json.loads(files.outputs.labels.read_text())
    assert doc["live"]["source"] == "test pushes" and doc["live"]["frames_dropped"] == session.frames_dropped
    assert doc["live"]["recording"] == "pushed.mp4" and doc["video"]["file_name"] == "pushed.mp4"
    assert doc["job"]["input"]["size"] == runner.recording.stat().st_size
